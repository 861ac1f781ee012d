"""Generation against `transformers.generate` on the same weights, token for token."""

import numpy as np
import pytest
import tensorflow as tf
import torch
from hf_oracle import hf_encoder_decoder, random_batch

from tf_bert_seqgen import EncoderDecoder
from tf_bert_seqgen import generation as gen

MAX_LENGTH = 14


def _normalise(ids, length, eos=1, pad=0):
    """Pads to `length`; everything after the first eos becomes pad (the reference fills beam output
    with eos when pad is 0, and greedy output with pad)."""
    ids = np.asarray(ids)
    out = np.full((ids.shape[0], length), pad, dtype=np.int64)
    out[:, :ids.shape[1]] = ids
    out[(np.cumsum(out == eos, axis=1) - (out == eos)) > 0] = pad
    return out


@pytest.fixture(scope="module", params=[(0, False), (1, True)], ids=["separate", "shared"])
def pair(request, tmp_path_factory):
    seed, share = request.param
    # A small vocabulary and an eos-friendly bias make hypotheses end at different lengths.
    hf = hf_encoder_decoder(seed=seed, share=share, vocab_size=40, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=37)
    with torch.no_grad():
        hf.decoder.lm_head.bias[1] += 2.5
    directory = tmp_path_factory.mktemp("gen")
    hf.save_pretrained(directory)
    return hf, EncoderDecoder.from_pretrained(str(directory))


def _reference(hf, ids, mask, **options):
    with torch.no_grad():
        return hf.generate(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask),
                           do_sample=False, **options).numpy()


CASES = [
    dict(),
    dict(min_length=8),
    dict(no_repeat_ngram_size=2),
    dict(num_beams=2),
    dict(num_beams=2, length_penalty=0.5, early_stopping=True),
    dict(num_beams=4),
    dict(num_beams=4, length_penalty=2.0),
    dict(num_beams=4, length_penalty=-1.0, early_stopping="never"),
    dict(num_beams=4, length_penalty=1.5, early_stopping="never"),
    dict(num_beams=4, early_stopping=True, num_return_sequences=3),
    dict(num_beams=3, no_repeat_ngram_size=3, min_length=9),
]


@pytest.mark.parametrize("options", CASES, ids=[str(c) or "greedy" for c in CASES])
@pytest.mark.parametrize("data_seed", [0, 1])
def test_equals_transformers_generate(pair, options, data_seed):
    hf, model = pair
    ids, mask = random_batch(np.random.default_rng(data_seed), 3, 9 + data_seed, 40)
    reference = _reference(hf, ids, mask, max_length=MAX_LENGTH, **options)
    ours = model.generate(ids, mask, max_length=MAX_LENGTH, **options).numpy()
    assert ours.shape == (3 * options.get("num_return_sequences", 1), MAX_LENGTH)
    np.testing.assert_array_equal(ours, _normalise(reference, MAX_LENGTH))


def test_max_new_tokens(pair):
    hf, model = pair
    ids, mask = random_batch(np.random.default_rng(5), 2, 6, 40)
    reference = _reference(hf, ids, mask, max_new_tokens=7, num_beams=2)
    ours = model.generate(ids, mask, max_new_tokens=7, num_beams=2).numpy()
    assert ours.shape == (2, 8) and (ours[:, 0] == 2).all()
    np.testing.assert_array_equal(ours, _normalise(reference, 8))


@pytest.mark.parametrize("options", [dict(), dict(num_beams=4, length_penalty=0.6, length_penalty_style="gnmt")])
def test_xla_equals_graph_mode(pair, options):
    _, model = pair
    ids, mask = random_batch(np.random.default_rng(2), 2, 12, 40)
    graph = model.generate(ids, mask, max_length=MAX_LENGTH, **options).numpy()
    xla = model.generate(ids, mask, max_length=MAX_LENGTH, jit_compile=True, **options).numpy()
    np.testing.assert_array_equal(graph, xla)


def test_gnmt_penalty():
    lengths = tf.constant([1, 4, 10])
    np.testing.assert_allclose(gen.length_penalty_divisor(lengths, 0.6, "gnmt").numpy(),
                               ((5 + np.array([1, 4, 10])) / 6) ** 0.6, rtol=1e-6)
    np.testing.assert_allclose(gen.length_penalty_divisor(lengths, 2.0, "hf").numpy(), [1, 16, 100], rtol=1e-6)


def test_gnmt_and_hf_styles_differ_only_through_the_penalty(pair):
    hf, model = pair
    ids, mask = random_batch(np.random.default_rng(3), 3, 9, 40)
    # alpha = 0 makes both divisors 1: the searches must then be identical to the reference's.
    reference = _normalise(_reference(hf, ids, mask, max_length=MAX_LENGTH, num_beams=4, length_penalty=0.0),
                           MAX_LENGTH)
    gnmt = model.generate(ids, mask, max_length=MAX_LENGTH, num_beams=4, length_penalty=0.0,
                          length_penalty_style="gnmt").numpy()
    np.testing.assert_array_equal(gnmt, reference)


def test_same_shapes_do_not_retrace(pair):
    _, model = pair
    rng = np.random.default_rng(4)
    config = gen.resolve_config(model.config, max_length=MAX_LENGTH, num_beams=2)
    counts = []
    for length, penalty in [(9, 1.0), (11, 0.3), (14, 2.0)]:  # one source bucket, dynamic penalty
        ids, mask = random_batch(rng, 2, length, 40)
        model.generate(ids, mask, max_length=MAX_LENGTH, num_beams=2, length_penalty=penalty)
        counts.append(gen._COMPILED[model][(config.static_key(), False)].experimental_get_tracing_count())
    assert counts[0] == counts[1] == counts[2]


def test_top_k_and_top_p_masks_equal_the_reference():
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    logits = np.random.default_rng(0).normal(size=(6, 50)).astype(np.float32) * 3
    for top_k in (1, 5, 20):
        ref = TopKLogitsWarper(top_k)(None, torch.tensor(logits)).numpy()
        ours = gen.top_k_filter(tf.constant(logits), top_k).numpy()
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref))
    for top_p in (0.1, 0.5, 0.9, 0.99):
        ref = TopPLogitsWarper(top_p)(None, torch.tensor(logits)).numpy()
        ours = gen.top_p_filter(tf.constant(logits), tf.constant(top_p)).numpy()
        np.testing.assert_array_equal(np.isinf(ours), np.isinf(ref))
        np.testing.assert_array_equal(ours[~np.isinf(ours)], logits[~np.isinf(ref)])


def test_sampling_is_seeded_and_respects_top_k(pair):
    _, model = pair
    ids, mask = random_batch(np.random.default_rng(6), 2, 8, 40)
    options = dict(max_length=MAX_LENGTH, do_sample=True, top_k=3, temperature=1.5, num_return_sequences=4)
    first = model.generate(ids, mask, seed=11, **options).numpy()
    again = model.generate(ids, mask, seed=11, **options).numpy()
    other = model.generate(ids, mask, seed=12, **options).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == (8, MAX_LENGTH)
    # With top_k=1 sampling is greedy decoding.
    greedy = model.generate(ids, mask, max_length=MAX_LENGTH).numpy()
    sampled = model.generate(ids, mask, max_length=MAX_LENGTH, do_sample=True, top_k=1, seed=3).numpy()
    np.testing.assert_array_equal(greedy, sampled)


def test_beam_sampling_is_seeded(pair):
    _, model = pair
    ids, mask = random_batch(np.random.default_rng(7), 2, 8, 40)
    options = dict(max_length=MAX_LENGTH, do_sample=True, num_beams=3, seed=5)
    np.testing.assert_array_equal(model.generate(ids, mask, **options).numpy(),
                                  model.generate(ids, mask, **options).numpy())


@pytest.mark.parametrize("bad, message", [
    (dict(num_beams=0), "num_beams"),
    (dict(num_beams=2, num_return_sequences=3), "num_return_sequences"),
    (dict(max_length=1000), "max_position_embeddings"),
    (dict(length_penalty_style="linear"), "length_penalty_style"),
    (dict(do_sample=True, top_p=0.0), "top_p"),
])
def test_bad_options_are_named(pair, bad, message):
    _, model = pair
    with pytest.raises(ValueError, match=message):
        model.generate(np.array([[5, 6, 7]]), **bad)


def test_too_long_input_is_an_error(pair):
    _, model = pair
    with pytest.raises(ValueError, match="exceeds the encoder's max_position_embeddings"):
        model.generate(np.full((1, 65), 5))


def test_source_vocabulary_bias_allows_each_rows_own_tokens():
    ids = tf.constant([[5, 6, 6, 0], [7, 0, 0, 0]])
    mask = tf.constant([[1, 1, 1, 0], [1, 0, 0, 0]])
    bias = gen.source_vocabulary_bias(ids, mask, 10, extra_token_ids=(9,), eos_token_id=1).numpy()
    allowed = [{1, 5, 6, 9}, {1, 7, 9}]  # the pad position (token 0) is masked out, so 0 is not allowed
    for row, tokens in enumerate(allowed):
        assert {int(i) for i in np.flatnonzero(bias[row] == 0)} == tokens
        assert np.all(bias[row][[i for i in range(10) if i not in tokens]] <= -1e8)


# min_length keeps the fixture's eos-friendly model generating, so the restriction has work to do.
COPY_CASES = [dict(min_length=10), dict(num_beams=3, min_length=8),
              dict(num_beams=2, num_return_sequences=2, length_penalty=0.5, min_length=8)]


@pytest.mark.parametrize("options", COPY_CASES, ids=[str(c) for c in COPY_CASES])
def test_copy_from_source_equals_transformers_prefix_allowed_tokens(pair, options):
    hf, model = pair
    ids, mask = random_batch(np.random.default_rng(8), 3, 6, 40, min_length=3)
    extra = (7, 9)
    allowed = [sorted({*ids[b][mask[b] > 0].tolist(), *extra, 1}) for b in range(len(ids))]
    ours = model.generate(ids, mask, max_length=MAX_LENGTH, copy_from_source=True, extra_token_ids=extra,
                          **options).numpy()
    reference = _reference(hf, ids, mask, max_length=MAX_LENGTH, prefix_allowed_tokens_fn=lambda b, _: allowed[b],
                           **options)
    np.testing.assert_array_equal(ours, _normalise(reference, MAX_LENGTH))
    rows_per_example = len(ours) // len(ids)
    for row, sequence in enumerate(ours):
        assert set(sequence[1:].tolist()) <= {*allowed[row // rows_per_example], 0}
    # The restriction is what keeps them there: free decoding of the same batch leaves the sources.
    free = model.generate(ids, mask, max_length=MAX_LENGTH, **options).numpy()
    assert any(not set(s[1:].tolist()) <= {*allowed[r // rows_per_example], 0} for r, s in enumerate(free))


def _least_added_probability(hf, ids, mask, sequences, extra):
    """The reference's side: for each returned row, the smallest probability the torch model gives an extra
    token the row's source lacks, at the step it was written (teacher-forced); 1 where none was added."""
    rows_per_example = len(sequences) // len(ids)
    source = np.repeat(ids, rows_per_example, axis=0)
    source_mask = np.repeat(mask, rows_per_example, axis=0)
    with torch.no_grad():
        logits = hf(input_ids=torch.tensor(source, dtype=torch.long), attention_mask=torch.tensor(source_mask),
                    decoder_input_ids=torch.tensor(sequences[:, :-1], dtype=torch.long)).logits
    probs = torch.softmax(logits, dim=-1).numpy()
    least = np.ones(len(sequences))
    for row, sequence in enumerate(sequences):
        own = set(source[row][source_mask[row] > 0].tolist())
        for position, token in enumerate(sequence[1:].tolist()):
            if token == 1:  # eos: the row ends
                break
            if token in extra and token not in own:
                least[row] = min(least[row], probs[row, position, token])
    return least


@pytest.mark.parametrize("options", COPY_CASES, ids=[str(c) for c in COPY_CASES])
def test_rows_unsure_of_an_added_token_return_their_source(pair, options):
    hf, model = pair
    ids, mask = random_batch(np.random.default_rng(8), 4, 6, 40, min_length=3)
    extra = tuple(range(20, 40))  # half the vocabulary, so that rows add tokens at several probabilities
    common = dict(max_length=MAX_LENGTH, copy_from_source=True, extra_token_ids=extra, **options)
    plain = model.generate(ids, mask, **common).numpy()
    least = _least_added_probability(hf, ids, mask, plain, extra)
    added = np.unique(least[least < 1])
    assert len(added) >= 2, "the fixture should add extra tokens in several rows"
    rows_per_example = len(plain) // len(ids)
    # A threshold between each two neighbouring values: every row's least probability is checked.
    for threshold in (added[:-1] + added[1:]) / 2:
        kept = model.generate(ids, mask, min_added_token_probability=float(threshold), **common).numpy()
        for row in range(len(plain)):
            source = ids[row // rows_per_example][mask[row // rows_per_example] > 0].tolist()
            expected = [2, *source, 1] + [0] * (MAX_LENGTH - len(source) - 2) if least[row] < threshold else plain[row]
            np.testing.assert_array_equal(kept[row], expected, err_msg=f"row {row}: {least[row]} vs {threshold}")


def test_an_unsure_rows_source_is_cut_at_max_length_like_any_output(pair):
    _, model = pair
    ids, mask = np.array([[5, 6, 0, 0, 0], [5, 6, 8, 10, 12]]), np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    common = dict(max_length=5, copy_from_source=True, extra_token_ids=tuple(range(3, 40)), min_length=5)
    plain = model.generate(ids, mask, **common).numpy()
    kept = model.generate(ids, mask, min_added_token_probability=0.999, **common).numpy()
    assert not np.array_equal(plain, kept)
    np.testing.assert_array_equal(kept, [[2, 5, 6, 1, 0], [2, 5, 6, 8, 10]])  # start, source, eos if it fits


def test_min_added_token_probability_is_checked(pair):
    _, model = pair
    with pytest.raises(ValueError, match="min_added_token_probability applies with copy_from_source"):
        model.generate(np.array([[5, 6, 7]]), min_added_token_probability=0.5)
    with pytest.raises(ValueError, match=r"min_added_token_probability must be in \[0, 1\), got 1.0"):
        model.generate(np.array([[5, 6, 7]]), copy_from_source=True, extra_token_ids=[4],
                       min_added_token_probability=1.0)


def test_extra_token_ids_need_copy_from_source(pair):
    _, model = pair
    with pytest.raises(ValueError, match="copy_from_source"):
        model.generate(np.array([[5, 6, 7]]), extra_token_ids=[4])

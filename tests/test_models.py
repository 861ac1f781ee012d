"""The model family against `transformers` on the same weights, and the cache against the full pass."""

import numpy as np
import pytest
import tensorflow as tf
import torch
from hf_oracle import hf_encoder_decoder, random_batch

from tf_bert_seqgen import (
    BertForSeqGenerationConfig,
    BertForSeqGenerationDecoder,
    BertForSeqGenerationEncoderModel,
    EncoderDecoder,
    EncoderDecoderConfig,
)
from tf_bert_seqgen.layers import Dense
from tf_bert_seqgen.losses import sequence_cross_entropy
from tf_bert_seqgen.products import _few_rows

SHAPES = [
    dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37),
    dict(vocab_size=57, hidden_size=24, num_hidden_layers=3, num_attention_heads=3, intermediate_size=40,
         hidden_act="gelu_new"),
]


def _hf_outputs(hf, ids, mask, labels, dec_mask):
    hf_labels = torch.tensor(np.where(dec_mask == 1, labels, -100), dtype=torch.long)
    with torch.no_grad():
        out = hf(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask),
                 labels=hf_labels, decoder_attention_mask=torch.tensor(dec_mask))
        enc = hf.encoder(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask))
    return enc.last_hidden_state.numpy(), out.logits.numpy(), out.loss.item()


@pytest.mark.parametrize("share", [False, True], ids=["separate", "shared"])
@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_matches_transformers(tmp_path, shape, share):
    sizes = SHAPES[shape]
    hf = hf_encoder_decoder(seed=shape, share=share, **sizes)
    hf.save_pretrained(tmp_path)
    model = EncoderDecoder.from_pretrained(str(tmp_path))
    assert model.config.share == share

    rng = np.random.default_rng(shape)
    ids, mask = random_batch(rng, 3, 11, sizes["vocab_size"])
    labels, dec_mask = random_batch(rng, 3, 7, sizes["vocab_size"])
    hf_hidden, hf_logits, hf_loss = _hf_outputs(hf, ids, mask, labels, dec_mask)

    hidden = model.encoder(ids, mask).numpy()
    logits = model({"input_ids": ids, "attention_mask": mask, "labels": labels,
                    "decoder_attention_mask": dec_mask}).numpy()
    loss = float(sequence_cross_entropy(labels, logits, pad_token_id=0))
    valid = mask.astype(bool)
    # Padded positions are never read downstream; the reference leaves them as arbitrary as we do.
    assert np.abs(hidden[valid] - hf_hidden[valid]).max() <= 1e-4
    dvalid = dec_mask.astype(bool)
    assert np.abs(logits[dvalid] - hf_logits[dvalid]).max() <= 1e-4
    assert abs(loss - hf_loss) <= 1e-4


def test_shared_model_stores_weights_once():
    config = BertForSeqGenerationConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=20)
    shared = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=True))
    separate = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=False))
    cross_and_bias = sum(int(np.prod(w.shape)) for w in shared.decoder.weights
                         if "cross_attention" in w.path or "lm_head" in w.path)
    assert shared.count_params() == separate.encoder.count_params() + cross_and_bias
    assert shared.decoder.embeddings is shared.encoder.embeddings


@pytest.mark.parametrize("share", [False, True])
def test_cached_decoding_equals_full_pass(share):
    config = BertForSeqGenerationConfig(vocab_size=61, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                        intermediate_size=48, max_position_embeddings=40)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=share))
    rng = np.random.default_rng(1)
    ids, mask = random_batch(rng, 2, 9, 61)
    targets = rng.integers(3, 61, size=(2, 8)).astype(np.int32)
    full = model({"input_ids": ids, "attention_mask": mask, "decoder_input_ids": targets}).numpy()

    encoder_states = model.encoder(ids, mask)
    cross_cache = model.decoder.cross_attention_cache(encoder_states)
    cache = model.decoder.empty_self_attention_cache(2, 16)
    pieces = []
    # A 3-token prefill, then one token at a time: both paths must land on the full pass.
    logits, cache = model.decoder.decode_step(targets[:, :3], 0, cache, cross_cache, mask)
    pieces.append(logits.numpy())
    for t in range(3, 8):
        logits, cache = model.decoder.decode_step(targets[:, t:t + 1], t, cache, cross_cache, mask)
        pieces.append(logits.numpy())
    assert np.abs(np.concatenate(pieces, axis=1) - full).max() <= 1e-5


def test_dropout_only_when_training():
    config = BertForSeqGenerationConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=20, hidden_dropout_prob=0.5)
    encoder = BertForSeqGenerationEncoderModel(config)
    ids = np.array([[5, 6, 7, 8]], np.int32)
    assert np.array_equal(encoder(ids).numpy(), encoder(ids).numpy())
    assert not np.allclose(encoder(ids, training=True).numpy(), encoder(ids).numpy())


def test_layers_round_trip_through_get_config():
    config = BertForSeqGenerationConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=20)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=True, decoder_start_token_id=5))
    rebuilt = EncoderDecoder.from_config(model.get_config())
    assert rebuilt.config == model.config
    layer = model.decoder.transformer_layers[0]
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config() and clone.has_cross_attention


def test_dense_is_x_times_kernel_transposed_plus_bias_in_graph_and_xla():
    """Kernels are [out, in]; under XLA the bias is subtracted negated (see `add_bias`): same values."""
    dense = Dense(5, kernel_initializer="glorot_uniform")
    dense.build((None, None, 3))
    assert tuple(dense.kernel.shape) == (5, 3) and tuple(dense.bias.shape) == (5,)
    dense.bias.assign(np.arange(5, dtype=np.float32) - 2.0)
    rng = np.random.default_rng(0)
    # One row, several rows, many rows, training, and an unknown row count (a SavedModel's batch): each
    # takes its own product form in `times_transposed` under XLA.
    for shape, training in [((1, 1, 3), False), ((2, 4, 3), False), ((3, 50, 3), False), ((2, 4, 3), True)]:
        x = rng.normal(size=shape).astype(np.float32)
        expected = x @ dense.kernel.numpy().T + dense.bias.numpy()
        for jit in (False, True):
            call = tf.function(lambda v, training=training: dense(v, training=training), jit_compile=jit)
            out = call(tf.constant(x))
            assert out.shape == shape[:-1] + (5,)
            np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)
    x = rng.normal(size=(4, 1, 3)).astype(np.float32)
    for jit in (False, True):
        call = tf.function(lambda v: dense(v), jit_compile=jit, input_signature=[tf.TensorSpec([None, 1, 3])])
        np.testing.assert_allclose(call(x).numpy(), x @ dense.kernel.numpy().T + dense.bias.numpy(),
                                   rtol=1e-5, atol=1e-6)
    # Which XLA form: a decode step of unknown batch is "few rows", an encoder pass of unknown size not.
    assert _few_rows(tf.TensorSpec([None, 1, 3]), None) and not _few_rows(tf.TensorSpec([None, None, 3]), None)
    assert _few_rows(tf.TensorSpec([4, 32, 3]), 128) and not _few_rows(tf.TensorSpec([4, 33, 3]), 132)
    clone = Dense.from_config(dense.get_config())
    assert clone.get_config() == dense.get_config()


def test_single_stack_directories(tmp_path):
    """BertGeneration encoder-only and decoder-only directories (like the `..._bbc_encoder` release)."""
    hf = hf_encoder_decoder(seed=3)
    hf.encoder.save_pretrained(tmp_path / "enc")
    hf.decoder.save_pretrained(tmp_path / "dec")
    rng = np.random.default_rng(3)
    ids, mask = random_batch(rng, 2, 6, 99)
    encoder = BertForSeqGenerationEncoderModel.from_pretrained(str(tmp_path / "enc"))
    decoder = BertForSeqGenerationDecoder.from_pretrained(str(tmp_path / "dec"))
    states = encoder(ids, mask)
    with torch.no_grad():
        t_ids, t_mask = torch.tensor(ids, dtype=torch.long), torch.tensor(mask)
        ref_states = hf.encoder(input_ids=t_ids, attention_mask=t_mask).last_hidden_state
        ref_logits = hf.decoder(input_ids=t_ids[:, :4], encoder_hidden_states=ref_states,
                                encoder_attention_mask=t_mask).logits.numpy()
    assert np.abs(states.numpy()[mask == 1] - ref_states.numpy()[mask == 1]).max() <= 1e-4
    assert np.abs(decoder(ids[:, :4], states, mask).numpy() - ref_logits).max() <= 1e-4


@pytest.mark.large
def test_full_size_shared_model_builds_and_counts_like_transformers():
    from transformers import BertGenerationConfig, EncoderDecoderModel
    from transformers import EncoderDecoderConfig as HFEncoderDecoderConfig

    config = BertForSeqGenerationConfig()  # the released 24-layer defaults
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (24, 1024, 50358)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=True))
    logits = model({"input_ids": np.array([[5, 6, 7, 8, 9]]), "decoder_input_ids": np.array([[2, 10, 11]])})
    assert logits.shape == (1, 3, 50358) and np.isfinite(logits.numpy()).all()

    hf_stack = config.to_hf_dict()
    with torch.device("meta"):
        hf = EncoderDecoderModel(HFEncoderDecoderConfig.from_encoder_decoder_configs(
            BertGenerationConfig(**hf_stack), BertGenerationConfig(**config.to_hf_dict(is_decoder=True))))
    total = sum(p.numel() for p in hf.parameters())
    # transformers 5 does not tie encoder and decoder, so the shared count is its total minus the
    # decoder's copies of encoder weights (everything in decoder.bert except cross-attention).
    decoder_copies = sum(p.numel() for n, p in hf.decoder.bert.named_parameters() if "crossattention" not in n)
    print(f"full-size shared model: {model.count_params():,} parameters "
          f"(transformers, untied: {total:,}; shared: {total - decoder_copies:,})")
    assert model.count_params() == total - decoder_copies


def test_bfloat16_copy_keeps_structure_and_logits_close():
    config = BertForSeqGenerationConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=48)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=True))
    half = model.cast("bfloat16")
    assert {w.dtype for w in half.weights} == {"bfloat16"} and half.count_params() == model.count_params()
    ids, mask = random_batch(np.random.default_rng(0), 2, 7, 61)
    inputs = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": ids[:, :4]}
    full, low = model(inputs).numpy(), half(inputs).numpy()
    assert low.dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: logits agree to a few hundredths, not to 1e-4.
    assert np.abs(full - low).max() < 0.1 and np.abs(full - low).max() > 0

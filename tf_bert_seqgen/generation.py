"""Generation in the TensorFlow graph: greedy, sampling and beam search over one `tf.while_loop`.

Every loop variable has a fixed shape (sequences are [.., max_length] buffers, the self-attention cache is one
[N, n, max_length, d] pair per layer), so the same function runs traced, in a SavedModel without XLA, and
under `jit_compile=True`. The encoder runs once; its cross-attention K/V are projected once per request.

Beam search follows the alive/finished formulation (as `transformers` >= 4.50 and TF Model Garden do), so
its results equal `transformers.generate` token for token. Shapes: B = batch, K = beams, N = B*K rows,
m = max_length, V = vocab.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from tf_bert_seqgen import storage
from tf_bert_seqgen.generation_config import GenerationConfig, config_fields  # noqa: F401  (also generation.GenerationConfig)

NEG_INF = float("-inf")
# Large, finite: keeps arithmetic on "impossible" beams away from inf - inf. Same constant as the reference.
LARGE_NEGATIVE = -1.0e9


def resolve_config(model_config, **options) -> GenerationConfig:
    """Fills token ids from the model config; `max_new_tokens` wins over `max_length` (as `transformers`,
    `generation_config.config_fields`)."""
    options.setdefault("eos_token_id", model_config.decoder.eos_token_id)
    options.setdefault("pad_token_id", model_config.decoder.pad_token_id)
    options.setdefault("decoder_start_token_id", model_config.start_token_id)
    config = GenerationConfig(**config_fields(options))
    if config.max_length > model_config.decoder.max_position_embeddings:
        raise ValueError(f"max_length {config.max_length} exceeds the decoder's max_position_embeddings "
                         f"({model_config.decoder.max_position_embeddings})")
    return config


# --- logits processing (same semantics and order as the `transformers` processors) -------------------

def penalise_repeated_ngrams(scores, sequences, cur_len, ngram_size: int):
    """Bans tokens that would repeat an n-gram of `sequences[:, :cur_len]`. scores [N, V], sequences [N, m]."""
    if ngram_size <= 0:
        return scores
    windows_count = sequences.shape[1] - ngram_size + 1
    if windows_count <= 0:
        return scores
    windows = tf.stack([sequences[:, k:k + windows_count] for k in range(ngram_size)], axis=-1)  # [N, W, n]
    prefix_positions = tf.maximum(cur_len - (ngram_size - 1) + tf.range(ngram_size - 1), 0)
    prefix = tf.gather(sequences, prefix_positions, axis=1)  # [N, n-1]
    same_prefix = tf.reduce_all(windows[:, :, :-1] == prefix[:, None, :], axis=-1)
    complete = tf.range(windows_count)[None, :] < cur_len - ngram_size + 1
    banned = tf.logical_and(same_prefix, complete)  # [N, W]
    rows = tf.broadcast_to(tf.range(tf.shape(scores)[0])[:, None], tf.shape(banned))
    indices = tf.reshape(tf.stack([rows, windows[:, :, -1]], axis=-1), [-1, 2])
    updates = tf.reshape(tf.where(banned, NEG_INF, float("inf")), [-1])
    return tf.tensor_scatter_nd_min(scores, indices, updates)


def forbid_early_eos(scores, cur_len, min_length, eos_token_id: int):
    """No end of sequence while fewer than `min_length` tokens (start token included) exist."""
    is_eos = tf.range(tf.shape(scores)[-1]) == eos_token_id
    return tf.where(tf.logical_and(is_eos, cur_len < min_length)[None, :], NEG_INF, scores)


def _in_source(input_ids, attention_mask, vocab_size):
    """[b, V] bool: the tokens at each row's unmasked positions. input_ids, attention_mask [b, s]."""
    batch = tf.shape(input_ids)[0]
    rows = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(input_ids))
    indices = tf.stack([tf.reshape(rows, [-1]), tf.reshape(input_ids, [-1])], axis=1)
    return tf.scatter_nd(indices, tf.reshape(attention_mask, [-1]), tf.stack([batch, vocab_size])) > 0


def _token_set(token_ids, vocab_size):
    """[V] bool, true at `token_ids`."""
    return tf.scatter_nd([[i] for i in token_ids], tf.ones([len(token_ids)], tf.int32), [vocab_size]) > 0


def source_vocabulary_bias(input_ids, attention_mask, vocab_size, extra_token_ids, eos_token_id: int):
    """0 for the tokens of each row's source (unmasked positions), `extra_token_ids` and eos, and
    LARGE_NEGATIVE for every other token: added to the logits, it restricts decoding to copying.
    input_ids, attention_mask [b, s] -> [b, V] float32."""
    always = _token_set((*extra_token_ids, eos_token_id), vocab_size)
    allowed = tf.logical_or(_in_source(input_ids, attention_mask, vocab_size), always[None, :])
    return tf.where(allowed, 0.0, LARGE_NEGATIVE)


def added_tokens(input_ids, attention_mask, vocab_size, extra_token_ids):
    """[b, V] bool: the extra tokens a row's source lacks, i.e. what copy-restricted decoding may add."""
    return tf.logical_and(_token_set(extra_token_ids, vocab_size)[None, :],
                          tf.logical_not(_in_source(input_ids, attention_mask, vocab_size)))


def least_added_log_prob(least, log_probs, tokens, added):
    """Running minimum of log p over the added tokens a row chose. least [N], log_probs [N, V] (the model's,
    before the copy restriction), tokens [N] chosen, added [N, V] bool -> [N]; 0 until a row adds one."""
    chosen = tf.gather(log_probs, tokens, batch_dims=1)
    return tf.where(tf.gather(added, tokens, batch_dims=1), tf.minimum(least, chosen), least)


def source_as_output(input_ids, attention_mask, config: GenerationConfig):
    """Each source as a generated row: start token, source tokens, eos, pad, cut at max_length.
    input_ids, attention_mask [b, s] (right-padded) -> [b, m] int32."""
    length = tf.reduce_sum(attention_mask, axis=1)
    batch = tf.shape(input_ids)[0]
    rows = tf.concat([tf.fill([batch, 1], config.decoder_start_token_id),
                      tf.where(attention_mask > 0, input_ids, config.pad_token_id),
                      tf.fill([batch, config.max_length], config.pad_token_id)], axis=1)[:, :config.max_length]
    return tf.where(tf.range(config.max_length)[None, :] == length[:, None] + 1, config.eos_token_id, rows)


def top_k_filter(logits, top_k: int):
    """Keeps the top_k logits of each row (ties at the threshold kept), -inf elsewhere. [N, V]"""
    if top_k <= 0:
        return logits
    top_k = min(top_k, logits.shape[-1])
    threshold = tf.math.top_k(logits, k=top_k).values[:, -1:]
    return tf.where(logits < threshold, NEG_INF, logits)


def top_p_filter(logits, top_p):
    """Nucleus filter: removes the least likely tokens whose total probability is at most 1 - top_p,
    keeping at least the most likely one. [N, V]"""
    sorted_logits, order = tf.math.top_k(logits, k=tf.shape(logits)[-1])  # descending
    # Probability mass at or below each token, i.e. the ascending cumulative sum of the reference.
    mass_at_or_below = tf.cumsum(tf.nn.softmax(sorted_logits, axis=-1), axis=-1, reverse=True)
    remove_sorted = mass_at_or_below <= 1.0 - top_p
    remove_sorted = tf.concat([tf.zeros_like(remove_sorted[:, :1]), remove_sorted[:, 1:]], axis=-1)
    remove = tf.gather(remove_sorted, tf.argsort(order, axis=-1), batch_dims=1)
    return tf.where(remove, NEG_INF, logits)


def warp_for_sampling(logits, temperature, top_k: int, top_p):
    """Temperature, then top-k, then top-p, the reference's warper order."""
    logits = logits / temperature
    logits = top_k_filter(logits, top_k)
    return tf.cond(top_p < 1.0, lambda: top_p_filter(logits, top_p), lambda: logits)


def length_penalty_divisor(length, alpha, style: str):
    """What a beam's summed log-probability is divided by. HF: len**alpha; GNMT: ((5 + len) / 6)**alpha."""
    length = tf.cast(length, tf.float32)
    if style == "gnmt":
        return tf.pow((5.0 + length) / 6.0, alpha)
    return tf.pow(length, alpha)


# --- the decode loops ---------------------------------------------------------------------------------

def _write_column(buffer, column, values):
    """buffer[:, ..., column] = values, without dynamic-shape ops. buffer [..., m], values [...]"""
    hit = tf.range(tf.shape(buffer)[-1]) == column
    return tf.where(hit, values[..., None], buffer)


def _pad_after_eos(sequences, eos_token_id, pad_token_id):
    """Everything after the first eos becomes pad (the reference pads greedy output, and fills beam output
    with eos when pad is 0; one convention here). [N, m]"""
    seen_eos = tf.cumsum(tf.cast(sequences == eos_token_id, tf.int32), axis=1, exclusive=True) > 0
    return tf.where(seen_eos, pad_token_id, sequences)


def greedy_or_sample(step, batch_size, cache, config: GenerationConfig, dynamic):
    """Greedy decoding (or sampling when config.do_sample). Returns sequences [N, m] int32 and the least
    log p of an added token per row [N] (`least_added_log_prob`; zeros unless `keeps_unsure_sources`)."""
    m = config.max_length
    sequences = tf.fill([batch_size, m], config.pad_token_id)
    sequences = _write_column(sequences, 0, tf.fill([batch_size], config.decoder_start_token_id))
    finished = tf.zeros([batch_size], tf.bool)
    least = tf.zeros([batch_size])

    def body(cur_len, sequences, finished, least, cache):
        tokens = tf.gather(sequences, [cur_len - 1], axis=1)
        logits, cache = step(tokens, cur_len - 1, cache)
        scores = logits[:, -1, :]
        log_probs = tf.nn.log_softmax(scores) if config.keeps_unsure_sources else None
        scores = penalise_repeated_ngrams(scores, sequences, cur_len, config.no_repeat_ngram_size)
        scores = forbid_early_eos(scores, cur_len, dynamic["min_length"], config.eos_token_id)
        if config.copy_from_source:
            scores += dynamic["source_bias"]
        if config.do_sample:
            scores = warp_for_sampling(scores, dynamic["temperature"], config.top_k, dynamic["top_p"])
            seed = tf.stack([dynamic["seed"], cur_len])
            next_tokens = tf.random.stateless_categorical(scores, 1, seed=seed, dtype=tf.int32)[:, 0]
        else:
            next_tokens = tf.argmax(scores, axis=-1, output_type=tf.int32)
        next_tokens = tf.where(finished, config.pad_token_id, next_tokens)
        if config.keeps_unsure_sources:
            least = least_added_log_prob(least, log_probs, next_tokens, dynamic["added"])
        sequences = _write_column(sequences, cur_len, next_tokens)
        finished = tf.logical_or(finished, next_tokens == config.eos_token_id)
        return cur_len + 1, sequences, finished, least, cache

    def cond(cur_len, sequences, finished, least, cache):
        return tf.logical_and(cur_len < dynamic["max_length"], tf.logical_not(tf.reduce_all(finished)))

    _, sequences, _, least, _ = tf.while_loop(cond, body, (tf.constant(1), sequences, finished, least, cache),
                                              maximum_iterations=m - 1)
    return sequences, least


def beam_search(step, batch_size, cache, config: GenerationConfig, dynamic):
    """Beam search over alive and finished hypotheses. `cache` tensors have B*K rows. Returns sequences
    [B*R, m] and the least log p of an added token per row [B*R] (zeros unless `keeps_unsure_sources`).

    Each step (as TF Model Garden's): `_grow_candidates` (2K continuations of the alive beams),
    `_new_alive_state` (the best K that did not stop), `_new_finished_state` (the stopped ones merged into the
    finished beams), `_can_improve` (whether an alive beam can still beat the worst finished one)."""
    m, k = config.max_length, config.num_beams
    state = _initial_beam_state(batch_size, cache, config)

    def body(s):
        candidates = _grow_candidates(s, step, batch_size, config, dynamic)
        new = {"cur_len": s["cur_len"] + 1, "all_candidates_stop": candidates["stops"],
               **_new_alive_state(s, candidates, batch_size, k),
               **_new_finished_state(s, candidates, config, dynamic)}
        new["can_improve"] = s["can_improve"] & _can_improve(new, config, dynamic)
        # Gathers with batch_dims forget the static batch size; the loop needs it constant.
        tf.nest.map_structure(lambda a, b: a.set_shape(b.shape), new, s)
        return [new]

    def cond(s):
        go_on = tf.reduce_any(s["can_improve"]) & tf.logical_not(tf.reduce_all(s["all_candidates_stop"]))
        if config.early_stopping is True:
            go_on &= tf.logical_not(tf.reduce_all(s["is_finished"]))
        return go_on

    (state,) = tf.while_loop(cond, body, [state], maximum_iterations=m - 1)
    best = state["finished_sequences"][:, :config.num_return_sequences]
    return tf.reshape(best, [-1, m]), tf.reshape(state["finished_least"][:, :config.num_return_sequences], [-1])


def _initial_beam_state(batch_size, cache, config: GenerationConfig) -> dict:
    """The loop state before the first step: one live beam per example (the others at LARGE_NEGATIVE, so the
    first step does not pick k copies of one token), no finished beam. [B, K, ...] tensors and the cache."""
    m, k = config.max_length, config.num_beams
    start = tf.fill([batch_size, k], config.decoder_start_token_id)
    alive_sequences = _write_column(tf.fill([batch_size, k, m], config.pad_token_id), 0, start)
    return dict(
        cur_len=tf.constant(1),
        alive_sequences=alive_sequences,
        alive_scores=tf.tile(tf.concat([[0.0], tf.fill([k - 1], LARGE_NEGATIVE)], 0)[None], [batch_size, 1]),
        finished_sequences=alive_sequences,
        finished_scores=tf.fill([batch_size, k], LARGE_NEGATIVE),
        is_finished=tf.zeros([batch_size, k], tf.bool),
        alive_least=tf.zeros([batch_size, k]),
        finished_least=tf.zeros([batch_size, k]),
        can_improve=tf.ones([batch_size, 1], tf.bool),
        all_candidates_stop=tf.zeros([batch_size, 2 * k], tf.bool),
        cache=cache,
    )


def _grow_candidates(s, step, batch_size, config: GenerationConfig, dynamic) -> dict:
    """One decode step of the alive beams and their 2K best continuations (enough that K survive even if K of
    them just ended): sequences [B, 2K, m], summed log-probabilities, origin beam, whether each stops, the least
    log p of an added token, and the stepped cache (rows still in alive order)."""
    cur_len, k2 = s["cur_len"], 2 * config.num_beams
    flat = lambda x: tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))  # noqa: E731  [B, K, ..] -> [N, ..]
    tokens = tf.gather(flat(s["alive_sequences"]), [cur_len - 1], axis=1)
    logits, cache = step(tokens, cur_len - 1, s["cache"])
    log_probs = tf.nn.log_softmax(logits[:, -1, :], axis=-1)
    log_probs = penalise_repeated_ngrams(log_probs, flat(s["alive_sequences"]), cur_len, config.no_repeat_ngram_size)
    log_probs = forbid_early_eos(log_probs, cur_len, dynamic["min_length"], config.eos_token_id)
    model_log_probs = log_probs
    if config.copy_from_source:  # after the log-softmax, as transformers' prefix_allowed_tokens_fn
        log_probs += dynamic["source_bias"]
    vocab = tf.shape(log_probs)[-1]
    as_rows = lambda x: tf.reshape(x, [batch_size, -1])  # noqa: E731  [N, V] -> [B, K*V]
    totals = as_rows(tf.reshape(log_probs, [batch_size, config.num_beams, -1]) + s["alive_scores"][:, :, None])
    if config.do_sample:
        # Gumbel top-k = sampling k2 continuations without replacement from softmax(totals).
        seed = tf.stack([dynamic["seed"], cur_len])
        gumbel = -tf.math.log(-tf.math.log(tf.random.stateless_uniform(tf.shape(totals), seed, 1e-20, 1.0)))
        chosen = tf.math.top_k(totals + gumbel, k=k2).indices
        scores = tf.gather(totals, chosen, batch_dims=1)
    else:
        scores, chosen = tf.math.top_k(totals, k=k2)
    origin, token = chosen // vocab, chosen % vocab  # [B, K2]
    least = tf.gather(s["alive_least"], origin, batch_dims=1)  # [B, K2]
    if config.keeps_unsure_sources:
        chosen_log_prob = tf.gather(as_rows(model_log_probs), chosen, batch_dims=1)
        added = tf.gather(as_rows(dynamic["added"]), chosen, batch_dims=1)
        least = tf.where(added, tf.minimum(least, chosen_log_prob), least)
    return dict(sequences=_write_column(tf.gather(s["alive_sequences"], origin, batch_dims=1), cur_len, token),
                scores=scores, origin=origin, least=least, cache=cache,
                stops=tf.logical_or(token == config.eos_token_id, cur_len + 1 >= dynamic["max_length"]))


def _new_alive_state(s, candidates, batch_size, k) -> dict:
    """Alive: the best k candidates that did not stop, and the cache rows of the beams they grew from."""
    scores = candidates["scores"] + tf.cast(candidates["stops"], tf.float32) * LARGE_NEGATIVE
    pick = tf.math.top_k(scores, k=k).indices
    rows = tf.reshape(tf.range(batch_size)[:, None] * k + tf.gather(candidates["origin"], pick, batch_dims=1), [-1])
    return dict(alive_sequences=tf.gather(candidates["sequences"], pick, batch_dims=1),
                alive_scores=tf.gather(scores, pick, batch_dims=1),
                alive_least=tf.gather(candidates["least"], pick, batch_dims=1),
                cache=tf.nest.map_structure(lambda c: tf.gather(c, rows), candidates["cache"]))


def _new_finished_state(s, candidates, config: GenerationConfig, dynamic) -> dict:
    """Finished: the candidates among the top k that stopped, scored with the length penalty, merged with the
    finished beams; the best k kept."""
    k = config.num_beams
    just_finished = tf.logical_and(candidates["stops"], (tf.range(2 * k) < k)[None, :])
    scores = candidates["scores"] / length_penalty_divisor(s["cur_len"], dynamic["length_penalty"],
                                                           config.length_penalty_style)
    blocked = tf.logical_not(just_finished) | tf.logical_not(s["can_improve"])
    if config.early_stopping is True:
        blocked |= tf.reduce_all(s["is_finished"], axis=-1, keepdims=True)
    merged_scores = tf.concat([s["finished_scores"], scores + tf.cast(blocked, tf.float32) * LARGE_NEGATIVE], 1)
    keep = tf.math.top_k(merged_scores, k=k).indices
    merged = lambda old, new: tf.gather(tf.concat([old, new], 1), keep, batch_dims=1)  # noqa: E731
    return dict(finished_sequences=merged(s["finished_sequences"], candidates["sequences"]),
                finished_scores=tf.gather(merged_scores, keep, batch_dims=1),
                is_finished=merged(s["is_finished"], just_finished),
                finished_least=merged(s["finished_least"], candidates["least"]))


def _can_improve(new, config: GenerationConfig, dynamic):
    """[B, 1]: whether the best alive beam of `new` (the state after a step) can still beat its worst finished
    one (the reference's heuristic, exactly)."""
    alpha, cur_len = dynamic["length_penalty"], new["cur_len"]
    if config.early_stopping == "never":
        best_length = tf.where(alpha > 0.0, dynamic["max_length"] - 1, cur_len - 1)
    else:
        best_length = cur_len - 1
    best_alive = new["alive_scores"][:, :1] / length_penalty_divisor(best_length, alpha, config.length_penalty_style)
    worst_finished = tf.where(new["is_finished"], tf.reduce_min(new["finished_scores"], axis=1, keepdims=True),
                              LARGE_NEGATIVE)
    return tf.reduce_any(best_alive > worst_finished, axis=-1, keepdims=True)


def bucket_length(length, limit, smallest=16):
    """The padded length under XLA, which compiles once per shape: the next power of two >= `smallest`,
    at most `limit`, so a stream of requests compiles a few times. An int, or a scalar tensor in a graph."""
    if isinstance(length, int):
        bucket = smallest
        while bucket < length:
            bucket *= 2
        return min(bucket, limit)
    powers = smallest * tf.bitwise.left_shift(1, tf.range(31 - smallest.bit_length() + 1))
    bucket = tf.reduce_min(tf.where(powers >= tf.cast(length, tf.int32), powers, powers[-1]))
    return tf.minimum(bucket, limit)


def buckets(limit: int, smallest: int = 16) -> list[int]:
    """Every value `bucket_length` takes for lengths 1..limit, ascending: the shapes an XLA function meets."""
    found, bucket = [], smallest
    while bucket < limit:
        found.append(bucket)
        bucket *= 2
    return [*found, limit]


def pad_to_bucket(input_ids, attention_mask, pad_token_id, limit):
    """numpy [b, s] -> [b, bucket] ids and mask; padding is masked, so results do not change."""
    length = input_ids.shape[1]
    if length > limit:
        raise ValueError(f"input length {length} exceeds the encoder's max_position_embeddings ({limit}); "
                         "truncate the input")
    target = bucket_length(length, limit)
    pad = [(0, 0), (0, target - length)]
    return np.pad(input_ids, pad, constant_values=pad_token_id), np.pad(attention_mask, pad)


def build_generate_fn(model, config: GenerationConfig):
    """The whole generation (encoder + decode loop) for fixed static options, as a plain function of
    (input_ids [b, s], attention_mask [b, s], dynamic options) -> ids [b * R, m] and unsure [b * R] bool:
    the rows that returned their source (`min_added_token_probability`; a text path returns its text)."""

    matrices = storage.stored_matrices(model)

    def generate_fn(input_ids, attention_mask, dynamic):
        with storage.float32_once(matrices):  # outside the decode loop
            return _generate(input_ids, attention_mask, dynamic)

    def _generate(input_ids, attention_mask, dynamic):
        input_ids = tf.cast(input_ids, tf.int32)
        attention_mask = tf.cast(attention_mask, tf.int32)
        batch_size = tf.shape(input_ids)[0]
        rows_per_example = config.num_beams if config.num_beams > 1 else config.num_return_sequences
        encoder_states = model.encoder(input_ids, attention_mask)
        vocab_size = model.config.decoder.vocab_size
        if config.copy_from_source:
            bias = source_vocabulary_bias(input_ids, attention_mask, vocab_size, config.extra_token_ids,
                                          config.eos_token_id)
            dynamic = {**dynamic, "source_bias": tf.repeat(bias, rows_per_example, axis=0)}  # [N, V]
        if config.keeps_unsure_sources:
            added = added_tokens(input_ids, attention_mask, vocab_size, config.extra_token_ids)
            dynamic = {**dynamic, "added": tf.repeat(added, rows_per_example, axis=0)}  # [N, V]
        sources = (input_ids, attention_mask)
        if rows_per_example > 1:
            # Once per request, not per step: every beam / sample row reads its example's encoder states.
            encoder_states = tf.repeat(encoder_states, rows_per_example, axis=0)
            attention_mask = tf.repeat(attention_mask, rows_per_example, axis=0)
        cross_cache = model.decoder.cross_attention_cache(encoder_states)
        rows = batch_size * rows_per_example
        cache = model.decoder.empty_self_attention_cache(rows, config.max_length)

        def step(tokens, position, cache):
            return model.decoder.decode_step(tokens, position, cache, cross_cache, attention_mask)

        if config.num_beams > 1:
            sequences, least = beam_search(step, batch_size, cache, config, dynamic)
        else:
            sequences, least = greedy_or_sample(step, rows, cache, config, dynamic)
        unsure = least < tf.math.log(dynamic["min_added_token_probability"])  # all false at 0: log 0 = -inf
        if config.keeps_unsure_sources:
            source = source_as_output(*[tf.repeat(x, config.num_return_sequences, axis=0) for x in sources], config)
            sequences = tf.where(unsure[:, None], source, sequences)
        return _pad_after_eos(sequences, config.eos_token_id, config.pad_token_id), unsure

    return generate_fn


def dynamic_options(config: GenerationConfig) -> dict:
    """The per-call tensors. `max_length` may be lowered per call below the static buffer length."""
    return dict(max_length=tf.constant(config.max_length, tf.int32),
                min_length=tf.constant(config.min_length, tf.int32),
                length_penalty=tf.constant(config.length_penalty, tf.float32),
                temperature=tf.constant(config.temperature, tf.float32),
                top_p=tf.constant(config.top_p, tf.float32),
                seed=tf.constant(config.seed, tf.int32),
                min_added_token_probability=tf.constant(config.min_added_token_probability, tf.float32))


# Traced generate functions per model and static options; dropped with the model.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def generate(model, input_ids, attention_mask=None, jit_compile=False, **options):
    """`EncoderDecoder.generate`: ids [b, s] (right-padded) -> int32 [b * num_return_sequences, max_length],
    starting with the decoder start token, pad after eos."""
    config = resolve_config(model.config, **options)
    input_ids = np.asarray(input_ids, dtype=np.int32)
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [batch, length], got shape {input_ids.shape}")
    if attention_mask is None:
        attention_mask = (input_ids != model.config.encoder.pad_token_id).astype(np.int32)
    attention_mask = np.asarray(attention_mask, dtype=np.int32)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask shape {attention_mask.shape} != input_ids shape {input_ids.shape}")
    input_ids, attention_mask = pad_to_bucket(input_ids, attention_mask, model.config.encoder.pad_token_id,
                                              model.config.encoder.max_position_embeddings)
    functions = _COMPILED.setdefault(model, {})
    key = (config.static_key(), jit_compile)
    if key not in functions:
        functions[key] = tf.function(build_generate_fn(model, config), jit_compile=jit_compile, autograph=False)
    return functions[key](tf.constant(input_ids), tf.constant(attention_mask), dynamic_options(config))[0]

"""(source, target) pairs from files or lists, and the tf.data pipeline that tokenizes and batches them.

Shapes: b = batch, s = source length, t = target length.
"""

from __future__ import annotations

import collections
import json
import os

import tensorflow as tf


def read_pairs(path: str) -> list[tuple[str, str]]:
    """(source, target) pairs from a data file; blank lines are skipped.

    Args:
        path: str. A `.tsv` of `source<TAB>target` lines or a `.jsonl` of `{"source", "target"}` objects.

    Returns:
        list of (source, target) string pairs, in file order.

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: another extension, a line that is not a pair (naming file and line), or no pairs.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no data file at {path}")
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if path.endswith(".jsonl"):
                record = json.loads(line)
                if not isinstance(record, dict) or "source" not in record or "target" not in record:
                    raise ValueError(f"{path}:{number}: expected an object with 'source' and 'target'")
                pairs.append((str(record["source"]), str(record["target"])))
            elif path.endswith(".tsv"):
                fields = line.split("\t")
                if len(fields) != 2:
                    raise ValueError(f"{path}:{number}: expected 'source<TAB>target', got {len(fields)} fields")
                pairs.append((fields[0], fields[1]))
            else:
                raise ValueError(f"{path}: unknown data format; use .tsv or .jsonl")
    if not pairs:
        raise ValueError(f"{path} holds no examples")
    return pairs


def as_pairs(data) -> list[tuple[str, str]]:
    """A path (.tsv / .jsonl) or a sequence of (source, target) -> a list of pairs."""
    if isinstance(data, (str, os.PathLike)):
        return read_pairs(os.fspath(data))
    pairs = [(str(s), str(t)) for s, t in data]
    if not pairs:
        raise ValueError("no training examples")
    return pairs


def inserted_token_ids(tokenizer, data, min_count: int = 2) -> list[int]:
    """The tokens that targets add to their sources (connectives, punctuation): the `extra_token_ids` of
    copy-restricted decoding (`GenerationConfig.copy_from_source`).

    Args:
        tokenizer: a `tf_bert_seqgen.tokenizers` tokenizer.
        data: (source, target) pairs or a `.tsv` / `.jsonl` path (`read_pairs`).
        min_count: int. In how many pairs a token must be added to count.

    Returns:
        The sorted token ids.
    """
    pairs = as_pairs(data)
    sources = tokenizer.encode([s for s, _ in pairs])
    targets = tokenizer.encode([t for _, t in pairs])
    counts = collections.Counter(i for s, t in zip(sources, targets, strict=True) for i in set(t) - set(s))
    return sorted(i for i, n in counts.items() if n >= min_count)


def default_bucket_boundaries(max_length: int) -> list[int]:
    """8, 16, 32, ... below max_length: few distinct shapes, little padding."""
    boundaries, width = [], 8
    while width < max_length:
        boundaries.append(width)
        width *= 2
    return boundaries


def make_dataset(data, tokenizer, batch_size: int, max_source_length: int = 128, max_target_length: int = 128,
                 *, shuffle: bool = False, repeat: bool = False, bucket: bool = True, bucket_boundaries=None,
                 seed: int = 0, eos_token_id: int | None = None, pad_token_id: int | None = None,
                 drop_remainder: bool = False, pad_to_bucket: bool = False) -> tf.data.Dataset:
    """A tf.data pipeline of (features, labels) batches, tokenized in the graph by `tokenizer`.

    Args:
        data: (source, target) pairs or a `.tsv` / `.jsonl` path (see `read_pairs`).
        tokenizer: a `tf_bert_seqgen.tokenizers` tokenizer (its `tokenize` runs inside `Dataset.map`).
        batch_size: int. Examples per batch (the global batch under a distribution strategy).
        max_source_length: int. Source truncation.
        max_target_length: int. Target truncation, eos included.
        shuffle: bool. Reshuffle every pass, deterministically given `seed`.
        repeat: bool. Repeat forever (training with `steps_per_epoch`).
        bucket: bool. Group examples of similar length (`bucket_by_sequence_length`) before padding.
        bucket_boundaries: list of int or None. The buckets' lengths; None: 8, 16, 32, ... below the
            longer maximum length.
        seed: int. The shuffle's seed.
        eos_token_id: int or None. The model's; None: the tokenizer's.
        pad_token_id: int or None. The model's; None: the tokenizer's.
        drop_remainder: bool. Drop a last, smaller batch (static batch shapes).
        pad_to_bucket: bool. Pad the source and the target each to the next boundary (or max length)
            above their longest row, not to that row: a handful of shapes, so that an XLA training step
            compiles a handful of programs rather than one per batch length.

    Returns:
        Dataset of ({"input_ids" [b, s], "attention_mask" [b, s], "labels" [b, t]}, labels [b, t]),
        int32, right-padded with pad to the longest row of the batch (or its bucket's width); every
        target row ends with eos.

    Raises:
        ValueError: no pairs, or no eos or pad id (neither given nor the tokenizer's).
    """
    pairs = as_pairs(data)
    eos = tokenizer.eos_token_id if eos_token_id is None else eos_token_id
    pad = tokenizer.pad_token_id if pad_token_id is None else pad_token_id
    if eos is None or pad is None:
        raise ValueError("the target needs an eos and padding a pad id; the tokenizer has none, pass them")
    append_eos = not getattr(tokenizer, "add_eos", False)

    def tokenize(source, target):
        source_ids = tokenizer.tokenize(source)[:max_source_length]
        target_ids = tokenizer.tokenize(target)
        if append_eos:
            target_ids = tf.concat([target_ids[:max_target_length - 1], [eos]], axis=0)
        else:  # the tokenizer's eos is already last; keep it when truncating
            target_ids = tf.concat([target_ids[:-1][:max_target_length - 1], target_ids[-1:]], axis=0)
        return tf.cast(source_ids, tf.int32), tf.ones_like(source_ids, tf.int32), tf.cast(target_ids, tf.int32)

    ds = tf.data.Dataset.from_tensor_slices(([s for s, _ in pairs], [t for _, t in pairs]))
    # Tokenize once; later passes read the cache.
    ds = ds.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    padded_shapes = ([None], [None], [None])
    padding_values = (tf.constant(pad, tf.int32), tf.constant(0, tf.int32), tf.constant(pad, tf.int32))
    boundaries = list(bucket_boundaries or default_bucket_boundaries(max(max_source_length, max_target_length)))
    if bucket:
        ds = ds.bucket_by_sequence_length(
            lambda ids, mask, labels: tf.maximum(tf.shape(ids)[0], tf.shape(labels)[0]), boundaries,
            [batch_size] * (len(boundaries) + 1), padded_shapes=padded_shapes, padding_values=padding_values,
            drop_remainder=drop_remainder)
    else:
        ds = ds.padded_batch(batch_size, padded_shapes, padding_values, drop_remainder=drop_remainder)

    if pad_to_bucket:
        source_width = _bucket_width(boundaries, max_source_length)
        target_width = _bucket_width(boundaries, max_target_length)
        ds = ds.map(lambda ids, mask, labels: (_pad_columns(ids, source_width, pad), _pad_columns(mask, source_width, 0),
                                               _pad_columns(labels, target_width, pad)))

    def to_features(ids, mask, labels):
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}, labels

    return ds.map(to_features).prefetch(tf.data.AUTOTUNE)


def _bucket_width(boundaries, max_length: int):
    """length -> the smallest boundary >= length, else max_length (a function of a scalar int32 tensor)."""
    widths = tf.constant(sorted({b for b in boundaries if b < max_length} | {max_length}), tf.int32)
    return lambda length: tf.gather(widths, tf.minimum(tf.searchsorted(widths, [length])[0], len(widths) - 1))


def _pad_columns(x, width, value):
    """x [b, n] right-padded with `value` to [b, width(n)]."""
    n = tf.shape(x)[1]
    return tf.pad(x, [[0, 0], [0, tf.maximum(width(n) - n, 0)]], constant_values=value)

"""How the rows of a call reach the model: slices of at most `max_batch_size` rows, padded to a bucket under
XLA (which compiles per shape), and concurrent calls joined into one batch inside the graph."""

from __future__ import annotations

import itertools

import tensorflow as tf

from tf_bert_seqgen import generation

# Rows one model call takes at most: beam 4 over 32 texts of the full-size model holds a 3 GB cache.
DEFAULT_MAX_BATCH_SIZE = 32
# How long a lone call of a text signature waits for others to batch with. Calls that arrive while a
# batch runs are batched whatever the timeout; a generation takes 0.3-3 s, so 1 ms is lost in its noise.
DEFAULT_BATCH_TIMEOUT_MICROS = 1000
# Batches the BatchFunction op holds before a call is refused ("queue is full"): 100 x max_batch_size texts.
_MAX_ENQUEUED_BATCHES = 100


def row_buckets(limit: int) -> list[int]:
    """The row counts an XLA export decodes by default (`bucket_rows`): 1, 2, 4, ... below `limit`, then
    `limit`."""
    return generation.buckets(limit, smallest=1)


def check_buckets(buckets, limit: int, name: str) -> list[int]:
    """`buckets` as a list of ints: ascending, >= 1, ending at `limit` (as TF Serving's allowed_batch_sizes
    end at max_batch_size), else ValueError naming `name` and the problem."""
    buckets = [int(b) for b in buckets]
    if not buckets or buckets[0] < 1 or any(a >= b for a, b in itertools.pairwise(buckets)):
        raise ValueError(f"{name} must be ascending integers >= 1, got {buckets}")
    if buckets[-1] != limit:
        raise ValueError(f"{name} must end at {limit} (the largest shape the export meets), got {buckets}")
    return buckets


def bucket_for(length, buckets: list[int]):
    """The smallest of `buckets` (ascending) >= `length` (a scalar tensor or int), else the last: a scalar
    int32 tensor."""
    table = tf.constant(buckets, tf.int32)
    index = tf.searchsorted(table, tf.reshape(tf.cast(length, tf.int32), [1]))[0]
    return tf.gather(table, tf.minimum(index, len(buckets) - 1))


def bucket_rows(count, buckets: list[int]):
    """[n] row indices that pad `count` rows (a scalar tensor, >= 1) to its bucket of `buckets` (or `count`
    when larger than all): 0..count-1, then row 0 repeated. An XLA export compiles per row count, so a
    stream of calls of any size compiles for the buckets only."""
    bucket = tf.maximum(bucket_for(count, buckets), count)
    return tf.concat([tf.range(count), tf.zeros([bucket - count], tf.int32)], axis=0)


def in_slices(fn, inputs, output_specs, max_rows: int):
    """fn over rows [i, i + max_rows) of each input [b, ...], outputs (`output_specs`: TensorSpecs [None, ...])
    joined along rows: a large batch costs the memory of one slice (the cache and the logits grow with the
    rows)."""
    total = tf.shape(inputs[0])[0]
    count = (total + max_rows - 1) // max_rows

    def body(i, arrays):
        start = i * max_rows
        outputs = fn(*[x[start:start + max_rows] for x in inputs])
        return i + 1, [a.write(i, o) for a, o in zip(arrays, outputs, strict=True)]

    arrays = [tf.TensorArray(spec.dtype, size=count, infer_shape=False, element_shape=spec.shape)
              for spec in output_specs]
    _, arrays = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), arrays))
    return [a.concat() for a in arrays]


def batched(generate, rows, max_batch_size: int, timeout_micros: int, queue: str):
    """generate(*rows) -> [b] strings, for a call of up to `max_batch_size` rows through TF's BatchFunction op,
    which joins the rows of concurrent calls that share its `queue` (a name unique to one export) into one
    batch, never padded, and runs one batch at a time; a larger call runs directly. `generate`: a concrete
    function of `rows` ([b] tensors each)."""
    def join():
        return tf.raw_ops.BatchFunction(
            in_tensors=rows, captured_tensors=generate.captured_inputs, f=generate, Tout=[tf.string],
            num_batch_threads=1, max_batch_size=max_batch_size, allowed_batch_sizes=[],
            batch_timeout_micros=timeout_micros, max_enqueued_batches=_MAX_ENQUEUED_BATCHES,
            shared_name=queue, enable_large_batch_splitting=True)[0]

    generated = tf.cond(tf.size(rows[0]) <= max_batch_size, join, lambda: generate(*rows))
    generated.set_shape(rows[0].shape)  # the batch op's output has no static shape; signatures show [b]
    return generated

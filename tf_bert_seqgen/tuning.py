"""Which form each product by an int8 or bfloat16 matrix takes, measured on the CPU at hand.

XLA CPU runs the forms of `products.streamed` at speeds that differ by 2-5x and in an order that moves with
the row count, the matrix shapes and the CPU (module docstring of `products`), so an export measures them
before it traces: `measure_forms` times a stand-in for the model's decode step, under XLA, for each row count
the export will decode and each candidate form, and keeps the fastest (`products.ProductForms`). The
stand-in is the step's own products (per layer self-attention, cross-attention query and output, the
feed-forward pair, then the LM head) over random matrices of the model's shapes, on enough layers to
stream more bytes than the caches hold, as the model does: the same bytes, the same code
(`storage.Int8Matrix.times_transposed`), without the attention and cache work that no form changes.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np
import tensorflow as tf

from tf_bert_seqgen.products import DEQUANTIZED, Form, ProductForms
from tf_bert_seqgen.storage import Bfloat16Matrix, FloatMatrix, Int8Matrix, float32_once

# Bytes of stored matrices the stand-in streams at least (or the model's whole decode step if smaller):
# past the last-level caches these machines have (32 MB), as a real decode step is.
_STAND_IN_BYTES = 64 * 2 ** 20
# Decode steps per timing, and timings per form (the best is kept: the shared machines' bandwidth moves).
_STEPS, _REPEATS = 4, 3
# A block form is chosen only where the stand-in runs it in at most this share of `dequantized`'s time: the
# stand-in leaves out the rest of a decode step, and on the full-size model (AMD EPYC family 25) its gains
# came out about 10 points larger than the model's (int8: 2.2x against 1.4-1.5x; bfloat16: 1.08x against
# 0.95x, i.e. slower).
_MARGIN = 0.85


def candidates(rows: int) -> list[Form]:
    """The forms worth measuring at `rows` rows. One row: blocks of 0.5-2 MB of float32 (the best size moves
    with the matrices' width). Two to four: one product per row of each block (its cost grows with each
    row). Each with one block per loop iteration and with as many as `_lanes` gives (XLA runs each block's
    fused loop on one thread: two blocks per iteration streamed 24 int8 4096 x 1024 matrices 2.2x faster on
    2 cores of an AMD EPYC family 25). From eight rows on the block forms ran 1.2-2x slower than float32's
    (timings recorded in int8 exports' info files): only `dequantized`, which is not timed. The float32 product is
    a candidate everywhere."""
    if rows == 1:
        found = [Form("blocks", 2 ** e, lanes) for e in (17, 18, 19) for lanes in _lanes()]
    elif rows <= 4:
        found = [Form("row_blocks", 2 ** e, lanes) for e in (17, 18, 19) for lanes in _lanes()]
    else:
        found = []
    return [*found, DEQUANTIZED]


def _lanes() -> list[int]:
    """Blocks per loop iteration worth measuring: 1, and up to the threads TensorFlow runs an op on (at most
    4: each block is a fused loop of its own)."""
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1
    return sorted({1, min(threads, 2), min(threads, 4)})


def _shapes(config) -> tuple[list[tuple[int, int]], tuple[int, int]]:
    """[out, in] of one decoder layer's products in a decode step, and of the LM head."""
    h, i = config.hidden_size, config.intermediate_size
    return [(h, h)] * 6 + [(i, h), (h, i)], (config.vocab_size, h)


def _stand_in_layers(config) -> int:
    """Layers of the stand-in: enough to stream `_STAND_IN_BYTES` of int8 weights (the same layers for every
    dtype, so that timings compare), at most the model's."""
    layer, _ = _shapes(config)
    per_layer = sum(a * b for a, b in layer)
    return max(1, min(config.num_hidden_layers, math.ceil(_STAND_IN_BYTES / per_layer)))


def _matrix(shape, dtype: str, forms: ProductForms, rng):
    values = rng.normal(0.0, 0.02, shape).astype(np.float32)
    if dtype == "int8":
        return Int8Matrix(tf.Variable(np.clip(np.rint(values * 127 / 0.08), -127, 127).astype(np.int8)),
                          tf.Variable(np.full(shape[0], 0.08 / 127, np.float32)), forms)
    if dtype == "bfloat16":
        return Bfloat16Matrix(tf.Variable(tf.cast(values, tf.bfloat16)), forms)
    if dtype == "float32":
        return FloatMatrix(tf.Variable(values.T.copy()), layout="in_out")
    raise ValueError(f"no stand-in for {dtype!r} weights")


def _stand_in(config, dtype: str, forms: ProductForms):
    """A function x [r, h] -> [r, h] running `_STEPS` decode steps' products, and the matrices it reads."""
    rng = np.random.default_rng(0)
    layer_shapes, head_shape = _shapes(config)
    layers = [[_matrix(shape, dtype, forms, rng) for shape in layer_shapes] for _ in range(_stand_in_layers(config))]
    head = _matrix(head_shape, dtype, forms, rng)

    def step(x):  # x [r, 1, h]: a decode step's rows
        for matrices in layers:
            x = _layer_products(x, matrices)
        logits = head.times_transposed(x)
        return x + tf.reduce_mean(logits) * 1e-3

    def steps(x):
        with float32_once([m for matrices in layers for m in matrices] + [head]):  # as a model call does
            return tf.while_loop(lambda n, _: n < _STEPS, lambda n, x: (n + 1, step(x)), (0, x))[1]

    return steps


def _layer_products(x, matrices):
    """One decoder layer's products, chained as the layer chains them. x [..., h] -> [..., h]"""
    q, k, v, o, cross_q, cross_o, up, down = matrices
    x = o.times_transposed(q.times_transposed(x) + k.times_transposed(x) + v.times_transposed(x))
    x = cross_o.times_transposed(cross_q.times_transposed(x))
    x = x + down.times_transposed(tf.nn.gelu(up.times_transposed(x)))
    return x / (tf.reduce_max(tf.abs(x)) + 1.0)  # keeps values finite; a LayerNorm's place


def _seconds_per_step(config, dtype: str, forms: ProductForms, rows: int, jit_compile=True) -> float:
    steps = tf.function(_stand_in(config, dtype, forms), jit_compile=jit_compile, autograph=False)
    x = tf.random.stateless_normal([rows, 1, config.hidden_size], seed=[0, rows])
    steps(x).numpy()  # trace and compile
    best = float("inf")
    for _ in range(_REPEATS):
        start = time.perf_counter()
        steps(x).numpy()
        best = min(best, time.perf_counter() - start)
    return best / _STEPS


def measure_forms(config, dtype: str, row_counts, encoder_rows: int = 64) -> tuple[ProductForms, dict]:
    """The fastest form at each of `row_counts` (a decode step's rows: batch x beams), and for the encoder's
    passes over `encoder_rows` positions, for `dtype` ("int8" or "bfloat16") matrices of the decoder
    `config`'s shapes, measured under XLA on this CPU. Returns the forms and the timings behind them
    ({"decode": {rows: {form: ms per step}}, "encoder": {form: ms}}), which an export records."""
    timings = {"decode": {}, "encoder": {}}
    chosen = []
    for rows in sorted(set(row_counts)):
        if len(candidates(rows)) == 1:
            continue  # the float32 form, which a row count without an entry takes
        # Chosen from the rounded figures the export records, so the record explains every choice.
        found = {str(form): round(1000 * _seconds_per_step(config, dtype, ProductForms(((rows, form),)), rows), 4)
                 for form in candidates(rows)}
        timings["decode"][str(rows)] = found
        chosen.append((rows, _chosen(found)))
    encoder = {}
    for form in (DEQUANTIZED, Form("blocks", 2 ** 18)):
        # A pass over many positions is not a decode step: [1, rows, h] takes the encoder's form.
        encoder[str(form)] = 1000 * _encoder_seconds(config, dtype, ProductForms(encoder=form), encoder_rows)
    timings["encoder"] = {k: round(v, 4) for k, v in encoder.items()}
    return ProductForms(tuple(chosen), _chosen(timings["encoder"])), timings


def _chosen(timings: dict) -> Form:
    """The fastest form of {form: ms}, where it beats `dequantized` by the margin; else `dequantized`."""
    fastest = min(timings, key=timings.get)
    return Form.parse(fastest if timings[fastest] <= _MARGIN * timings[str(DEQUANTIZED)] else str(DEQUANTIZED))


def _encoder_seconds(config, dtype: str, forms: ProductForms, rows: int) -> float:
    rng = np.random.default_rng(1)
    layer_shapes, _ = _shapes(config)
    matrices = [_matrix(shape, dtype, forms, rng) for shape in layer_shapes]

    run = tf.function(lambda x: _layer_products(x, matrices), jit_compile=True, autograph=False)  # x [1, rows, h]
    x = tf.random.stateless_normal([1, rows, config.hidden_size], seed=[1, rows])
    run(x).numpy()
    best = float("inf")
    for _ in range(_REPEATS):
        start = time.perf_counter()
        run(x).numpy()
        best = min(best, time.perf_counter() - start)
    return best


def graph_mode_ms(config, dtype: str) -> float:
    """ms per stand-in decode step of one row in graph mode (no XLA) with `dtype` matrices ("int8": widened
    to float32 at each product, the only graph-mode form; "float32": Keras' [in, out] kernels, what a
    graph-mode export stores)."""
    return 1000 * _seconds_per_step(config, dtype, ProductForms(), 1, jit_compile=False)

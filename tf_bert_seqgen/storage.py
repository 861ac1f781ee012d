"""How a layer keeps the matrix it multiplies by: the `Matrix` an export hands each layer.

A `Dense` layer, the word-embedding lookup (`Embeddings`) and the tied LM head read their own Keras weight
(float32, [out, in]) unless their `stored` attribute holds a `Matrix`: the same matrix kept another way,
which an export hands each of them (`export.weights`):

- `FloatMatrix`: float32 in Keras' [in, out] layout (graph-mode exports), or float16 (half the bytes on
  disk; cast to float32 once per model call, `float32_once`);
- `Int8Matrix`: int8 with one float32 scale per output channel (weight-only, symmetric: w = q * scale,
  q in [-127, 127]); a quarter of the bytes;
- `Bfloat16Matrix`: bfloat16, widened to float32 by integer shifts (which XLA vectorises on every CPU, where
  its bfloat16 convert is not); half the bytes.
The last two are built for XLA, where their products stream the stored bytes (`products.streamed`, forms
measured per row count: `products.ProductForms`). Activations, biases, LayerNorm and softmax stay float32.

Shapes: out = output channels (the vocabulary for the word table), in = inputs (hidden for the table).
"""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

from tf_bert_seqgen import _compat, products
from tf_bert_seqgen.products import UNMEASURED, ProductForms

INT8_MAX = 127


class Matrix:
    """A stored [out, in] matrix. `times_transposed(x)`: x [..., in] -> x @ W^T [..., out]; `rows(ids)`:
    ids [...] -> W[ids] [..., in] float32 (the word table's lookup); `dense()`: W as float32 [out, in];
    `variables`: what an export saves."""

    variables: tuple = ()

    @property
    def shape(self) -> tuple[int, int]:
        raise NotImplementedError

    def times_transposed(self, x, training=False):
        raise NotImplementedError

    def rows(self, ids):
        return tf.gather(self.dense(), ids)

    def dense(self):
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        """Bytes a product by this matrix reads."""
        return sum(int(np.prod(v.shape)) * v.dtype.size for v in self.variables)


class FloatMatrix(Matrix):
    """A float matrix, [out, in] (`layout="out_in"`) or Keras' [in, out] (`"in_out"`, graph-mode exports),
    computed in the inputs' dtype. float16 weights of a float32 model are cast once per model call inside
    `float32_once`, else at each product."""

    def __init__(self, weights: tf.Variable, layout: str = "out_in"):
        if layout not in ("out_in", "in_out"):
            raise ValueError(f"layout must be 'out_in' or 'in_out', got {layout!r}")
        self.weights, self.layout = weights, layout
        self.variables = (weights,)
        self._per_call = None  # the float32 values, inside `float32_once`

    @property
    def shape(self):
        return tuple(self.weights.shape) if self.layout == "out_in" else tuple(self.weights.shape)[::-1]

    def _weights(self, dtype):
        if self._per_call is not None:
            return self._per_call
        return self.weights if self.weights.dtype == dtype else tf.cast(self.weights, dtype)

    def times_transposed(self, x, training=False):
        weights = self._weights(x.dtype)
        if self.layout == "in_out":
            return products.times(x, weights)
        return products.times_transposed(x, weights, training)

    def rows(self, ids):
        if self.layout != "out_in":
            raise ValueError("a lookup table is stored [out, in]")
        return tf.gather(self._weights(self.weights.dtype), ids)

    def dense(self):
        weights = self.float32_values()
        return weights if self.layout == "out_in" else tf.transpose(weights)

    def float32_values(self):
        """The weights in float32, in their stored layout."""
        return tf.cast(self.weights, tf.float32)


@contextlib.contextmanager
def float32_once(matrices):
    """Inside a model call, outside its decode loop: each of `matrices` that is not kept in float32 offers its
    float32 values computed here, once, to the products that read float32 (float16 storage; the `dequantized`
    form of int8 and bfloat16), instead of widening the weights at every decode step. A value no product
    reads is never computed (XLA and the graph prune it)."""
    widened = [m for m in matrices if not (isinstance(m, FloatMatrix) and m.weights.dtype == tf.float32)]
    for matrix in widened:
        matrix._per_call = matrix.float32_values()
    try:
        yield
    finally:
        for matrix in widened:
            matrix._per_call = None


def stored_matrices(model) -> list[Matrix]:
    """The `Matrix` objects the layers of `model` read (`layer.stored`), each once, in layer order."""
    found = (getattr(layer, "stored", None) for layer in _compat.sublayers(model))
    return list(dict.fromkeys(m for m in found if m is not None))


class _Streamed(Matrix):
    """A matrix stored in fewer bytes than float32, whose XLA products stream those bytes in the form
    `forms` gives for the pass and its row count; outside XLA it is widened to float32 at each product."""

    stored: tf.Variable
    scale: tf.Variable | None = None
    forms: ProductForms

    @property
    def shape(self):
        return tuple(self.stored.shape)

    def to_float32(self, values):
        raise NotImplementedError

    def form(self, x) -> products.Form:
        """The form of the product by x [..., in]: per row count in a decode step (x [r, 1, in])."""
        if products.is_decode_step(x):
            return self.forms.for_rows(x.shape[0])
        return self.forms.encoder

    _per_call = None  # the float32 values, inside `float32_once`

    def times_transposed(self, x, training=False):
        if not _compat.in_xla_context():
            return products.times_transposed(x, self._float32(), training)
        form = self.form(x)
        if form.name == "dequantized":
            return products.times_transposed(x, self._float32(), training)
        return products.streamed(x, self.to_float32, self.stored, self.scale, form)

    def _float32(self):
        return self.float32_values() if self._per_call is None else self._per_call

    def float32_values(self):
        """W in float32, [out, in]."""
        return self.dense()

    def rows(self, ids):
        values = self.to_float32(tf.gather(self.stored, ids))
        return values if self.scale is None else values * tf.gather(self.scale, ids)[..., None]

    def dense(self):
        values = self.to_float32(self.stored)
        return values if self.scale is None else values * self.scale[:, None]


class Int8Matrix(_Streamed):
    """int8 values [out, in] and float32 scales [out]: W = values * scale[:, None]."""

    def __init__(self, values: tf.Variable, scale: tf.Variable, forms: ProductForms = UNMEASURED):
        if values.dtype != tf.int8 or scale.dtype != tf.float32:
            raise ValueError(f"an int8 matrix is int8 values and float32 scales, got {values.dtype.name} and "
                             f"{scale.dtype.name}")
        self.stored, self.scale, self.forms = values, scale, forms
        self.variables = (values, scale)

    def to_float32(self, values):
        return tf.cast(values, tf.float32)


class Bfloat16Matrix(_Streamed):
    """bfloat16 values [out, in]. A bfloat16 is the high half of a float32: widened by a 16-bit shift of its
    bits, exact."""

    def __init__(self, values: tf.Variable, forms: ProductForms = UNMEASURED):
        if values.dtype != tf.bfloat16:
            raise ValueError(f"a bfloat16 matrix holds bfloat16 values, got {values.dtype.name}")
        self.stored, self.forms = values, forms
        self.variables = (values,)

    def to_float32(self, values):
        bits = tf.cast(tf.bitcast(values, tf.uint16), tf.int32)
        return tf.bitcast(tf.bitwise.left_shift(bits, 16), tf.float32)


def quantize_int8(weights) -> tuple[np.ndarray, np.ndarray]:
    """float [out, in] -> (int8 values [out, in], float32 scales [out]): symmetric, one scale per output
    channel, scale = max |w| / 127 over the channel's row (1 for an all-zero row), values = round(w / scale)."""
    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 2:
        raise ValueError(f"int8 quantization takes a [out, in] matrix, got shape {weights.shape}")
    if not np.isfinite(weights).all():
        raise ValueError("int8 quantization of a matrix with inf or nan values")
    peak = np.abs(weights).max(axis=1)
    scale = np.where(peak > 0, peak / INT8_MAX, 1.0).astype(np.float32)
    values = np.clip(np.rint(weights / scale[:, None]), -INT8_MAX, INT8_MAX).astype(np.int8)
    return values, scale

"""Matrix products, x [..., in] times a stored [out, in] matrix transposed, in the form each mode runs fastest.

A decode step multiplies a few rows (one per sequence) by every weight matrix, so its speed is how fast
the weights stream from memory. Float32 weights: `times_transposed` (forms chosen per TensorFlow backend and
mode, `benchmarks/product_forms.py`). Weights stored in fewer bytes (int8 with one scale per output channel,
bfloat16), under XLA: `streamed`, whose forms are measured per row count on the CPU at hand
(`tuning.measure_forms`), because XLA CPU runs them at very different speeds:

- XLA fuses the conversion to float32 into a one-row product, but its fused loop streams a 4096 x 1024
  int8 matrix at about 6 GB/s from memory against 9-10 GB/s for the same loop over blocks of a few hundred
  rows (`blocks`: a `tf.while_loop` over row blocks, each converted and multiplied where it sits in cache),
  and 21-22 GB/s with two blocks per iteration (`Form.lanes`: each fused loop runs on one thread, two
  independent ones on two; 24 such matrices, 2 cores of an AMD EPYC family 25);
- at a few rows, each row's product by a block while the block is in cache (`row_blocks`); converting a
  block once for all rows and multiplying it as float32 (the plain or the broadcast form) ran 1.5-3x slower;
- from 4-8 rows on the products are bound by XLA's arithmetic, not by bytes: `dequantized` multiplies by
  the float32 values, widened once per model call outside the decode loop (`storage.float32_once`): float32
  speed per step, plus one pass over the weights per request (50-60 ms for the full-size model).
Each block form is a loop over the matrix, which costs about 10-20 us per block on these machines: many
small matrices (a 768-wide model) gain less than a few large ones.
Figures: the timings `tuning.measure_forms` records in an int8 / bfloat16 export's info file.

Shapes: r = rows, B = rows of a block.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_bert_seqgen import _compat

# Rows up to which XLA multiplies by a weight matrix fastest as a broadcast matrix-vector product (equal
# at 128 rows, the plain product 1.3x faster at 512; see `times_transposed`).
_MAX_XLA_BROADCAST_ROWS = 128
# Outputs up to which a decode step's graph-mode product is transposed by the identity (see `_transposed`).
_MAX_IDENTITY_TRANSPOSE_COLUMNS = 4096

# The forms of a product by a matrix stored in fewer bytes (module docstring).
STREAMED_FORMS = ("blocks", "row_blocks", "dequantized")


def add_bias(outputs, bias):
    """outputs [..., n] + bias [n], in the form each mode runs fastest after a matrix product.

    Graph mode: BiasAdd, which TensorFlow's CPU rewrite fuses with the MatMul before it into one oneDNN
    kernel. XLA fuses a matrix-vector product with the add that consumes it into one loop on one thread
    ("output fusion"), and a decode step is almost nothing but such products; subtracting the negated
    bias is the same sum, is not an add, and leaves the product to XLA's multi-threaded dot (1.3x faster
    per 1024 x 1024 product, 1.7x for the LM head; measured with the TF profiler).
    """
    if _compat.in_xla_context():
        return outputs - (-bias)
    return tf.nn.bias_add(outputs, bias)


def times_transposed(x, weights, training=False):
    """x [..., in] @ weights[out, in]^T -> [..., out], in a form that is fast on every CPU we meet.

    TensorFlow runs a graph-mode MatMul on oneDNN where the CPU has AVX512-VNNI / BF16 / AMX and on Eigen
    elsewhere (AVX2-only CPUs), and the two disagree on forms (`benchmarks/product_forms.py` prints each
    form on the CPU at hand):
    - Graph mode: weights as the left, untransposed operand, `(W @ x^T)^T`. The usual `x @ W^T` is
      5-15x slower on Eigen from 2 to 128 rows (a stream of 193 such products made beam search 1 s per
      token); this form is within 1.3x of the fastest on both backends at every row count. In a decode
      step the [out, rows] result is turned by a product with the identity, not by Transpose (`_transposed`).
    - XLA (its own kernels, whatever the CPU), up to 128 rows or a decode step (one new position per
      row): a broadcast matrix-vector product, which XLA runs with the weights as the left operand,
      1.5-2.1x faster than the plain product at 4-32 rows. Encoder passes and training under XLA: the
      plain product (1.3x faster than the broadcast one at 512 rows; the broadcast form's gradient would
      also materialise a weight-sized tensor per row).
    """
    def product(rows):
        if not _compat.in_xla_context() and weights.dtype == tf.bfloat16:
            # bfloat16 is offered only on CPUs that compute it natively, all of which run oneDNN, whose
            # fused bf16 kernel wants this form (1 row: 45 ms per token against 101 ms with the weights on
            # the left).
            return tf.matmul(rows, weights, transpose_b=True)
        if not _compat.in_xla_context():
            return _transposed(tf.matmul(weights, rows, transpose_b=True), is_decode_step(x))
        if not training and _few_rows(x, rows.shape[0]):
            return _broadcast_matvec(rows, weights)
        return tf.matmul(rows, weights, transpose_b=True)

    return as_rows(x, product, weights.shape[0])


def times(x, weights):
    """x [..., in] @ weights [in, out] -> [..., out]: Keras' layout, which graph-mode exports store (TensorFlow's
    CPU kernels stream it 1.3x faster than `(W @ x^T)^T` at 4-8 rows on some CPUs)."""
    return as_rows(x, lambda rows: tf.matmul(rows, weights), weights.shape[1])


def as_rows(x, product, units):
    """x [..., in] -> product(rows [r, in]) [r, units] -> [..., units]."""
    rows = tf.reshape(x, [-1, x.shape[-1]])
    if x.shape[:-1].is_fully_defined():
        rows.set_shape([x.shape[:-1].num_elements(), x.shape[-1]])
    products = tf.reshape(product(rows), tf.concat([tf.shape(x)[:-1], [units]], axis=0))
    products.set_shape(x.shape[:-1] + [units])  # the static shape the reshapes lost
    return products


def _broadcast_matvec(rows, weights):
    """rows [r, in] @ weights [out, in]^T as r matrix-vector products by one broadcast matrix."""
    return tf.linalg.matvec(weights[None], rows[:, None, :])[:, 0]


def _transposed(columns, small):
    """columns [out, r] -> [r, out]. TensorFlow's Transpose of a decode step's [out, r] product costs
    50-100 us from 4 rows on (its sharded kernel, on oneDNN and Eigen alike); the product with the r x r
    identity is exact and takes 5-10 us up to 4096 outputs, so `small` (a decode step, below the vocabulary)
    takes it."""
    if not small or columns.shape[0] > _MAX_IDENTITY_TRANSPOSE_COLUMNS:
        return tf.transpose(columns)
    return tf.matmul(tf.eye(tf.shape(columns)[1], dtype=columns.dtype), columns, transpose_b=True)


def is_decode_step(x):
    """Whether `x` [b, t, in] holds one position per sequence (a decode step): a few rows at most."""
    return x.shape.rank == 3 and x.shape[1] == 1


def _few_rows(x, row_count):
    """Whether `x` [..., in] holds few enough rows for XLA's broadcast matrix-vector form: 2 to 128
    when the count is static, else a decode step (one position per sequence: a batch dimension that a
    SavedModel leaves unknown)."""
    if row_count is not None:
        return 1 < row_count <= _MAX_XLA_BROADCAST_ROWS
    return is_decode_step(x)


# --- products by matrices stored in fewer bytes, under XLA ------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Form:
    """How one product by a stored matrix is written: one of `STREAMED_FORMS`, and for the block forms the
    elements of a block (its rows are that over the matrix's inputs; 2**18 = 1 MB of float32) and the
    blocks each loop iteration multiplies (`lanes`): independent products, which XLA CPU runs on as many
    threads, where its fused loop over one block runs on one."""

    name: str
    block_elements: int = 2 ** 18
    lanes: int = 1

    def __post_init__(self):
        if self.name not in STREAMED_FORMS:
            raise ValueError(f"unknown product form {self.name!r}; known: {', '.join(STREAMED_FORMS)}")
        if self.block_elements < 1 or self.lanes < 1:
            raise ValueError(f"block_elements and lanes must be >= 1, got {self.block_elements}, {self.lanes}")

    def __str__(self):
        if self.name == "dequantized":
            return self.name
        return f"{self.name}/{self.block_elements}" + (f"x{self.lanes}" if self.lanes > 1 else "")

    @classmethod
    def parse(cls, text: str) -> Form:
        """The inverse of `str`: "blocks/262144", "blocks/262144x2", "dequantized"."""
        name, _, size = str(text).partition("/")
        if not size:
            return cls(name)
        elements, _, lanes = size.partition("x")
        return cls(name, int(elements), int(lanes or 1))


DEQUANTIZED = Form("dequantized")


@dataclasses.dataclass(frozen=True)
class ProductForms:
    """The form of every product by a stored matrix: per row count of a decode step (measured on the CPU
    the export ran on, `tuning.measure_forms`), and for the passes over many positions (the encoder, the
    cross-attention keys and values, scoring). A decode step of a row count not in the table, or of an
    unknown one, takes `dequantized`: float32 speed, whatever the CPU."""

    decode: tuple = ()  # ((rows, Form), ...), rows ascending
    encoder: Form = DEQUANTIZED

    def for_rows(self, rows: int | None) -> Form:
        return dict(self.decode).get(rows, DEQUANTIZED)

    def to_dict(self) -> dict:
        return {"decode": {str(rows): str(form) for rows, form in self.decode}, "encoder": str(self.encoder)}

    @classmethod
    def from_dict(cls, values: dict) -> ProductForms:
        decode = sorted((int(rows), Form.parse(form)) for rows, form in values.get("decode", {}).items())
        return cls(tuple(decode), Form.parse(values.get("encoder", "dequantized")))


# Before any measurement: every product in the float32 form (float32 speed, whatever the CPU).
UNMEASURED = ProductForms()


def streamed(x, to_float32, stored, scale, form: Form):
    """x [..., in] @ (to_float32(stored) * scale[:, None])^T -> [..., out] in a block `form`, under XLA.

    stored [out, in] (int8, or bfloat16 bits); to_float32 converts any slice of it; scale [out] or None.
    (`dequantized` is the float32 product by the widened matrix: `storage`'s.)
    """
    out, inputs = stored.shape
    name = form.name
    if name == "row_blocks" and x.shape[:-1].num_elements() is None:
        name = "blocks"  # one product per row needs the row count

    def product(rows):
        products = _in_blocks(rows, stored, to_float32, max(form.block_elements // inputs, 1), _INNER[name],
                              form.lanes)
        return products if scale is None else products * scale

    return as_rows(x, product, out)


def _in_blocks(rows, stored, to_float32, block_rows, inner, lanes=1):
    """rows [r, in] @ to_float32(stored)^T, a `tf.while_loop` over groups of `lanes` blocks of `block_rows`
    rows of `stored` [out, in]: each block is converted to float32 where it sits in cache and multiplied by
    `inner`, the blocks of a group independently (so in parallel); the rows past the last whole group form
    one product of their own."""
    out, inputs = stored.shape
    group_rows = block_rows * lanes
    count = out // group_rows
    parts = []
    if count:
        groups = tf.reshape(stored[:count * group_rows] if count * group_rows < out else stored,
                            [count, lanes, block_rows, inputs])

        def body(i, products):
            group = tf.gather(groups, i)
            return i + 1, products.write(i, tf.concat([inner(rows, to_float32(group[j])) for j in range(lanes)], 1))

        products = tf.TensorArray(tf.float32, size=count, element_shape=[rows.shape[0], group_rows])
        _, products = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), products))
        parts.append(tf.reshape(tf.transpose(products.stack(), [1, 0, 2]), [-1, count * group_rows]))
    if count * group_rows < out:
        parts.append(inner(rows, to_float32(stored[count * group_rows:])))
    return parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)


# rows [r, in], block [B, in] float32 -> [r, B]
_INNER = {
    "blocks": lambda rows, block: tf.matmul(rows, block, transpose_b=True),
    "row_blocks": lambda rows, block: tf.stack([tf.linalg.matvec(block, rows[i]) for i in range(rows.shape[0])]),
}

"""The building blocks of a BertForSeqGeneration stack, as Keras 3 layers (TensorFlow backend).

Names of sub-layers follow BERT's checkpoint layout (`attention/self/query`, `intermediate/dense`, ...)
in spirit, so the weight maps in `checkpoints/` read like the checkpoints they load.

Shapes: b = batch, t = query length, s = key length, h = hidden, n = heads, d = head size, v = vocab.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from tf_bert_seqgen import _compat

# Added to attention logits where attention is not allowed. Not -inf: a fully masked row (an all-pad
# source) must stay finite, as in the reference, which uses the dtype's minimum.
MASK_VALUE = -1e9

# Rows up to which XLA multiplies by a weight matrix fastest as a broadcast matrix-vector product (equal
# at 128 rows, the plain product 1.3x faster at 512; see `times_transposed`).
_MAX_XLA_BROADCAST_ROWS = 128
# Outputs up to which a decode step's graph-mode product is transposed by the identity (see `_transposed`).
_MAX_IDENTITY_TRANSPOSE_COLUMNS = 4096


# Layer id -> the weight it reads instead of its own, while an export traces (`in_out_kernels`).
_IN_OUT_KERNELS: dict[int, tf.Variable | tf.Tensor] = {}


@contextlib.contextmanager
def in_out_kernels(kernels: dict):
    """While active, each Dense in `kernels` ({layer: [in, out] variable or tensor}) multiplies by that
    kernel as `x @ W`, not by its own [out, in] one: a graph-mode export stores Keras' layout, which
    TensorFlow's CPU kernels (oneDNN and Eigen alike) stream 1.3x faster than `(W @ x^T)^T` at 4-8 rows on
    some CPUs (`benchmarks/product_forms.py`). Training, checkpoints and XLA keep [out, in].

    A `keras.layers.Embedding` in `kernels` ({layer: [v, h]}) looks up and, as the tied LM head, projects
    with the given table. A weight of another float dtype (a float16 export) is cast to the compute dtype
    where it is read; the export casts once per request, outside the decode loop, by nesting this context
    with the cast tensors. The previous mapping comes back on exit."""
    previous = dict(_IN_OUT_KERNELS)
    _IN_OUT_KERNELS.update({id(layer): kernel for layer, kernel in kernels.items()})
    try:
        yield
    finally:
        _IN_OUT_KERNELS.clear()
        _IN_OUT_KERNELS.update(previous)


def activation(name: str):
    """The feed-forward activation of an HF config name ("gelu" is BERT's exact erf form)."""
    if name == "gelu":
        return lambda x: tf.nn.gelu(x, approximate=False)
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: tf.nn.gelu(x, approximate=True)
    if name == "relu":
        return tf.nn.relu
    if name in ("silu", "swish"):
        return tf.nn.silu
    raise ValueError(f"unsupported activation {name!r}")


def _initializer(stddev):
    return keras.initializers.TruncatedNormal(stddev=stddev)


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

    Decoding multiplies a few rows (one per sequence) by every weight matrix, so speed is how fast the
    weights stream. TensorFlow runs a graph-mode MatMul on oneDNN where the CPU has AVX512-VNNI / BF16 /
    AMX and on Eigen elsewhere (AVX2-only CPUs), and the two disagree on forms
    (`benchmarks/product_forms.py` prints each form on the CPU at hand):
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
            return _transposed(tf.matmul(weights, rows, transpose_b=True), _is_decode_step(x))
        if not training and _few_rows(x, rows.shape[0]):
            return tf.linalg.matvec(weights[None], rows[:, None, :])[:, 0]
        return tf.matmul(rows, weights, transpose_b=True)

    return _as_rows(x, product, weights.shape[0])


def _as_rows(x, product, units):
    """x [..., in] -> product(rows [r, in]) [r, units] -> [..., units]."""
    rows = tf.reshape(x, [-1, x.shape[-1]])
    if x.shape[:-1].is_fully_defined():
        rows.set_shape([x.shape[:-1].num_elements(), x.shape[-1]])
    products = tf.reshape(product(rows), tf.concat([tf.shape(x)[:-1], [units]], axis=0))
    products.set_shape(x.shape[:-1] + [units])  # the static shape the reshapes lost
    return products


def batch_matmul(x, y, adjoint_b=False):
    """x [..., t, k] @ y [..., k, s] (y [..., s, k] with adjoint_b) -> [..., t, s]: attention's products.

    Written as BatchMatMulV3, which oneDNN leaves to TensorFlow's own kernel. oneDNN's rewrite of the
    usual BatchMatMulV2 costs 70-130 us per call at decode-step sizes against 7-70 us (TF profiler, 24-layer
    model: 48 such products per step were 7 ms of a batch-1 step's overhead); XLA and the gradient treat
    both alike.
    """
    return tf.raw_ops.BatchMatMulV3(x=x, y=y, Tout=x.dtype, adj_y=adjoint_b)


def softmax(scores):
    """Softmax over the last axis, as plain element-wise ops and reductions.

    oneDNN's Softmax kernel costs 40-90 us per call at decode-step sizes against about 10 us for these
    (TF profiler, 24-layer model: 48 calls per step); the sum is the same to float rounding.
    """
    exp = tf.exp(scores - tf.reduce_max(scores, axis=-1, keepdims=True))
    return exp / tf.reduce_sum(exp, axis=-1, keepdims=True)


def _transposed(columns, small):
    """columns [out, r] -> [r, out]. TensorFlow's Transpose of a decode step's [out, r] product costs
    50-100 us from 4 rows on (its sharded kernel, on oneDNN and Eigen alike); the product with the r x r
    identity is exact and takes 5-10 us up to 4096 outputs, so `small` (a decode step, below the vocabulary)
    takes it."""
    if not small or columns.shape[0] > _MAX_IDENTITY_TRANSPOSE_COLUMNS:
        return tf.transpose(columns)
    return tf.matmul(tf.eye(tf.shape(columns)[1], dtype=columns.dtype), columns, transpose_b=True)


def _is_decode_step(x):
    """Whether `x` [b, t, in] holds one position per sequence (a decode step): a few rows at most."""
    return x.shape.rank == 3 and x.shape[1] == 1


def _few_rows(x, row_count):
    """Whether `x` [..., in] holds few enough rows for XLA's broadcast matrix-vector form: 2 to 128
    when the count is static, else a decode step (one position per sequence: a batch dimension that a
    SavedModel leaves unknown)."""
    if row_count is not None:
        return 1 < row_count <= _MAX_XLA_BROADCAST_ROWS
    return _is_decode_step(x)


class Dense(keras.layers.Layer):
    """x [..., in] -> x W^T + b [..., units]; the kernel W is stored [units, in], PyTorch's layout.

    Why [out, in]: a decode step is almost nothing but matrix-vector products (one row per sequence),
    and in that layout each output is a dot product with one contiguous weight row. Under XLA the whole
    batch-1 decode step is 1.2x faster than with Keras' [in, out] kernels (TF profiler, benchmark model).
    TensorFlow's graph-mode kernels prefer [in, out] at several rows, so a graph-mode export multiplies by
    an [in, out] copy instead (`in_out_kernels`).
    """

    def __init__(self, units, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(self.units, input_shape[-1]), initializer=self.kernel_initializer,
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        self.built = True

    def call(self, inputs, training=False):
        in_out = _IN_OUT_KERNELS.get(id(self))
        if in_out is not None:
            kernel = tf.cast(in_out, inputs.dtype)
            return add_bias(_as_rows(inputs, lambda rows: tf.matmul(rows, kernel), self.units), self.bias)
        return add_bias(times_transposed(inputs, self.kernel, training), self.bias)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


def padding_bias(mask):
    """[b, s] 1/0 mask -> [b, 1, 1, s] additive bias (0 where attended, MASK_VALUE where padding)."""
    mask = tf.cast(mask, tf.float32)
    return (1.0 - mask)[:, None, None, :] * MASK_VALUE


def causal_bias(query_length, key_length, query_offset=0):
    """[1, 1, t, s] bias letting query i (at absolute position query_offset + i) see keys j <= it."""
    query_positions = tf.range(query_length) + query_offset
    key_positions = tf.range(key_length)
    allowed = key_positions[None, :] <= query_positions[:, None]
    return tf.where(allowed, 0.0, MASK_VALUE)[None, None, :, :]


class Embeddings(keras.layers.Layer):
    """Word + absolute position embeddings -> LayerNorm -> dropout. No token types (BertGeneration).

    call(input_ids [b, t], position_offset scalar) -> [b, t, h]
    """

    def __init__(self, vocab_size, hidden_size, max_position_embeddings, layer_norm_eps=1e-12,
                 dropout=0.0, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        self.layer_norm_eps = layer_norm_eps
        self.dropout_rate = dropout
        self.initializer_range = initializer_range
        init = _initializer(initializer_range)
        dtype = self.dtype_policy  # sub-layers store and compute in this layer's dtype (bfloat16 mode)
        self.word_embeddings = keras.layers.Embedding(vocab_size, hidden_size, embeddings_initializer=init,
                                                      name="word_embeddings", dtype=dtype)
        self.position_embeddings = keras.layers.Embedding(max_position_embeddings, hidden_size,
                                                          embeddings_initializer=init, name="position_embeddings",
                                                          dtype=dtype)
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="layer_norm", dtype=dtype)
        self.dropout = keras.layers.Dropout(dropout, dtype=dtype)

    def build(self, input_shape=None):
        self.word_embeddings.build((None, None))
        self.position_embeddings.build((None, None))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def call(self, input_ids, position_offset=0, training=False):
        length = tf.shape(input_ids)[1]
        positions = tf.range(length) + tf.cast(position_offset, tf.int32)
        table = _IN_OUT_KERNELS.get(id(self.word_embeddings))
        words = (self.word_embeddings(input_ids) if table is None
                 else tf.cast(tf.gather(table, input_ids), self.compute_dtype))
        x = words + self.position_embeddings(positions)[None]
        return self.dropout(self.layer_norm(x), training=training)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
                "max_position_embeddings": self.max_position_embeddings, "layer_norm_eps": self.layer_norm_eps,
                "dropout": self.dropout_rate, "initializer_range": self.initializer_range}


class Attention(keras.layers.Layer):
    """BERT attention block: multi-head attention, output projection, residual, LayerNorm (post-LN).

    Used for self-attention (keys from the same sequence) and cross-attention (keys from the encoder).
    Keys and values can be projected once up front (`project_key_value`) and passed in, which is how the
    decoder reuses the encoder's K/V for every generated token and keeps a self-attention cache.
    """

    def __init__(self, hidden_size, num_heads, dropout=0.0, attention_dropout=0.0, layer_norm_eps=1e-12,
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.dropout_rate = dropout
        self.attention_dropout_rate = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        init = _initializer(initializer_range)
        dtype = self.dtype_policy
        self.query, self.key, self.value, self.output_dense = (
            Dense(hidden_size, kernel_initializer=init, name=name, dtype=dtype)
            for name in ("query", "key", "value", "output_dense"))
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="layer_norm", dtype=dtype)
        self.dropout = keras.layers.Dropout(dropout, dtype=dtype)
        self.attention_dropout = keras.layers.Dropout(attention_dropout, dtype=dtype)

    def build(self, input_shape=None):
        for dense in (self.query, self.key, self.value, self.output_dense):
            dense.build((None, None, self.hidden_size))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def _split_heads(self, x):
        """[b, t, h] -> [b, n, t, d]"""
        if x.shape[1] == 1:  # a decode step: the same memory order, so no transpose (an op less per call)
            return tf.reshape(x, [-1, self.num_heads, 1, self.head_size])
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        x = tf.reshape(x, [batch, length, self.num_heads, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])

    def _merge_heads(self, x):
        """[b, n, t, d] -> [b, t, h]"""
        if x.shape[2] == 1:
            return tf.reshape(x, [-1, 1, self.hidden_size])
        batch, length = tf.shape(x)[0], tf.shape(x)[2]
        return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [batch, length, self.hidden_size])

    def project_key_value(self, context):
        """context [b, s, h] -> (key, value), each [b, n, s, d]."""
        return self._split_heads(self.key(context)), self._split_heads(self.value(context))

    def call(self, hidden, key_value, attention_bias, training=False):
        """hidden [b, t, h]; key_value: (key, value) [b, n, s, d] each; attention_bias broadcastable to
        [b, n, t, s]. Returns [b, t, h]."""
        key, value = key_value
        query = self._split_heads(self.query(hidden))
        scores = batch_matmul(query, key, adjoint_b=True) * (self.head_size ** -0.5)
        scores = scores + tf.cast(attention_bias, scores.dtype)
        probs = self.attention_dropout(softmax(scores), training=training)
        context = self._merge_heads(batch_matmul(probs, value))
        return self.layer_norm(hidden + self.dropout(self.output_dense(context), training=training))

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "num_heads": self.num_heads,
                "dropout": self.dropout_rate, "attention_dropout": self.attention_dropout_rate,
                "layer_norm_eps": self.layer_norm_eps, "initializer_range": self.initializer_range}


class FeedForward(keras.layers.Layer):
    """x -> LayerNorm(x + dropout(dense(act(dense(x))))). [b, t, h] -> [b, t, h]"""

    def __init__(self, hidden_size, intermediate_size, hidden_act="gelu", dropout=0.0, layer_norm_eps=1e-12,
                 initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.dropout_rate = dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        init = _initializer(initializer_range)
        dtype = self.dtype_policy
        self.intermediate = Dense(intermediate_size, kernel_initializer=init, name="intermediate", dtype=dtype)
        self.output_dense = Dense(hidden_size, kernel_initializer=init, name="output_dense", dtype=dtype)
        self.layer_norm = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="layer_norm", dtype=dtype)
        self.dropout = keras.layers.Dropout(dropout, dtype=dtype)
        self._activation = activation(hidden_act)

    def build(self, input_shape=None):
        self.intermediate.build((None, None, self.hidden_size))
        self.output_dense.build((None, None, self.intermediate_size))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def call(self, x, training=False):
        y = self.output_dense(self._activation(self.intermediate(x)))
        return self.layer_norm(x + self.dropout(y, training=training))

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size,
                "intermediate_size": self.intermediate_size, "hidden_act": self.hidden_act,
                "dropout": self.dropout_rate, "layer_norm_eps": self.layer_norm_eps,
                "initializer_range": self.initializer_range}


class TransformerLayer(keras.layers.Layer):
    """One post-LN BERT layer, for both stacks: self-attention, optional cross-attention, feed-forward.

    `shared_with` (BERTSHARE) makes this layer use another layer's self-attention and feed-forward
    sub-layers, so the weights exist once; cross-attention is always this layer's own.
    """

    def __init__(self, hidden_size, num_heads, intermediate_size, hidden_act="gelu", dropout=0.0,
                 attention_dropout=0.0, layer_norm_eps=1e-12, initializer_range=0.02, cross_attention=False,
                 shared_with: TransformerLayer | None = None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.dropout_rate = dropout
        self.attention_dropout_rate = attention_dropout
        self.layer_norm_eps = layer_norm_eps
        self.initializer_range = initializer_range
        self.has_cross_attention = cross_attention
        attention = lambda name: Attention(  # noqa: E731
            hidden_size, num_heads, dropout, attention_dropout, layer_norm_eps, initializer_range, name=name,
            dtype=self.dtype_policy)
        if shared_with is None:
            self.self_attention = attention("self_attention")
            self.feed_forward = FeedForward(hidden_size, intermediate_size, hidden_act, dropout, layer_norm_eps,
                                            initializer_range, name="feed_forward", dtype=self.dtype_policy)
        else:
            self.self_attention = shared_with.self_attention
            self.feed_forward = shared_with.feed_forward
        self.cross_attention = attention("cross_attention") if cross_attention else None

    def build(self, input_shape=None):
        for sublayer in (self.self_attention, self.cross_attention, self.feed_forward):
            if sublayer is not None and not sublayer.built:
                sublayer.build()
        self.built = True

    def call(self, hidden, self_attention_bias, self_key_value=None, cross_key_value=None,
             cross_attention_bias=None, training=False):
        """hidden [b, t, h] -> [b, t, h].

        self_key_value: (key, value) [b, n, s, d] for self-attention; None = project `hidden` itself.
        cross_key_value: the encoder's projected (key, value), needed when the layer has cross-attention.
        """
        if self_key_value is None:
            self_key_value = self.self_attention.project_key_value(hidden)
        hidden = self.self_attention(hidden, key_value=self_key_value, attention_bias=self_attention_bias,
                                     training=training)
        if self.cross_attention is not None:
            hidden = self.cross_attention(hidden, key_value=cross_key_value, attention_bias=cross_attention_bias,
                                          training=training)
        return self.feed_forward(hidden, training=training)

    def get_config(self):
        # `shared_with` is structure, not configuration: the model that owns both stacks re-creates it.
        return {**super().get_config(), "hidden_size": self.hidden_size, "num_heads": self.num_heads,
                "intermediate_size": self.intermediate_size, "hidden_act": self.hidden_act,
                "dropout": self.dropout_rate, "attention_dropout": self.attention_dropout_rate,
                "layer_norm_eps": self.layer_norm_eps, "initializer_range": self.initializer_range,
                "cross_attention": self.has_cross_attention}


class LMHead(keras.layers.Layer):
    """Projection to the vocabulary with the word-embedding matrix (tied) plus a bias; no transform
    (unlike BERT's MLM head). [b, t, h] -> [b, t, v]"""

    def __init__(self, embeddings: keras.layers.Embedding, **kwargs):
        super().__init__(**kwargs)
        self.embeddings = embeddings

    def build(self, input_shape=None):
        vocab_size = self.embeddings.input_dim
        self.bias = self.add_weight(shape=(vocab_size,), initializer="zeros", name="bias")
        self.built = True

    def call(self, hidden, training=False):
        table = _IN_OUT_KERNELS.get(id(self.embeddings), self.embeddings.embeddings)
        embeddings = tf.cast(table, hidden.dtype)  # [v, h]: already [out, in]
        logits = times_transposed(hidden, embeddings, training)
        # Softmax, beam scores and losses want float32 even when the weights are bfloat16.
        return tf.cast(add_bias(logits, tf.cast(self.bias, logits.dtype)), tf.float32)

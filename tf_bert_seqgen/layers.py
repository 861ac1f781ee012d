"""The building blocks of a BertForSeqGeneration stack, as Keras 3 layers (TensorFlow backend).

Names of sub-layers follow BERT's checkpoint layout (`attention/self/query`, `intermediate/dense`, ...)
in spirit, so the weight maps in `checkpoints/` read like the checkpoints they load.

Shapes: b = batch, t = query length, s = key length, h = hidden, n = heads, d = head size, v = vocab.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_bert_seqgen.products import add_bias, times_transposed

# Added to attention logits where attention is not allowed. Not -inf: a fully masked row (an all-pad
# source) must stay finite, as in the reference, which uses the dtype's minimum.
MASK_VALUE = -1e9


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


class Dense(keras.layers.Layer):
    """x [..., in] -> x W^T + b [..., units]; the kernel W is stored [units, in], PyTorch's layout.

    Why [out, in]: a decode step is almost nothing but matrix-vector products (one row per sequence),
    and in that layout each output is a dot product with one contiguous weight row. Under XLA the whole
    batch-1 decode step is 1.2x faster than with Keras' [in, out] kernels (TF profiler, benchmark model).
    `stored` (a `storage.Matrix`, None by default) is the kernel kept another way, which the layer then
    multiplies by instead: an export's [in, out] copy (TensorFlow's graph-mode kernels prefer it at several
    rows), its int8 or bfloat16 copy.
    """

    def __init__(self, units, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.stored = None

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(self.units, input_shape[-1]), initializer=self.kernel_initializer,
                                      name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        self.built = True

    def call(self, inputs, training=False):
        if self.stored is not None:
            return add_bias(self.stored.times_transposed(inputs, training), self.bias)
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
        self.stored = None  # the word table kept another way (`storage.Matrix` [v, h]), as `Dense.stored`

    def build(self, input_shape=None):
        self.word_embeddings.build((None, None))
        self.position_embeddings.build((None, None))
        self.layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def call(self, input_ids, position_offset=0, training=False):
        length = tf.shape(input_ids)[1]
        positions = tf.range(length) + tf.cast(position_offset, tf.int32)
        words = (self.word_embeddings(input_ids) if self.stored is None
                 else tf.cast(self.stored.rows(input_ids), self.compute_dtype))
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
    (unlike BERT's MLM head). `stored`: the table kept another way, as `Dense.stored`. [b, t, h] -> [b, t, v]"""

    def __init__(self, embeddings: keras.layers.Embedding, **kwargs):
        super().__init__(**kwargs)
        self.embeddings = embeddings
        self.stored = None

    def build(self, input_shape=None):
        vocab_size = self.embeddings.input_dim
        self.bias = self.add_weight(shape=(vocab_size,), initializer="zeros", name="bias")
        self.built = True

    def call(self, hidden, training=False):
        if self.stored is not None:
            logits = self.stored.times_transposed(hidden, training)
        else:
            embeddings = tf.cast(self.embeddings.embeddings, hidden.dtype)  # [v, h]: already [out, in]
            logits = times_transposed(hidden, embeddings, training)
        # Softmax, beam scores and losses want float32 even when the weights are bfloat16.
        return tf.cast(add_bias(logits, tf.cast(self.bias, logits.dtype)), tf.float32)

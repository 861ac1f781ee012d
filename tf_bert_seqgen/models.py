"""Encoder, decoder and the sequence-to-sequence model that joins them (Keras 3 models).

Shapes: b = batch, s = source length, t = target length, h = hidden, L = layers, n = heads,
d = head size, m = cache length (max decode length), v = vocab.
"""

from __future__ import annotations

import types

import keras
import tensorflow as tf

from tf_bert_seqgen.checkpoints import bert, hf, preset_models
from tf_bert_seqgen.config import BertForSeqGenerationConfig, EncoderDecoderConfig
from tf_bert_seqgen.cpu import warn_if_bfloat16_is_emulated
from tf_bert_seqgen.fit_hooks import TrainingHooks
from tf_bert_seqgen.generation_config import merged_options
from tf_bert_seqgen.layers import (
    Attention,
    Dense,
    Embeddings,
    FeedForward,
    LMHead,
    TransformerLayer,
    causal_bias,
    padding_bias,
)
from tf_bert_seqgen.presets import list_presets

# Keras finds a class named in a saved config (`model.save("x.keras")`, `keras.saving.load_model`) by its
# registered name, "tf_bert_seqgen>EncoderDecoder". The building blocks are registered here, beside the
# models made of them, so that importing the package registers every class.
serializable = keras.saving.register_keras_serializable(package="tf_bert_seqgen")
for _layer in (Dense, Embeddings, Attention, FeedForward, TransformerLayer, LMHead):
    serializable(_layer)

# What `keras.layers.Layer.get_config` contributes; the models below pass these through their own configs.
KERAS_OPTIONS = ("name", "trainable", "dtype")


def _keras_options(layer) -> dict:
    """name, trainable and the dtype policy (serialized) of a layer, as Keras' own `get_config` writes them."""
    return {"name": layer.name, "trainable": layer.trainable,
            "dtype": keras.dtype_policies.serialize(layer.dtype_policy)}


def _as_config(config) -> BertForSeqGenerationConfig:
    if isinstance(config, BertForSeqGenerationConfig):
        return config
    return BertForSeqGenerationConfig.from_dict(config)


def _build_stack(config: BertForSeqGenerationConfig, cross_attention: bool, shared_with=None, dtype=None):
    """Embeddings and transformer layers of one stack; `shared_with` is an encoder to share weights with."""
    if shared_with is not None:
        embeddings = shared_with.embeddings
    else:
        embeddings = Embeddings(config.vocab_size, config.hidden_size, config.max_position_embeddings,
                                config.layer_norm_eps, config.hidden_dropout_prob, config.initializer_range,
                                name="embeddings", dtype=dtype)
    layers = [
        TransformerLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                         config.hidden_act, config.hidden_dropout_prob, config.attention_probs_dropout_prob,
                         config.layer_norm_eps, config.initializer_range, cross_attention=cross_attention,
                         shared_with=None if shared_with is None else shared_with.transformer_layers[i],
                         name=f"layer_{i}", dtype=dtype)
        for i in range(config.num_hidden_layers)
    ]
    return embeddings, layers


@serializable
class BertForSeqGenerationEncoderModel(keras.Model):
    """Bidirectional BERT stack without token types.

    call(input_ids [b, s] int32, attention_mask [b, s] 1/0 or None) -> hidden states [b, s, h]
    """

    # The released encoder-only checkpoints `from_preset` knows by name.
    presets = types.MappingProxyType(list_presets(encoder_only=True))

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = _as_config(config)
        self.preset = None
        self.embeddings, self.transformer_layers = _build_stack(self.config, cross_attention=False,
                                                                dtype=self.dtype_policy)

    def build(self, input_shape=None):
        self.embeddings.build()
        for layer in self.transformer_layers:
            layer.build()
        self.built = True

    def call(self, input_ids, attention_mask=None, training=False):
        input_ids = tf.cast(input_ids, tf.int32)
        if attention_mask is None:
            attention_mask = tf.ones_like(input_ids)
        bias = padding_bias(attention_mask)
        hidden = self.embeddings(input_ids, training=training)
        for layer in self.transformer_layers:
            hidden = layer(hidden, bias, training=training)
        return hidden

    def get_config(self):
        """Keras' contract: `from_config(get_config())` (the default, `cls(**config)`) builds the same model."""
        return {**_keras_options(self), "config": self.config.to_dict()}

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """Loads a single HF BertGeneration (or BERT) encoder directory."""
        return hf.load_stack(cls, path, **kwargs)

    @classmethod
    def from_preset(cls, name_or_path, **config_overrides):
        """An encoder stack from a preset name (bert_for_seq_generation_bbc_encoder), an HF repo id or a
        local directory; see `EncoderDecoder.from_preset`."""
        return preset_models.load_stack(cls, name_or_path, **config_overrides)


@serializable
class BertForSeqGenerationDecoder(keras.Model):
    """Causal BERT stack with cross-attention to the encoder and an LM head tied to its word embeddings.

    call(input_ids [b, t], encoder_hidden_states [b, s, h], encoder_attention_mask [b, s],
         attention_mask [b, t]) -> logits [b, t, v]

    For generation, `decode_step` runs t new tokens against fixed-size K/V caches; the result equals the
    matching rows of `call` on the whole prefix.
    """

    def __init__(self, config, shared_encoder: BertForSeqGenerationEncoderModel | None = None, **kwargs):
        super().__init__(**kwargs)
        self.config = _as_config(config)
        self.shared_encoder = shared_encoder
        self.embeddings, self.transformer_layers = _build_stack(self.config, True, shared_encoder,
                                                                dtype=self.dtype_policy)
        self.lm_head = LMHead(self.embeddings.word_embeddings, name="lm_head", dtype=self.dtype_policy)

    def build(self, input_shape=None):
        if not self.embeddings.built:
            self.embeddings.build()
        for layer in self.transformer_layers:
            layer.build()
        self.lm_head.build()
        self.built = True

    def cross_attention_cache(self, encoder_hidden_states):
        """Projects the encoder output once for all decode steps: per layer (key, value), each [b, n, s, d]."""
        return tuple(layer.cross_attention.project_key_value(encoder_hidden_states)
                     for layer in self.transformer_layers)

    def empty_self_attention_cache(self, batch_size, max_length, dtype=None):
        """Per layer zeroed (key, value), each [b, n, m, d]; `decode_step` fills position by position.

        One tensor pair per layer rather than one stacked [L, ...] tensor: a step then neither slices
        nor re-stacks the whole cache.
        """
        c = self.config
        dtype = dtype or self.compute_dtype
        shape = [batch_size, c.num_attention_heads, max_length, c.head_size]
        return tuple((tf.zeros(shape, dtype), tf.zeros(shape, dtype)) for _ in range(c.num_hidden_layers))

    def call(self, input_ids, encoder_hidden_states, encoder_attention_mask=None, attention_mask=None,
             training=False):
        input_ids = tf.cast(input_ids, tf.int32)
        length = tf.shape(input_ids)[1]
        self_bias = causal_bias(length, length)
        if attention_mask is not None:
            self_bias = self_bias + padding_bias(attention_mask)
        hidden = self.embeddings(input_ids, training=training)
        hidden, _ = self._run_layers(hidden, self_bias, self.cross_attention_cache(encoder_hidden_states),
                                     _cross_bias(encoder_attention_mask), training=training)
        return self.lm_head(hidden)

    def decode_step(self, input_ids, cache_index, self_attention_cache, cross_attention_cache,
                    encoder_attention_mask=None):
        """Runs t new tokens at positions cache_index .. cache_index + t - 1.

        input_ids [b, t]; cache_index scalar int32; self_attention_cache: per layer (key, value)
        [b, n, m, d]; cross_attention_cache: per layer (key, value) [b, n, s, d];
        encoder_attention_mask [b, s]. Returns (logits [b, t, v], updated self_attention_cache).
        """
        max_length = tf.shape(self_attention_cache[0][0])[2]
        length = tf.shape(input_ids)[1]
        self_bias = causal_bias(length, max_length, query_offset=cache_index)
        # [b, n, t, 3] cache coordinates of the new keys / values. A scatter writes only those rows (XLA
        # and TF Serving take it); re-building the cache by masks costs more each step than the attention.
        rows, heads, positions = tf.meshgrid(tf.range(tf.shape(input_ids)[0]),
                                             tf.range(self.config.num_attention_heads),
                                             cache_index + tf.range(length), indexing="ij")
        cache_coordinates = tf.stack([rows, heads, positions], axis=-1)
        hidden = self.embeddings(input_ids, position_offset=cache_index)
        hidden, new_cache = self._run_layers(hidden, self_bias, cross_attention_cache,
                                             _cross_bias(encoder_attention_mask), self_attention_cache,
                                             cache_coordinates)
        return self.lm_head(hidden), new_cache

    def _run_layers(self, hidden, self_bias, cross_attention_cache, cross_bias, self_attention_cache=None,
                    cache_coordinates=None, training=False):
        """The one loop over the layers, for `call` and `decode_step`.

        hidden [b, t, h]; cross_attention_cache: per layer (key, value) [b, n, s, d]. Without a
        self_attention_cache each layer attends over `hidden` itself (`call`); with one (per layer
        (key, value) [b, n, m, d]) the new keys / values are written at `cache_coordinates` [b, n, t, 3]
        and attended together with the cached ones (`decode_step`).
        Returns (hidden [b, t, h], the updated self-attention cache, () without one).
        """
        new_cache = []
        for i, (layer, cross_kv) in enumerate(zip(self.transformer_layers, cross_attention_cache, strict=True)):
            self_kv = None
            if self_attention_cache is not None:
                key, value = layer.self_attention.project_key_value(hidden)  # [b, n, t, d]
                cache_key, cache_value = self_attention_cache[i]
                self_kv = (tf.tensor_scatter_nd_update(cache_key, cache_coordinates, key),
                           tf.tensor_scatter_nd_update(cache_value, cache_coordinates, value))
                new_cache.append(self_kv)
            hidden = layer(hidden, self_bias, self_key_value=self_kv, cross_key_value=cross_kv,
                           cross_attention_bias=cross_bias, training=training)
        return hidden, tuple(new_cache)

    def get_config(self):
        """Keras' contract; a shared encoder travels as its own serialized config (BERTSHARE)."""
        shared = None if self.shared_encoder is None else keras.saving.serialize_keras_object(self.shared_encoder)
        return {**_keras_options(self), "config": self.config.to_dict(), "shared_encoder": shared}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("shared_encoder"), dict):
            config["shared_encoder"] = keras.saving.deserialize_keras_object(config["shared_encoder"],
                                                                             custom_objects=custom_objects)
        return super().from_config(config, custom_objects=custom_objects)

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """Loads a single HF BertGeneration decoder directory."""
        return hf.load_stack(cls, path, **kwargs)


def _cross_bias(encoder_attention_mask):
    """Cross-attention bias [b, 1, 1, s] from the encoder's padding mask; 0.0 when every position counts."""
    if encoder_attention_mask is None:
        return 0.0
    return padding_bias(encoder_attention_mask)


def shift_right(labels, start_token_id, pad_token_id):
    """Decoder inputs for teacher forcing: [start, y0, ..., y_{t-2}]; -100 labels become pad. [b, t]"""
    labels = tf.cast(labels, tf.int32)
    labels = tf.where(labels == -100, pad_token_id, labels)
    start = tf.fill([tf.shape(labels)[0], 1], tf.cast(start_token_id, tf.int32))
    return tf.concat([start, labels[:, :-1]], axis=1)


@serializable
class EncoderDecoder(TrainingHooks, keras.Model):
    """BERT2BERT-style sequence-to-sequence model.

    call({"input_ids" [b, s], "attention_mask" [b, s], and "decoder_input_ids" [b, t] (+ optional
    "decoder_attention_mask") or "labels" [b, t] (decoder inputs are then `labels` shifted right)})
    -> logits [b, t, v]
    """

    # The released encoder-decoder checkpoints `from_preset` knows by name (KerasHub's `Class.presets`).
    presets = types.MappingProxyType(list_presets(encoder_only=False))

    def __init__(self, encoder: BertForSeqGenerationEncoderModel, decoder: BertForSeqGenerationDecoder,
                 decoder_start_token_id: int | None = None, generation_defaults: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        if decoder.shared_encoder is not None and decoder.shared_encoder is not encoder:
            raise ValueError("the decoder shares weights with a different encoder than the one given")
        self.encoder = encoder
        self.decoder = decoder
        self.config = EncoderDecoderConfig(encoder.config, decoder.config, share=decoder.shared_encoder is encoder,
                                           decoder_start_token_id=decoder_start_token_id)
        # The decoding options `generate` starts from (a preset's: beams, length penalty, ...); saved with
        # the model's Keras config.
        self.generation_defaults = dict(generation_defaults or {})
        # The `presets.Preset` that `from_preset` loaded, else None (not part of the config).
        self.preset = None

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Keras' contract (`keras.Model.from_config`'s signature): the inverse of `get_config`, what
        `keras.saving.load_model` calls.

        config: `get_config()`'s dict, an `EncoderDecoderConfig`, or its dict (ours or HF's encoder-decoder
        config.json). Keras' options travel in the same dict, as in every Keras config: "dtype" (the
        variables' and computation's dtype or policy: "float32" by default; "bfloat16" halves the bytes a
        decode step reads; logits are float32 either way), "name", "trainable"; and
        "generation_defaults". An HF config.json's "dtype" is PyTorch's storage type, not read.
        """
        options = {}
        if not isinstance(config, EncoderDecoderConfig):
            values = dict(config)
            if "model_type" not in values:  # ours, not HF's
                options = {k: values.pop(k) for k in (*KERAS_OPTIONS, "generation_defaults") if k in values}
            config = EncoderDecoderConfig.from_dict(values)
        dtype = options.get("dtype")
        encoder = BertForSeqGenerationEncoderModel(config.encoder, name="encoder", dtype=dtype)
        decoder = BertForSeqGenerationDecoder(config.decoder, shared_encoder=encoder if config.share else None,
                                              name="decoder", dtype=dtype)
        model = cls(encoder, decoder, config.decoder_start_token_id, **options)
        model.build()
        return model

    def get_config(self):
        """Keras' options (name, trainable, dtype), the `EncoderDecoderConfig` fields and generation_defaults."""
        return {**_keras_options(self), **self.config.to_dict(), "generation_defaults": dict(self.generation_defaults)}

    def cast(self, dtype) -> EncoderDecoder:
        """A copy of this model with its weights in `dtype` (e.g. "bfloat16" for inference; it warns on a
        CPU without native bfloat16, where it is slower than float32)."""
        warn_if_bfloat16_is_emulated(dtype)
        copy = type(self).from_config({**self.config.to_dict(), "dtype": dtype,
                                       "generation_defaults": dict(self.generation_defaults)})
        copy.preset = self.preset
        for target, source in zip(copy.weights, self.weights, strict=True):
            target.assign(tf.cast(source.value, target.dtype))
        return copy

    def build(self, input_shape=None):
        self.encoder.build()
        self.decoder.build()
        self.built = True

    def call(self, inputs, training=False):
        encoder_mask = inputs.get("attention_mask")
        decoder_input_ids = inputs.get("decoder_input_ids")
        if decoder_input_ids is None:
            if "labels" not in inputs:
                raise ValueError("EncoderDecoder needs 'decoder_input_ids' or 'labels' in its inputs")
            decoder_input_ids = shift_right(inputs["labels"], self.config.start_token_id,
                                            self.config.decoder.pad_token_id)
        encoder_hidden_states = self.encoder(inputs["input_ids"], encoder_mask, training=training)
        return self.decoder(decoder_input_ids, encoder_hidden_states, encoder_mask,
                            inputs.get("decoder_attention_mask"), training=training)

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        """Loads our saved directory or an HF EncoderDecoderModel directory / hub name."""
        return hf.load_encoder_decoder(path, cls, **kwargs)

    @classmethod
    def from_preset(cls, name_or_path, dtype=None, **kwargs):
        """KerasHub-style: a preset name (`presets.list_presets()`, also `EncoderDecoder.presets`), an HF
        repo id, a TF Hub handle or a local directory (HF layout or a TF Hub module).

        A preset name loads its HF repo (its TF Hub module when the repo is neither cached nor reachable);
        the network is used only to download what the caches lack (huggingface_hub's, tensorflow_hub's).
        The preset's decoding defaults become `generation_defaults` (`model.preset` is the `Preset`);
        its input preparation comes with `load_tokenizer(name_or_path)`.

        dtype: the weights' dtype (float32 unless given). kwargs: num_heads / spm_model / vocab_file for
        a TF Hub module without a preset; config.json overrides for an HF checkpoint.
        """
        return preset_models.load_encoder_decoder(name_or_path, dtype=dtype, cls=cls, **kwargs)

    @classmethod
    def from_encoder_decoder_pretrained(cls, encoder_path=None, decoder_path=None, share=False, **kwargs):
        """Warm start (the paper's BERT2BERT / BERTSHARE / BERT2RND / RND2RND) from BERT checkpoints."""
        return bert.warm_start(encoder_path, decoder_path, share=share, cls=cls, **kwargs)

    def generate(self, input_ids, attention_mask=None, jit_compile=False, **options):
        """Greedy / beam / sampled generation in the TF graph; see `tf_bert_seqgen.generation.generate`.
        Options not given come from `generation_defaults` (a preset's), then generation's own defaults.

        input_ids [b, s] -> int32 [b * num_return_sequences, max_length], starting with the decoder start
        token, pad after eos.
        """
        # Generation sits above models (it drives any model through decode_step): imported on call.
        from tf_bert_seqgen import generation

        return generation.generate(self, input_ids, attention_mask, jit_compile=jit_compile,
                                   **merged_options(self.generation_defaults, options))

    def save_pretrained(self, directory, tokenizer=None):
        """Writes config.json + model.safetensors in the HF layout (and tokenizer files), atomically."""
        hf.save_encoder_decoder(self, directory, tokenizer=tokenizer)

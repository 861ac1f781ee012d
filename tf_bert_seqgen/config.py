"""Model configuration: one transformer stack (`BertForSeqGenerationConfig`) and the pair of stacks
that makes a sequence-to-sequence model (`EncoderDecoderConfig`).

Both read and write the Hugging Face `config.json` layout, so a directory we save loads in
`transformers` and a `google/...` directory loads here.
"""

from __future__ import annotations

import dataclasses
import json
import os

_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish")

# HF fields that say nothing about the computation we reproduce; accepted and dropped.
_IGNORED_HF_FIELDS = {
    "architectures", "transformers_version", "_name_or_path", "model_type", "torch_dtype", "dtype",
    "use_cache", "gradient_checkpointing", "initializer_range", "classifier_dropout", "chunk_size_feed_forward",
    "position_embedding_type", "type_vocab_size", "tie_word_embeddings", "is_decoder", "add_cross_attention",
    "output_past", "return_dict", "output_hidden_states", "output_attentions", "torchscript",
    "use_bfloat16", "pruned_heads", "id2label", "label2id", "problem_type", "tokenizer_class", "prefix",
    "task_specific_params", "finetuning_task", "cross_attention_hidden_size", "tie_encoder_decoder",
    "is_encoder_decoder", "sep_token_id", "cls_token_id", "unk_token_id", "mask_token_id",
    "max_length", "min_length", "num_beams", "length_penalty", "no_repeat_ngram_size", "early_stopping",
    "do_sample", "temperature", "top_k", "top_p", "repetition_penalty", "bad_words_ids", "num_return_sequences",
    "diversity_penalty", "num_beam_groups", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "typical_p",
    "encoder_no_repeat_ngram_size", "output_scores", "return_dict_in_generate", "chunk_size", "decoder_start_token_id",
    "layer_norm_epsilon", "bias", "is_composition", "_attn_implementation_autoset", "_commit_hash",
    "model_name_or_path", "sentence_transformers", "embedding_size",
}


class ConfigError(ValueError):
    """A configuration that cannot describe a model; the message names the field."""


@dataclasses.dataclass
class BertForSeqGenerationConfig:
    """One BERT-style stack without token types. Defaults are those of the released 24-layer models.

    Args:
        vocab_size: int. Rows of the word-embedding table (and of the tied LM head).
        hidden_size: int. Width h of every layer.
        num_hidden_layers: int. Transformer layers.
        num_attention_heads: int. Heads per attention; must divide `hidden_size`.
        intermediate_size: int. Width of the feed-forward's inner layer.
        hidden_act: str. The feed-forward's activation: `"gelu"` (exact), `"gelu_new"` /
            `"gelu_pytorch_tanh"` (tanh approximation), `"relu"`, `"silu"` / `"swish"`.
        hidden_dropout_prob: float. Dropout after embeddings and sub-layers, in [0, 1).
        attention_probs_dropout_prob: float. Dropout on attention probabilities, in [0, 1).
        max_position_embeddings: int. Longest sequence, in tokens.
        initializer_range: float. Standard deviation of the truncated-normal initialiser.
        layer_norm_eps: float. LayerNorm's epsilon.
        pad_token_id: int or None. Padding.
        eos_token_id: int or None. End of sequence; generation stops there.
        bos_token_id: int or None. Beginning of sequence; the decoder starts with it unless
            `EncoderDecoderConfig.decoder_start_token_id` says otherwise.

    Raises:
        ConfigError: a field that cannot describe a model, named in the message (a non-positive size, a
            hidden size the heads do not divide, an unknown activation, a dropout outside [0, 1), a
            special token outside the vocabulary).
    """

    vocab_size: int = 50358
    hidden_size: int = 1024
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    intermediate_size: int = 4096
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    eos_token_id: int = 1
    bos_token_id: int = 2

    def __post_init__(self):
        self.validate()

    def validate(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"config field {name!r} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) is not divisible by num_attention_heads "
                f"({self.num_attention_heads})")
        if self.hidden_act not in _ACTIVATIONS:
            raise ConfigError(f"config field 'hidden_act' is {self.hidden_act!r}; supported: {_ACTIVATIONS}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"config field {name!r} must be in [0, 1), got {value!r}")
        if self.layer_norm_eps <= 0:
            raise ConfigError(f"config field 'layer_norm_eps' must be positive, got {self.layer_norm_eps!r}")
        for name in ("pad_token_id", "eos_token_id", "bos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ConfigError(f"config field {name!r} = {value!r} is outside the vocabulary [0, {self.vocab_size})")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> BertForSeqGenerationConfig:
        """Builds from our own dict or an HF `bert` / `bert-generation` config dict.

        Args:
            values: dict. HF fields that say nothing about the computation (`architectures`,
                `torch_dtype`, generation settings, ...) are accepted and dropped.

        Raises:
            ConfigError: another model type, relative position embeddings, factorised embeddings, or an
                unknown field.
        """
        values = dict(values)
        model_type = values.get("model_type", "bert-generation")
        if model_type not in ("bert-generation", "bert"):
            raise ConfigError(f"model_type {model_type!r} is not a BERT stack (expected 'bert-generation' or 'bert')")
        if model_type == "bert" and values.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError("position_embedding_type must be 'absolute'; "
                              f"got {values['position_embedding_type']!r}")
        if values.get("embedding_size") not in (None, values.get("hidden_size")):
            raise ConfigError("embedding_size differs from hidden_size: factorised embeddings are not BERT")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known - _IGNORED_HF_FIELDS)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        # HF writes null for unset special tokens; fall back to the released models' ids.
        kwargs = {k: v for k, v in values.items() if k in known and v is not None}
        return cls(**kwargs)

    def to_hf_dict(self, is_decoder: bool = False) -> dict:
        """The `bert-generation` config that `transformers` reads for this stack."""
        values = self.to_dict()
        values.update(model_type="bert-generation", is_decoder=is_decoder, add_cross_attention=is_decoder,
                      tie_word_embeddings=True)
        return values


@dataclasses.dataclass
class EncoderDecoderConfig:
    """Two stacks plus what joins them.

    Args:
        encoder: `BertForSeqGenerationConfig` or its dict.
        decoder: `BertForSeqGenerationConfig` or its dict; it gains cross-attention over the encoder.
        share: bool. One set of weights for both stacks (BERTSHARE, HF's `tie_encoder_decoder`).
        decoder_start_token_id: int or None. The decoder's first token; None: the decoder's bos.

    Raises:
        ConfigError: `share` with different stacks, or stacks of different hidden sizes.
    """

    encoder: BertForSeqGenerationConfig = dataclasses.field(default_factory=BertForSeqGenerationConfig)
    decoder: BertForSeqGenerationConfig = dataclasses.field(default_factory=BertForSeqGenerationConfig)
    share: bool = False
    decoder_start_token_id: int | None = None

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = BertForSeqGenerationConfig.from_dict(self.encoder)
        if isinstance(self.decoder, dict):
            self.decoder = BertForSeqGenerationConfig.from_dict(self.decoder)
        self.validate()

    def validate(self):
        if self.share and self.encoder != self.decoder:
            diff = [f.name for f in dataclasses.fields(BertForSeqGenerationConfig)
                    if getattr(self.encoder, f.name) != getattr(self.decoder, f.name)]
            raise ConfigError(f"share=True needs identical encoder and decoder configs; they differ in {diff}")
        if self.encoder.hidden_size != self.decoder.hidden_size:
            raise ConfigError(f"encoder hidden_size {self.encoder.hidden_size} != decoder hidden_size "
                              f"{self.decoder.hidden_size}: cross-attention needs them equal")

    @property
    def start_token_id(self) -> int:
        """Decoder start token: explicit, else the decoder's bos (as HF's EncoderDecoderModel)."""
        if self.decoder_start_token_id is not None:
            return self.decoder_start_token_id
        return self.decoder.bos_token_id

    def to_dict(self) -> dict:
        return {"encoder": self.encoder.to_dict(), "decoder": self.decoder.to_dict(), "share": self.share,
                "decoder_start_token_id": self.decoder_start_token_id}

    @classmethod
    def from_dict(cls, values: dict) -> EncoderDecoderConfig:
        """Builds from our dict or an HF `encoder-decoder` config dict (`tie_encoder_decoder` is `share`).

        Raises:
            ConfigError: another model type, a missing sub-config, or a sub-config `from_dict` refuses.
        """
        if values.get("model_type", "encoder-decoder") != "encoder-decoder":
            raise ConfigError(f"model_type {values.get('model_type')!r} is not 'encoder-decoder'")
        for key in ("encoder", "decoder"):
            if key not in values:
                raise ConfigError(f"encoder-decoder config has no {key!r} sub-config")
        share = values.get("share", values.get("tie_encoder_decoder", False))
        return cls(encoder=BertForSeqGenerationConfig.from_dict(values["encoder"]),
                   decoder=BertForSeqGenerationConfig.from_dict(values["decoder"]),
                   share=bool(share), decoder_start_token_id=values.get("decoder_start_token_id"))

    def to_hf_dict(self) -> dict:
        return {
            "architectures": ["EncoderDecoderModel"],
            "model_type": "encoder-decoder",
            "is_encoder_decoder": True,
            "encoder": self.encoder.to_hf_dict(is_decoder=False),
            "decoder": self.decoder.to_hf_dict(is_decoder=True),
            "tie_encoder_decoder": self.share,
            "decoder_start_token_id": self.start_token_id,
            "pad_token_id": self.decoder.pad_token_id,
            "eos_token_id": self.decoder.eos_token_id,
        }


def read_config_json(path: str) -> dict:
    """Reads a config.json, naming the file in every error."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no config.json at {path}")
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(values, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    return values

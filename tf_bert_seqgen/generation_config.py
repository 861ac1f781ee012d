"""Decoding options: `GenerationConfig`, and the `generation_config.json` a checkpoint carries them in.

A model's decoding defaults (`EncoderDecoder.generation_defaults`: a preset's beams and length penalty, a
fine-tuned checkpoint's own) are a partial set of `GenerationConfig`'s options, which `generate` and the
export start from (`merged_options`). A checkpoint saves them in `generation_config.json`, as `transformers`
does, beside the token ids, and loading reads them back (`read_generation_defaults`), so the decoding a
model was trained or released for travels with it, into `tf-bert-seqgen generate` and `export`.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

from tf_bert_seqgen.config import ConfigError


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """Decoding options, as `transformers`' GenerationConfig names them (a checkpoint's
    generation_config.json holds them; an export's info file records them).

    Attributes:
        max_length: int. Generated tokens plus the decoder start token (`max_new_tokens` + 1).
        min_length: int. Eos is blocked until a row has this many tokens (the start token counted).
        num_beams: int. Beams per text; 1: greedy (or sampling).
        length_penalty: float. Beam scores are divided by length ** this (`length_penalty_style`).
        length_penalty_style: str. "hf": score / len ** lp; "gnmt": score / ((5 + len) / 6) ** lp.
        early_stopping: bool or str. True, False or "never", as `transformers`.
        no_repeat_ngram_size: int. No n-gram of this size occurs twice in a row's output; 0: off.
        num_return_sequences: int. Outputs per text (at most num_beams).
        do_sample: bool. Sample instead of taking the most likely token.
        temperature: float. Sampling temperature.
        top_k: int. Sample among the k most likely tokens; 0: all.
        top_p: float. Sample among the most likely tokens of this total probability.
        seed: int. The sampling seed.
        copy_from_source: bool. Generate only tokens of the row's own source, `extra_token_ids` and eos.
        extra_token_ids: tuple. Tokens copy-restricted decoding may add (connectives, say).
        min_added_token_probability: float. A row that adds an extra token with a probability below this
            returns its source unchanged; 0: off.
        eos_token_id: int. End of sequence.
        pad_token_id: int. Padding.
        decoder_start_token_id: int. The decoder's first input.
    """

    max_length: int = 20
    min_length: int = 0
    num_beams: int = 1
    length_penalty: float = 1.0
    length_penalty_style: str = "hf"  # "hf": score / len**lp; "gnmt": score / ((5 + len) / 6)**lp
    early_stopping: bool | str = False  # True, False or "never", as `transformers`
    no_repeat_ngram_size: int = 0
    num_return_sequences: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    # Copy-restricted decoding, for tasks that rewrite their input (fusion, splitting, simplification):
    # only tokens of the row's own source, `extra_token_ids` (e.g. connectives) and eos may be generated.
    copy_from_source: bool = False
    extra_token_ids: tuple = ()
    # Keep the source when unsure (as GECToR's minimum error probability): a row whose output adds an
    # extra token its source lacks with a probability below this returns its source unchanged (as ids,
    # cut at max_length like any output; as text, exactly as written). 0 turns it off.
    min_added_token_probability: float = 0.0
    eos_token_id: int = 1
    pad_token_id: int = 0
    decoder_start_token_id: int = 2

    def __post_init__(self):
        # Accepted as any sequence (a JSON config gives a list); kept as a tuple so the config hashes.
        object.__setattr__(self, "extra_token_ids", tuple(int(i) for i in self.extra_token_ids))
        if self.extra_token_ids and not self.copy_from_source:
            raise ValueError("extra_token_ids only applies with copy_from_source=True")
        if not 0.0 <= self.min_added_token_probability < 1.0:
            raise ValueError(f"min_added_token_probability must be in [0, 1), got {self.min_added_token_probability}")
        if self.min_added_token_probability and not (self.copy_from_source and self.extra_token_ids):
            raise ValueError("min_added_token_probability applies with copy_from_source=True and extra_token_ids "
                             "(the tokens a row may add to its source)")
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be >= 1, got {self.num_beams}")
        most = self.num_return_sequences if self.do_sample and self.num_beams == 1 else self.num_beams
        if not 1 <= self.num_return_sequences <= most:
            raise ValueError(f"num_return_sequences ({self.num_return_sequences}) must be between 1 and num_beams "
                             f"({self.num_beams}) for beam search and greedy decoding")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 (the start token plus one), got {self.max_length}")
        if self.length_penalty_style not in ("hf", "gnmt"):
            raise ValueError(f"length_penalty_style must be 'hf' or 'gnmt', got {self.length_penalty_style!r}")
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"early_stopping must be True, False or 'never', got {self.early_stopping!r}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1 and self.top_k >= 0):
            raise ValueError("sampling needs temperature > 0, 0 < top_p <= 1 and top_k >= 0")

    def static_key(self):
        """Options that change the graph; the rest are fed as tensors (no retracing when they change)."""
        return (self.max_length, self.num_beams, self.length_penalty_style, self.early_stopping,
                self.no_repeat_ngram_size, self.num_return_sequences, self.do_sample, self.top_k,
                self.copy_from_source, self.extra_token_ids, self.keeps_unsure_sources,
                self.eos_token_id, self.pad_token_id, self.decoder_start_token_id)

    @property
    def keeps_unsure_sources(self) -> bool:
        return self.min_added_token_probability > 0

    @property
    def max_new_tokens(self) -> int:
        """Tokens generated at most: `max_length` less the decoder start token."""
        return self.max_length - 1


# generation_config.json keys that are not decoding options: the token ids come from config.json, the rest
# is `transformers`' bookkeeping.
_NOT_OPTIONS = {"bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id", "transformers_version",
                "_from_model_config"}
# The options a checkpoint's defaults may hold: every decoding field (not the token ids) and max_new_tokens.
DECODING_OPTIONS = frozenset({f.name for f in dataclasses.fields(GenerationConfig)} - _NOT_OPTIONS
                             | {"max_new_tokens"})


def merged_options(defaults: dict, options: dict) -> dict:
    """`options` over a model's decoding `defaults`; an explicit max_length is not overridden by a default
    max_new_tokens (which would win over it, as in `transformers`)."""
    defaults = dict(defaults)
    if "max_length" in options:
        defaults.pop("max_new_tokens", None)
    return {**defaults, **options}


def config_fields(options: dict) -> dict:
    """Decoding `options` as `GenerationConfig` fields: the one place lengths convert (`max_new_tokens`, when
    given, wins over `max_length`, as in `transformers`: max_length = max_new_tokens + the start token);
    options set to None are left out."""
    fields = {k: v for k, v in options.items() if v is not None and k != "max_new_tokens"}
    if options.get("max_new_tokens") is not None:
        fields["max_length"] = options["max_new_tokens"] + 1
    return fields


def check_defaults(defaults: dict, source: str) -> dict:
    """`defaults` if they are decoding options `GenerationConfig` accepts, else ConfigError naming `source`
    and the problem."""
    unknown = sorted(set(defaults) - DECODING_OPTIONS)
    if unknown:
        raise ConfigError(f"{source}: unknown decoding options {unknown}; known: {sorted(DECODING_OPTIONS)}")
    try:
        GenerationConfig(**config_fields(defaults))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {e}") from None
    return dict(defaults)


def generation_config_json(token_ids: dict, defaults: dict) -> dict:
    """What a checkpoint's generation_config.json holds: the token ids and the model's decoding defaults."""
    return {**token_ids, **{k: v for k, v in sorted(defaults.items()) if v is not None}}


def read_generation_defaults(path: str) -> dict:
    """The decoding defaults a checkpoint's generation_config.json (ours or `transformers`') sets, checked.
    Options of `transformers` that this package does not implement (repetition_penalty, ...) are left out
    with a warning that names them: the outputs would differ from what the file asks for."""
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a generation config is a JSON object, got {type(values).__name__}")
    options = {k: v for k, v in values.items() if k in DECODING_OPTIONS}
    ignored = sorted(set(values) - DECODING_OPTIONS - _NOT_OPTIONS)
    if ignored:
        warnings.warn(f"{path}: decoding options this package does not implement are ignored: {ignored}",
                      stacklevel=2)
    return check_defaults(options, path)

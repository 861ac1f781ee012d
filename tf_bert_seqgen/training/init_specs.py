"""Init specs (`bert:<dir>`, `share:<dir>`, ...): the model and tokenizer a fine-tuning run starts from."""

from __future__ import annotations

import os

from tf_bert_seqgen import saved_models
from tf_bert_seqgen.checkpoints import bert
from tf_bert_seqgen.checkpoints.files import resolve
from tf_bert_seqgen.config import BertForSeqGenerationConfig, EncoderDecoderConfig, read_config_json
from tf_bert_seqgen.export import EXPORT_TOKENIZER_DIR, load_model
from tf_bert_seqgen.models import EncoderDecoder
from tf_bert_seqgen.tokenizers import load_tokenizer

# A MiniLM-shaped stack for `random` with no directory to take a config from.
_DEFAULT_RANDOM_STACK = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


INIT_FORMS = "bert:<dir>, share:<dir>, bert2rnd:<dir>, random[:<dir>] or model:<dir>"


def parse_init(spec: str) -> tuple[str, str | None]:
    """`bert:<dir>` (BERT2BERT), `share:<dir>` (BERTSHARE), `bert2rnd:<dir>`, `random[:<dir>]` (RND2RND,
    config from the directory), `model:<dir>` (continue from a saved EncoderDecoder or an exported
    SavedModel) -> (kind, dir)."""
    kind, _, directory = spec.partition(":")
    if kind not in ("bert", "share", "bert2rnd", "random", "model"):
        raise ValueError(f"init must be {INIT_FORMS}; got {spec!r}")
    if kind != "random" and not directory:
        raise ValueError(f"init {kind}: needs a directory ({kind}:<dir>)")
    return kind, directory or None


def check_cross_attention(kind: str, cross_attention: str):
    """A cross-attention start other than random needs a warm start with a pre-trained decoder."""
    if cross_attention != "random" and kind not in ("bert", "share"):
        raise ValueError(f"cross_attention={cross_attention!r} applies to init bert: or share:, not {kind}:")


def build_model(spec: str, tokenizer=None, dropout: float | None = None, cross_attention: str = "random"):
    """The `EncoderDecoder` an init spec describes. Call it inside `strategy.scope()`.

    Args:
        spec: str. `bert:<dir>` (BERT2BERT), `share:<dir>` (BERTSHARE), `bert2rnd:<dir>`, `random[:<dir>]`
            (RND2RND, the configuration from the directory) or `model:<dir>` (a saved `EncoderDecoder` or
            an exported SavedModel, to continue from).
        tokenizer: sizes the vocabulary of `random` without a directory.
        dropout: float or None. Overrides the hidden and attention dropout.
        cross_attention: str. `"random"` or `"self_attention"`: how BERT2BERT / BERTSHARE start the
            decoder's cross-attention (`checkpoints.bert.warm_start`).

    Returns:
        The `EncoderDecoder`.

    Raises:
        ValueError: an unknown spec, a spec without its directory, or `cross_attention` other than
            random for an init without a pre-trained decoder.
    """
    kind, directory = parse_init(spec)
    check_cross_attention(kind, cross_attention)
    overrides = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}

    def stack(config):
        return BertForSeqGenerationConfig.from_dict({**config.to_dict(), **overrides})

    if kind == "model" and saved_models.is_saved_model(directory):
        model = load_model(directory)  # an export: e.g. the shipped default, fine-tuned further
        if not overrides:
            return model
        config = model.config
        copy = EncoderDecoder.from_config(EncoderDecoderConfig(stack(config.encoder), stack(config.decoder),
                                                               config.share, config.decoder_start_token_id))
        copy.set_weights(model.get_weights())
        return copy
    if kind == "model":
        if not overrides:
            return EncoderDecoder.from_pretrained(directory)
        config = EncoderDecoderConfig.from_dict(read_config_json(os.path.join(directory, "config.json")))
        return EncoderDecoder.from_pretrained(directory, encoder=stack(config.encoder).to_dict(),
                                              decoder=stack(config.decoder).to_dict())
    if kind == "random":
        if directory is None:
            if tokenizer is None:
                raise ValueError("init random without a directory needs a tokenizer to size the vocabulary")
            config = BertForSeqGenerationConfig(
                vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **_DEFAULT_RANDOM_STACK)
            return EncoderDecoder.from_config(EncoderDecoderConfig(stack(config), stack(config)))
        values = read_config_json(os.path.join(directory, "config.json"))
        if values.get("model_type") == "encoder-decoder":
            config = EncoderDecoderConfig.from_dict(values)
            return EncoderDecoder.from_config(EncoderDecoderConfig(stack(config.encoder), stack(config.decoder),
                                                                   config.share, config.decoder_start_token_id))
        config = stack(bert.bert_config(directory) if values.get("model_type", "bert") == "bert"
                       else BertForSeqGenerationConfig.from_dict(values))
        return EncoderDecoder.from_config(EncoderDecoderConfig(config, config))
    directory = resolve(directory)
    decoder = {"bert": directory, "share": directory, "bert2rnd": None}[kind]
    return bert.warm_start(directory, decoder, share=kind == "share", config=stack(bert.bert_config(directory)),
                           cross_attention=cross_attention)


def load_init_tokenizer(spec: str, tokenizer_dir: str | None = None):
    """The tokenizer of `tokenizer_dir`, else of the init directory (an export's: its assets.extra/tokenizer)."""
    directory = tokenizer_dir or parse_init(spec)[1]
    if directory is None:
        raise ValueError("init random without a directory needs tokenizer_dir")
    if tokenizer_dir is None and saved_models.is_saved_model(directory):
        directory = os.path.join(directory, EXPORT_TOKENIZER_DIR)
    return load_tokenizer(directory)

"""Hugging Face checkpoints: `EncoderDecoderModel` and single `BertGeneration` directories, read and written.

Weights are read with `safetensors` (numpy, no torch); `pytorch_model.bin` needs torch and says so.
Our own `save_pretrained` writes this same layout, so one loader serves both and `transformers` can load
what we save.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tf_bert_seqgen.checkpoints import bert
from tf_bert_seqgen.checkpoints.files import WEIGHT_FILES, read_tensors, resolve  # noqa: F401  (hf.resolve, ...)
from tf_bert_seqgen.checkpoints.weight_map import CheckpointError, assign, bind, collect, hf_name, model_class
from tf_bert_seqgen.config import BertForSeqGenerationConfig, EncoderDecoderConfig, read_config_json
from tf_bert_seqgen.generation_config import generation_config_json, read_generation_defaults
from tf_bert_seqgen.io_utils import atomic_directory


def _prefixed(prefix: str):
    def naming(canonical):
        name, transposed = hf_name(canonical)
        return prefix + name, transposed
    return naming


def _decoder_naming(prefix: str):
    """Decoder stacks keep their LM head beside `bert.`, not inside it."""
    def naming(canonical):
        name, transposed = hf_name(canonical)
        return (prefix if name.startswith("lm_head") else prefix + "bert.") + name, transposed
    return naming


def _lm_head_matches_embeddings(tensors, prefix, source):
    """The LM head is tied to the word embeddings; a checkpoint with a different head cannot be ours."""
    head, words = f"{prefix}lm_head.decoder.weight", f"{prefix}bert.embeddings.word_embeddings.weight"
    if head in tensors and words in tensors and not np.array_equal(tensors[head], tensors[words]):
        raise CheckpointError(f"{source}: {head} differs from {words}; the LM head must be tied to the embeddings")
    bias, head_bias = f"{prefix}lm_head.bias", f"{prefix}lm_head.decoder.bias"
    if head_bias in tensors and bias not in tensors:
        tensors[bias] = tensors[head_bias]


def _ignorable(name: str) -> bool:
    return name.endswith("position_ids") or name.endswith("lm_head.decoder.weight") or \
        name.endswith("lm_head.decoder.bias")


def encoder_decoder_entries(model):
    return bind([(model.encoder, _prefixed("encoder.")), (model.decoder, _decoder_naming("decoder."))])


def load_encoder_decoder(path: str, cls=None, **config_overrides):
    """Builds an `EncoderDecoder` (or `cls`, a subclass) from an HF EncoderDecoderModel directory or hub name;
    its generation_config.json's decoding options become `generation_defaults`."""
    directory = resolve(path)
    config_path = os.path.join(directory, "config.json")
    values = read_config_json(config_path)
    if values.get("model_type") != "encoder-decoder":
        raise CheckpointError(f"{config_path} has model_type {values.get('model_type')!r}, not 'encoder-decoder'; "
                              "load single stacks with BertForSeqGenerationEncoderModel / Decoder.from_pretrained")
    values.update(config_overrides)
    model = (cls or model_class("EncoderDecoder")).from_config(EncoderDecoderConfig.from_dict(values))
    tensors = read_tensors(directory)
    _lm_head_matches_embeddings(tensors, "decoder.", directory)
    # The LM-head bias is not in every released checkpoint; zeros is what the reference starts from.
    assign(encoder_decoder_entries(model), tensors, directory, optional={"decoder.lm_head.bias"},
           ignore=_ignorable)
    generation_path = os.path.join(directory, "generation_config.json")
    if os.path.exists(generation_path):
        model.generation_defaults = read_generation_defaults(generation_path)
    return model


def load_stack(cls, path: str, **config_overrides):
    """Builds a single encoder or decoder from an HF BertGeneration directory, or from a BERT one
    (`model_type: bert`, warm-start: segment embeddings folded in, cross-attention left random)."""
    directory = resolve(path)
    values = read_config_json(os.path.join(directory, "config.json"))
    is_bert = values.get("model_type") == "bert"
    config = bert.bert_config(directory) if is_bert else BertForSeqGenerationConfig.from_dict(values)
    if config_overrides:
        config = BertForSeqGenerationConfig.from_dict({**config.to_dict(), **config_overrides})
    model = cls(config)
    model.build()
    if is_bert:
        bert.load_bert_into(model, directory)
        return model
    tensors = read_tensors(directory)
    if issubclass(cls, model_class("BertForSeqGenerationDecoder")):
        _lm_head_matches_embeddings(tensors, "", directory)
        naming, optional = _decoder_naming(""), {"lm_head.bias"}
    else:
        # An encoder may also be read out of a decoder directory (`bert.` prefix).
        prefix = "bert." if any(k.startswith("bert.") for k in tensors) else ""
        naming, optional = _prefixed(prefix), set()
        tensors = {k: v for k, v in tensors.items() if k.startswith(prefix)}
    assign(bind([(model, naming)]), tensors, directory, optional=optional,
           ignore=lambda n: _ignorable(n) or "crossattention" in n or n.startswith("lm_head"))
    return model


def save_encoder_decoder(model, directory: str, tokenizer=None):
    """config.json + model.safetensors + generation_config.json (the token ids and the model's decoding
    defaults, `generation_defaults`) (+ tokenizer files), atomically.

    Shared weights are written under both the encoder's and the decoder's names: `transformers` 5 no
    longer ties them on load, and a checkpoint it reads wrong would be worse than a larger file.
    """
    from safetensors.numpy import save_file

    tensors = collect(encoder_decoder_entries(model))
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    config = model.config
    with atomic_directory(directory) as tmp:
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config.to_hf_dict(), f, indent=2, sort_keys=True)
        token_ids = {"decoder_start_token_id": config.start_token_id, "bos_token_id": config.decoder.bos_token_id,
                     "eos_token_id": config.decoder.eos_token_id, "pad_token_id": config.decoder.pad_token_id}
        with open(os.path.join(tmp, "generation_config.json"), "w", encoding="utf-8") as f:
            json.dump(generation_config_json(token_ids, model.generation_defaults), f, indent=2)
        save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)


__all__ = ["CheckpointError", "load_encoder_decoder", "load_stack", "read_tensors", "resolve",
           "save_encoder_decoder"]

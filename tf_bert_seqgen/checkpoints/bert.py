"""Warm-starting a sequence-to-sequence model from BERT checkpoints (Rothe et al. 2020).

The paper's set-ups: BERT2BERT (encoder and decoder from BERT, separate), BERTSHARE (one BERT for both),
BERT2RND (BERT encoder, random decoder), RND2RND (both random). In the paper, cross-attention starts
random; `cross_attention="self_attention"` starts each decoder layer's cross-attention as a copy of that
layer's pre-trained self-attention instead (on small data the decoder otherwise learns to ignore the
source: see benchmarks/warm_start/results.md).

BERT adds a segment embedding that BertGeneration lacks. Every input here is segment 0, so row 0 of
BERT's token-type table is a constant added at every position: folding it into the position table
reproduces BERT's hidden states exactly.
"""

from __future__ import annotations

import os

from tf_bert_seqgen.checkpoints.files import read_tensors, resolve
from tf_bert_seqgen.checkpoints.weight_map import (
    CheckpointError,
    assign,
    bind,
    hf_name,
    model_class,
    stack_parameters,
)
from tf_bert_seqgen.config import BertForSeqGenerationConfig, EncoderDecoderConfig, read_config_json


def bert_config(directory: str) -> BertForSeqGenerationConfig:
    """Our stack config from a BERT directory; special tokens from its vocab.txt when there is one."""
    values = read_config_json(os.path.join(directory, "config.json"))
    if values.get("type_vocab_size", 1) < 1:
        raise CheckpointError(f"{directory}/config.json: type_vocab_size must be >= 1")
    values.update(_wordpiece_special_ids(directory))
    return BertForSeqGenerationConfig.from_dict(values)


def _wordpiece_special_ids(directory: str) -> dict:
    """BERT vocabularies start and end sequences with [CLS] / [SEP]: they are BERT2BERT's bos / eos."""
    path = os.path.join(directory, "vocab.txt")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        ids = {line.rstrip("\n"): i for i, line in enumerate(f)}
    found = {key: ids[token] for key, token in
             (("pad_token_id", "[PAD]"), ("bos_token_id", "[CLS]"), ("eos_token_id", "[SEP]")) if token in ids}
    return found


def bert_tensors(directory: str) -> dict:
    """BERT's tensors with the `bert.` prefix removed and segment 0 folded into the position table."""
    tensors = read_tensors(directory)
    if any(k.startswith("bert.") for k in tensors):
        tensors = {k[len("bert."):]: v for k, v in tensors.items() if k.startswith("bert.")}
    segments = tensors.pop("embeddings.token_type_embeddings.weight", None)
    if segments is not None:
        tensors["embeddings.position_embeddings.weight"] = (
            tensors["embeddings.position_embeddings.weight"] + segments[0][None, :])
    return tensors


def _is_bert_extra(name: str) -> bool:
    return name.startswith(("pooler.", "cls.")) or name.endswith("position_ids")


CROSS_ATTENTION_INITS = ("random", "self_attention")


def load_bert_into(stack, directory: str):
    """Copies BERT's weights into an encoder or decoder stack; cross-attention and LM-head bias stay."""
    entries = [e for e in bind([(stack, hf_name)])
               if "crossattention" not in e.name and not e.name.startswith("lm_head")]
    assign(entries, bert_tensors(directory), directory, ignore=_is_bert_extra)


def copy_self_attention_to_cross_attention(decoder):
    """Each decoder layer's cross-attention (Q, K, V, output, LayerNorm) := a copy of its self-attention."""
    parameters = dict(stack_parameters(decoder))
    for name, variable in parameters.items():
        if "/cross_attention/" in name:
            variable.assign(parameters[name.replace("/cross_attention/", "/self_attention/")])


def warm_start(encoder_path=None, decoder_path=None, share=False, config: BertForSeqGenerationConfig | None = None,
               decoder_start_token_id=None, cross_attention: str = "random", cls=None):
    """Builds BERT2BERT / BERTSHARE / BERT2RND / RND2RND, the paper's set-ups
    (`EncoderDecoder.from_encoder_decoder_pretrained` calls it).

    BERT's segment-0 embedding is folded into the position table, so a warm-started encoder reproduces
    BERT's hidden states exactly; the decoder's cross-attention, which BERT lacks, starts random or as a
    copy of each layer's self-attention.

    Args:
        encoder_path: str or None. A BERT directory in the HF layout, or an HF repo id; None: random.
        decoder_path: str or None. The same for the decoder; None: random (BERT2RND), or the encoder's
            with `share`.
        share: bool. One stack for both (BERTSHARE, HF's `tie_encoder_decoder`).
        config: `BertForSeqGenerationConfig` or None. The stacks' configuration; defaults to the
            checkpoint's, and RND2RND needs it. Given with a checkpoint, it may change what the weights do
            not fix (dropout, ...); shapes must still fit.
        decoder_start_token_id: int or None. None: the decoder's bos (BERT's `[CLS]`).
        cross_attention: str. `"random"` (the paper) or `"self_attention"`; the latter needs a pre-trained
            decoder (BERT2BERT, BERTSHARE).
        cls: the model class to build (`EncoderDecoder`, or a subclass); None: `EncoderDecoder`.

    Returns:
        The `EncoderDecoder`.

    Raises:
        ValueError: `share` with two different checkpoints, an unknown `cross_attention` or one a random
            decoder cannot take, RND2RND without `config`, or encoder and decoder checkpoints of
            different shapes.
        CheckpointError: a checkpoint that cannot be found or read.
    """
    encoder_dir = resolve(encoder_path) if encoder_path else None
    decoder_dir = resolve(decoder_path) if decoder_path else None
    if share and decoder_dir and encoder_dir and os.path.realpath(encoder_dir) != os.path.realpath(decoder_dir):
        raise ValueError("share=True uses one checkpoint for both stacks; got two different paths")
    if cross_attention not in CROSS_ATTENTION_INITS:
        raise ValueError(f"cross_attention must be one of {CROSS_ATTENTION_INITS}, got {cross_attention!r}")
    if cross_attention != "random" and not (decoder_dir or share and encoder_dir):
        raise ValueError(f"cross_attention={cross_attention!r} copies the decoder's pre-trained self-attention; "
                         "a random decoder (BERT2RND, RND2RND) has none")
    if share:
        decoder_dir = None  # the decoder's self-attention and feed-forward are the encoder's
    known = encoder_dir or decoder_dir
    stack_config = config or (bert_config(known) if known else None)
    if stack_config is None:
        raise ValueError("random init of both stacks (RND2RND) needs a `config`")
    if decoder_dir and encoder_dir and bert_config(decoder_dir) != bert_config(encoder_dir):
        raise ValueError("encoder and decoder checkpoints have different configs; BERT2BERT needs one shape")
    model = (cls or model_class("EncoderDecoder")).from_config(EncoderDecoderConfig(stack_config, stack_config, share=share,
                                                            decoder_start_token_id=decoder_start_token_id))
    if encoder_dir:
        load_bert_into(model.encoder, encoder_dir)
    if decoder_dir:
        load_bert_into(model.decoder, decoder_dir)
    if cross_attention == "self_attention":
        copy_self_attention_to_cross_attention(model.decoder)
    return model

"""Models from whatever `locate` finds: a preset name, an HF repo id, a TF Hub handle or a local directory
(`EncoderDecoder.from_preset`, `BertForSeqGenerationEncoderModel.from_preset`).

A preset's decoding defaults come with the model (`EncoderDecoder.generation_defaults`, which
`generate` starts from); its input preparation comes with the tokenizer (`load_tokenizer`).
"""

from __future__ import annotations

import os

from tf_bert_seqgen.checkpoints import hf, tfhub
from tf_bert_seqgen.checkpoints.locate import locate
from tf_bert_seqgen.checkpoints.weight_map import CheckpointError
from tf_bert_seqgen.presets import PRESETS


def load_encoder_decoder(name_or_path, dtype=None, num_heads: int | None = None, spm_model=None, vocab_file=None,
                         cls=None, **config_overrides):
    """An `EncoderDecoder` (or `cls`, a subclass) with its preset's decoding defaults.

    dtype: the weights' dtype ("bfloat16", ...; default float32). num_heads / spm_model / vocab_file: for
    a TF Hub module that no preset describes (see `tfhub.load`). config_overrides: for an HF-layout
    checkpoint, config.json fields to change (e.g. dropout rates).
    """
    named = PRESETS.get(os.fspath(name_or_path))
    if named is not None and named.encoder_only:  # before any download
        raise CheckpointError(f"{named.name} is an encoder-only preset; load it with "
                              "BertForSeqGenerationEncoderModel.from_preset")
    located = locate(name_or_path)
    if located.preset is not None and located.preset.encoder_only:
        raise CheckpointError(f"{located.name} is an encoder-only preset; load it with "
                              "BertForSeqGenerationEncoderModel.from_preset")
    if located.kind == "tfhub":
        if config_overrides:
            raise TypeError(f"config overrides {sorted(config_overrides)} apply to HF checkpoints, not TF Hub modules")
        model = tfhub.load(located.directory, num_heads, spm_model, vocab_file, preset=located.preset, cls=cls).model
    else:
        if spm_model is not None or vocab_file is not None or num_heads is not None:
            raise TypeError("num_heads / spm_model / vocab_file apply to TF Hub modules; an HF checkpoint's "
                            "config.json and tokenizer files say what they would")
        model = hf.load_encoder_decoder(located.directory, cls, **config_overrides)
    if dtype is not None and dtype != model.dtype_policy.name:
        model = model.cast(dtype)
    # The preset's decoding (the paper's) over what the checkpoint's generation_config.json says.
    model.generation_defaults = {**model.generation_defaults, **located.generation_options()}
    model.preset = located.preset
    return model


def load_stack(cls, name_or_path, **config_overrides):
    """A single encoder (or decoder) stack from an HF-layout source, e.g. the `..._bbc_encoder` preset."""
    located = locate(name_or_path)
    if located.kind == "tfhub":
        raise CheckpointError(f"{located.name} is a TF Hub encoder-decoder module; load it with "
                              "EncoderDecoder.from_preset")
    model = hf.load_stack(cls, located.directory, **config_overrides)
    model.preset = located.preset
    return model

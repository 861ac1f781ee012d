"""Where a model is, KerasHub-style: a preset name, an HF repo id, a TF Hub handle or a local directory,
made a local directory (downloading only what the caches lack), with the preset that describes it.

It builds nothing: `checkpoints.load` builds models from what it finds, and the tokenizers' `from_preset`
reads tokenizers from it, so it imports neither models nor tokenizers.

- A preset name (`presets.PRESETS`: roberta24_bbc, ..., bert24_en_de): its HF repo, else (not in the HF
  cache and not downloadable) its TF Hub module.
- A TF Hub handle (`https://tfhub.dev/google/bertseq2seq/roberta24_bbc/1`, ...): tensorflow_hub's cache.
- Any other name: an HF repo id, through huggingface_hub's cache (HF_HUB_OFFLINE honoured).
- A local directory: a TF Hub module (`tfhub_module.pb`) or an HF-layout checkpoint / tokenizer
  directory. Its preset: the `preset.json` that `convert` writes; for a module, else one matched by its
  directory's name or by tensorflow_hub's descriptor file beside it.
"""

from __future__ import annotations

import dataclasses
import json
import os

from tf_bert_seqgen import saved_models
from tf_bert_seqgen.checkpoints import files, hub_files
from tf_bert_seqgen.checkpoints.weight_map import CheckpointError
from tf_bert_seqgen.presets import PRESETS, Preset, get_preset

KINDS = ("checkpoint", "tfhub")


@dataclasses.dataclass(frozen=True)
class Located:
    """A model source on disk. kind: "checkpoint" (HF layout: config.json, weights, tokenizer files) or
    "tfhub" (a TF1 hub module); preset: the released checkpoint it is, when known."""

    name: str
    kind: str
    directory: str
    preset: Preset | None = None

    def generation_options(self) -> dict:
        return self.preset.generation_options() if self.preset is not None else {}

    def tokenizer_options(self) -> dict:
        return self.preset.tokenizer_options() if self.preset is not None else {}


def locate(name_or_path, tokenizer_only: bool = False) -> Located:
    """The local directory and preset of a preset name, HF repo id, TF Hub handle or directory.

    tokenizer_only: download no weights from an HF repo (a TF Hub module is one archive either way).
    Raises `CheckpointError` (a ValueError) naming what was tried.
    """
    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        return _local(name)
    if os.path.exists(name):
        raise CheckpointError(f"{name} is a file; expected a preset name, an HF repo id, a TF Hub handle or a "
                              "model directory")
    if os.path.isabs(name) or name.startswith((".", "~")):
        raise CheckpointError(f"{name!r} is neither a local directory nor a Hugging Face repo id, a preset name "
                              "or a TF Hub handle: no such directory")
    if name in PRESETS:
        return _preset(PRESETS[name], tokenizer_only)
    if hub_files.is_handle(name):
        directory = hub_files.resolve_module(name)
        return Located(name, "tfhub", directory, hub_files.find_preset(name, directory))
    try:
        directory = files.resolve(name, tokenizer_only=tokenizer_only)
    except CheckpointError as e:
        if "/" in name:
            raise
        raise CheckpointError(f"{name!r} is no preset (known: {', '.join(PRESETS)}), and {e}") from e
    return Located(name, "checkpoint", directory, _known_preset(name) or read_preset_file(directory))


def read_preset_file(directory: str) -> Preset | None:
    """The `Preset` in `directory/preset.json` (written by `convert`), None without one."""
    path = os.path.join(directory, hub_files.PRESET_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return Preset(**json.load(f))
    except (ValueError, TypeError) as e:  # bad JSON, or fields that are not a Preset's
        raise CheckpointError(f"{path} does not describe a preset: {e}") from e


def _known_preset(name: str) -> Preset | None:
    try:
        return get_preset(name)
    except KeyError:
        return None


def _local(directory: str) -> Located:
    if os.path.isfile(os.path.join(directory, "tfhub_module.pb")):
        hub_files.check_module_dir(directory)
        return Located(directory, "tfhub", directory,
                       read_preset_file(directory) or hub_files.find_preset(directory, directory))
    if saved_models.is_saved_model(directory):
        raise CheckpointError(f"{directory} is an exported SavedModel (tf.saved_model.load / TF Serving run it); "
                              "a preset is a checkpoint directory, an HF repo or a TF Hub module")
    return Located(directory, "checkpoint", directory, read_preset_file(directory))


def _preset(preset: Preset, tokenizer_only: bool) -> Located:
    """A released checkpoint: its HF repo, else its TF Hub module; the error names both attempts."""
    errors = []
    if preset.hf_repo:
        try:
            return Located(preset.name, "checkpoint", files.resolve(preset.hf_repo, tokenizer_only), preset)
        except CheckpointError as e:
            errors.append(str(e))
    if preset.tfhub_handle:
        try:
            return Located(preset.name, "tfhub", hub_files.resolve_module(preset.tfhub_handle), preset)
        except CheckpointError as e:
            errors.append(str(e))
    raise CheckpointError(f"preset {preset.name!r} is not available here: {'; '.join(errors)}")

"""What a model path holds (SavedModel, TF Hub module, checkpoint, hub name) and loading it, plus the
shipped default model."""

from __future__ import annotations

import importlib.resources
import os

from tf_bert_seqgen import saved_models
from tf_bert_seqgen.checkpoints import tfhub
from tf_bert_seqgen.cli.errors import CliError
from tf_bert_seqgen.export import latest_version_dir
from tf_bert_seqgen.models import EncoderDecoder
from tf_bert_seqgen.tokenizers import BertForSeqGenerationTokenizer, WordPieceTokenizer, load_tokenizer

DEFAULT_MODEL_NAME = "fusion"
# The repository checkout that holds saved_models/ (three levels above this file).
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_model_roots() -> list[str]:
    """Where the default model's versions may be, in order: inside the installed package (setup.py's
    build_py copies the newest saved_models/fusion/<version> into a wheel as package data), then the
    repository checkout's top-level saved_models/ (an editable install or a source tree)."""
    roots = []
    packaged = importlib.resources.files("tf_bert_seqgen").joinpath("saved_models", DEFAULT_MODEL_NAME)
    if isinstance(packaged, os.PathLike):  # a SavedModel loads from a directory, not from inside a zip
        roots.append(os.fspath(packaged))
    roots.append(os.path.join(_REPO_ROOT, "saved_models", DEFAULT_MODEL_NAME))
    return roots


def default_model_dir() -> str:
    """The shipped default model: the newest version under the first of `default_model_roots()` that has one."""
    roots = default_model_roots()
    for root in roots:
        found = latest_version_dir(root)
        if found is not None:
            return found
    raise FileNotFoundError(f"no default model under {' or '.join(roots)}; pass --model")


def kind_of(path: str) -> str:
    """`saved_models.path_kind`: 'savedmodel', 'tfhub' (module or handle), 'checkpoint' (our / HF directory)
    or 'hub-name' (a preset name or an HF repo id); what it refuses, a CliError."""
    try:
        return saved_models.path_kind(path)
    except ValueError as e:
        raise CliError(str(e)) from e


def load_model_and_tokenizer(path: str, spm=None, vocab=None, num_heads=None):
    """(model, tokenizer, decoding defaults) from any supported source.

    Decoding defaults: the model's (`generation_defaults`: its checkpoint's generation_config.json, under
    the release's preset when there is one: a preset name's (roberta24_bbc, ...), a TF Hub module's
    (matched by handle), or the `preset.json` that `convert` writes beside a converted checkpoint). A
    preset's input preparation comes with its tokenizer.
    """
    kind = kind_of(path)
    if kind == "savedmodel":
        raise CliError(f"{path} is an exported SavedModel; this command needs a checkpoint or a TF Hub module")
    if kind == "tfhub":
        loaded = tfhub.load(path, num_heads=num_heads, spm_model=spm, vocab_file=vocab)
        return loaded.model, loaded.tokenizer, preset_decoding(tfhub.conversion_preset(loaded))
    # A checkpoint directory, a preset name or an HF repo id; a preset's decoding comes with the model.
    model = EncoderDecoder.from_preset(path)
    if spm or vocab:
        tokenizer = BertForSeqGenerationTokenizer(spm) if spm else WordPieceTokenizer(vocab)
    else:
        tokenizer = load_tokenizer(path)
    inputs = {"max_input_length": model.preset.max_input_length} if model.preset is not None else {}
    return model, tokenizer, {**model.generation_defaults, **inputs}


def preset_decoding(preset) -> dict:
    """A preset's decoding defaults and its longest input (what a TF Hub module's model lacks)."""
    return {**preset.generation_options(), "max_input_length": preset.max_input_length}

"""A TF Hub module's files, found and read without building anything: a handle resolved through
tensorflow_hub's cache, the module layout checked, its preset matched, and its tokenizer found (the
SentencePiece model inside the graph, or a vocabulary among its assets).

`tfhub` builds models from modules on top of this; the tokenizers' `from_preset` reads a module's
tokenizer through it, which is why it imports neither models nor tokenizers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings

from tf_bert_seqgen import saved_models
from tf_bert_seqgen.checkpoints.weight_map import CheckpointError
from tf_bert_seqgen.presets import get_preset
from tf_bert_seqgen.saved_models import is_handle  # noqa: F401  (re-exported: tfhub, locate)

# tensorflow_hub/module_def.proto: `ModuleDef.format` is field 1; FORMAT_V3 = 3 is the only format.
MODULE_DEF_FORMAT_V3 = 3
# Written beside a converted module (`tfhub.convert_module`): the `presets.Preset` fields.
PRESET_FILE = "preset.json"
_MODULE_HELP = ("A TF1 hub module (what tfhub.dev serves for google/bertseq2seq/...) is a directory with "
                "saved_model.pb, variables/variables.index + variables.data-* and tfhub_module.pb "
                "(a tensorflow_hub ModuleDef with format FORMAT_V3); download and extract the .tar.gz "
                "(`?tf-hub-format=compressed`) or pass the handle to let tensorflow_hub fetch it.")
_TOKENIZER_HELP = ("pass the tokenizer yourself: spm_model=<spiece.model> or vocab_file=<vocab.txt> "
                   "(CLI: --spm / --vocab)")


class HubModuleError(CheckpointError):
    """A TF Hub module that cannot be read or converted; the message names the file or variable."""


def resolve_module(handle_or_dir: str) -> str:
    """A local module directory as is; any other handle through `tensorflow_hub.resolve`.

    `tensorflow_hub.resolve` downloads a handle (`https://tfhub.dev/google/bertseq2seq/roberta24_bbc/1`)
    once into `$TFHUB_CACHE_DIR/<sha1 of the handle>` and afterwards returns that directory without
    network access. Returns the module directory, checked with `check_module_dir`.
    """
    handle_or_dir = os.fspath(handle_or_dir)
    if os.path.exists(handle_or_dir):
        check_module_dir(handle_or_dir)
        return handle_or_dir
    hub = _import_tensorflow_hub()
    try:
        directory = hub.resolve(handle_or_dir)
    except Exception as e:  # network, HTTP and file errors all mean "not available here"
        raise HubModuleError(
            f"could not resolve TF Hub handle {handle_or_dir!r}: {type(e).__name__}: {e}. Offline, place the "
            f"extracted module at $TFHUB_CACHE_DIR/{cache_dir_name(handle_or_dir)} or pass its directory.") from e
    check_module_dir(directory)
    return directory


def cache_dir_name(handle: str) -> str:
    """The directory name tensorflow_hub caches `handle` under (sha1 hex of the handle)."""
    return hashlib.sha1(handle.encode("utf8")).hexdigest()


def _import_tensorflow_hub():
    """tensorflow_hub 0.16 needs tf_keras (with Keras 3 as default) and pkg_resources at import."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources' deprecation notice
            import tensorflow_hub
    except ImportError as e:
        raise HubModuleError(f"resolving a TF Hub handle needs tensorflow_hub, which failed to import ({e}); "
                             "install tensorflow-hub, tf-keras and setuptools<81, or pass a module "
                             "directory") from e
    return tensorflow_hub


def check_module_dir(directory: str):
    """Raises `HubModuleError` unless `directory` looks like a TF1 hub module (see `_MODULE_HELP`)."""
    if not os.path.isdir(directory):
        raise HubModuleError(f"{directory} is not a directory. {_MODULE_HELP}")
    missing = [name for name in ("saved_model.pb", os.path.join("variables", "variables.index"))
               if not os.path.isfile(os.path.join(directory, name))]
    if missing:
        raise HubModuleError(f"{directory} is not a TF Hub module: no {' and no '.join(missing)}. {_MODULE_HELP}")
    module_def = os.path.join(directory, "tfhub_module.pb")
    if os.path.isfile(module_def):
        with open(module_def, "rb") as f:
            found = _module_def_format(f.read())
        if found != MODULE_DEF_FORMAT_V3:
            raise HubModuleError(f"{module_def} declares ModuleDef format {found}; only FORMAT_V3 "
                                 f"({MODULE_DEF_FORMAT_V3}) is known. {_MODULE_HELP}")


def _module_def_format(data: bytes) -> int | None:
    """`ModuleDef.format` from its wire bytes (tensorflow_hub 0.16 ships no generated proto module)."""
    pos = 0

    def varint():
        nonlocal pos
        value, shift = 0, 0
        while pos < len(data):
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
        raise HubModuleError("tfhub_module.pb is truncated")

    found = None
    while pos < len(data):
        key = varint()
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value = varint()
            found = value if field == 1 else found
        elif wire_type == 2:
            pos += varint()
        else:
            raise HubModuleError(f"tfhub_module.pb is not a ModuleDef (wire type {wire_type})")
    return found


@dataclasses.dataclass
class TokenizerSource:
    """Where a module's tokenizer comes from.

    Attributes:
        kind: str. `"sentencepiece"` or `"wordpiece"`.
        data: bytes or str. The SentencePiece model's bytes, or the vocabulary's path.
        origin: str. Where it was found, for messages.
    """

    kind: str
    data: bytes | str
    origin: str


def find_tokenizer(directory: str) -> TokenizerSource | None:
    """The module's own tokenizer: the `SentencepieceOp` model in saved_model.pb, else a vocab .txt in assets/.

    Args:
        directory: str. The module directory.

    Returns:
        A `TokenizerSource`, or None when the module holds neither.
    """
    path = os.path.join(directory, "saved_model.pb")
    model = sentencepiece_model_from_saved_model(path)
    if model is not None:
        return TokenizerSource("sentencepiece", model, f"{path} (SentencepieceOp)")
    vocab = _asset_vocabulary(directory)
    if vocab is not None:
        return TokenizerSource("wordpiece", vocab, vocab)
    return None


def sentencepiece_model_from_saved_model(path: str) -> bytes | None:
    """The serialized SentencePiece model of the `SentencepieceOp` nodes in a SavedModel file (`path`: its
    saved_model.pb), read by `saved_models.sentencepiece_models`. Several different models are an error."""
    try:
        models = saved_models.sentencepiece_models(os.path.dirname(path))
    except (OSError, ValueError) as e:  # no such file, or not a SavedModel proto
        raise HubModuleError(f"{path} is not a SavedModel proto: {e}") from e
    if len(models) > 1:
        raise HubModuleError(f"{path} holds {len(models)} different SentencePiece models; {_TOKENIZER_HELP}")
    return models[0] if models else None


def _asset_vocabulary(directory: str) -> str | None:
    """A WordPiece vocabulary among the module's assets: the only .txt, or the only vocab*.txt."""
    assets = os.path.join(directory, "assets")
    if not os.path.isdir(assets):
        return None
    texts = sorted(f for f in os.listdir(assets) if f.endswith(".txt"))
    vocabs = [f for f in texts if f.startswith("vocab")] or texts
    if len(vocabs) > 1:
        raise HubModuleError(f"{assets} holds several vocabularies ({', '.join(vocabs)}); {_TOKENIZER_HELP}")
    return os.path.join(assets, vocabs[0]) if vocabs else None


def find_preset(handle: str, directory: str | None = None):
    """The preset of a module by its handle, its directory's name, or the handle tensorflow_hub recorded
    in `<cache dir>.descriptor.txt` beside a cached module; None when none matches."""
    candidates = [handle]
    if directory is not None:
        path = os.path.abspath(directory).rstrip(os.sep)
        candidates += [path, os.path.basename(path)]
        descriptor = path + ".descriptor.txt"
        if os.path.isfile(descriptor):
            with open(descriptor, encoding="utf-8", errors="replace") as f:
                candidates += [line.split(":", 1)[1].strip() for line in f if line.startswith("Module:")]
    for candidate in candidates:
        try:
            return get_preset(candidate)
        except KeyError:
            continue
    return None

"""TF Hub bertseq2seq modules (`google/bertseq2seq/...`): weights by their real names, tokenizer from the
module itself, converted to our format and written back.

A module is a TF1 hub-format directory: `saved_model.pb` (the TF1 graph), `tfhub_module.pb` (hub's
`ModuleDef`) and `variables/` (a TF checkpoint). The TF1-only `hub.Module` API is gone from
tensorflow-hub 0.16, so nothing here runs the module's graph:

- weights: `tf.train.load_checkpoint(module/variables/variables)` reads every variable by name; the
  names (DESIGN.md section 2) map onto our canonical parameter names with `tfhub_name`, and loading is
  `weight_map.assign` as for every other format;
- config: from the variable shapes (see `infer_config` for the one thing shapes cannot tell);
- tokenizer: the SentencePiece model is the `model` attribute of the graph's `SentencepieceOp` node, a
  WordPiece vocabulary is a `.txt` file under `assets/`.

Finding a module (handles through tensorflow_hub's cache, layout checks, presets, the tokenizer's
source) is `hub_files`, which builds nothing; its names are importable from here as before.

Two layouts are accepted, because the layout of the shared (roberta2roberta) modules is not public:
"separate" (`bert/decoder/layer_N/...` holds whole decoder layers) and "coupled" (the decoder reuses
`bert/encoder/layer_N/...` and only its cross-attention, `bert/decoder/layer_N/attention/encdec*`,
exists). A coupled module always builds a shared model; a separate one whose decoder repeats the
encoder exactly builds a shared model too (`share=None`), as HF's `tie_encoder_decoder`.

Main entry points: `load_module(handle_or_dir) -> (EncoderDecoder, tokenizer)`,
`convert_module(handle_or_dir, out_dir)` (our directory format, atomically) and
`write_module_variables(model, path, layout)` (back to the hub names).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re

import numpy as np

from tf_bert_seqgen import tokenizers
from tf_bert_seqgen.checkpoints.hub_files import (  # noqa: F401  (tfhub.resolve_module, tfhub.find_tokenizer, ...)
    _TOKENIZER_HELP,
    MODULE_DEF_FORMAT_V3,
    PRESET_FILE,
    HubModuleError,
    TokenizerSource,
    cache_dir_name,
    check_module_dir,
    find_preset,
    find_tokenizer,
    is_handle,
    resolve_module,
    sentencepiece_model_from_saved_model,
)
from tf_bert_seqgen.checkpoints.weight_map import assign, bind, model_class
from tf_bert_seqgen.config import BertForSeqGenerationConfig, EncoderDecoderConfig
from tf_bert_seqgen.io_utils import atomic_directory
from tf_bert_seqgen.presets import Preset, get_preset

LAYOUTS = ("separate", "coupled")
GLOBAL_STEP = "global_step"
# No released module is known to hold an LM-head bias (HF's conversion leaves it at zeros). BERT's MLM
# output-bias name is read when present and written only when non-zero, so a trained bias survives.
LM_HEAD_BIAS = "cls/predictions/output_bias"
# BERT's head size; used for the head count when neither an argument nor a preset gives it.
BERT_HEAD_SIZE = 64

_LAYER = re.compile(r"^bert/(encoder|decoder)/layer_(\d+)/(.*)$")
_ATTENTION = {"self_attention": ("attention/self", "attention/output"),
              "cross_attention": ("attention/encdec", "attention/encdec_output")}
_FFN = {"intermediate": "intermediate/dense", "output_dense": "output/dense", "norm": "output/LayerNorm"}


# ---------------------------------------------------------------------------------------------- finding


# ---------------------------------------------------------------------------------------------- weights


def read_module_variables(directory: str) -> dict[str, np.ndarray]:
    """Every variable of a module by name, without `global_step` and without a `module/` scope prefix."""
    import tensorflow as tf

    prefix = os.path.join(directory, "variables", "variables")
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:  # tf raises several error types for unreadable checkpoints
        raise HubModuleError(f"{prefix} is not a readable TF checkpoint: {e}") from e
    names = [n for n in reader.get_variable_to_shape_map() if n != GLOBAL_STEP]
    # Modules exported under a `module` variable scope prefix every name; the names below it are the same.
    strip = "module/" if names and all(n.startswith("module/") for n in names) else ""
    return {n[len(strip):]: reader.get_tensor(n) for n in names}


def tfhub_name(canonical: str, stack: str = "encoder", body_stack: str | None = None) -> tuple[str, bool]:
    """Canonical name -> (TF Hub variable name, stored transposed?). TF kernels are [in, out],
    ours [out, in].

    stack: "encoder" or "decoder", the stack the canonical name belongs to. body_stack: the stack whose
    `layer_N` holds self-attention and feed-forward weights ("encoder" for a coupled decoder); cross-
    attention always lives under the decoder. Embeddings are stored once, under `bert/embeddings`.
    """
    parts = canonical.split("/")
    if parts[0] == "embeddings":
        if parts[1] == "norm":
            return f"bert/embeddings/LayerNorm/{parts[2]}", False
        return f"bert/embeddings/{parts[1]}_embeddings", False
    if parts[0] == "lm_head":
        return LM_HEAD_BIAS, False
    layer, block, part, leaf = parts
    owner = stack if block == "cross_attention" else (body_stack or stack)
    if block == "ffn":
        path = _FFN[part]
    else:
        inner, outer = _ATTENTION[block]
        path = {"output_dense": f"{outer}/dense", "norm": f"{outer}/LayerNorm"}.get(part, f"{inner}/{part}")
    return f"bert/{owner}/{layer}/{path}/{leaf}", leaf == "kernel"


def module_entries(model, layout: str):
    """`weight_map` entries binding `model` (an `EncoderDecoder`) to the hub names of `layout`."""
    _check_layout(layout)
    body = "encoder" if layout == "coupled" else None
    return bind([(model.encoder, functools.partial(tfhub_name, stack="encoder")),
                 (model.decoder, functools.partial(tfhub_name, stack="decoder", body_stack=body))])


def _check_layout(layout: str):
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def detect_layout(names) -> str:
    """"separate" when `bert/decoder/layer_N` holds whole layers, "coupled" when it holds only `encdec*`."""
    decoder = [m.group(3) for m in map(_LAYER.match, names) if m and m.group(1) == "decoder"]
    if not decoder:
        raise HubModuleError("the module has no bert/decoder/layer_N variables: it is not a bertseq2seq "
                             "encoder-decoder module")
    return "coupled" if all(rest.startswith("attention/encdec") for rest in decoder) else "separate"


def _layer_count(names, stack: str) -> int:
    found = sorted({int(m.group(2)) for m in map(_LAYER.match, names) if m and m.group(1) == stack})
    if found != list(range(len(found))):
        missing = sorted(set(range(found[-1] + 1)) - set(found)) if found else [0]
        raise HubModuleError(f"bert/{stack}/layer_N variables skip layer(s) {missing}")
    return len(found)


def _shape(shapes: dict, name: str, rank: int) -> tuple:
    if name not in shapes:
        raise HubModuleError(f"{name}: missing; cannot infer the model's size without it")
    shape = tuple(shapes[name])
    if len(shape) != rank:
        raise HubModuleError(f"{name}: shape {shape}, expected rank {rank}")
    return shape


def infer_config(shapes: dict, num_heads: int | None = None, preset=None, share: bool | None = None,
                 **token_ids) -> EncoderDecoderConfig:
    """The model configuration from variable shapes (name -> shape).

    vocab and hidden size: `bert/embeddings/word_embeddings` [vocab, hidden]; max positions:
    `bert/embeddings/position_embeddings`; intermediate size: `.../layer_0/intermediate/dense/kernel`
    [hidden, intermediate]; layers: the `layer_N` count of each stack (a coupled decoder has as many as
    the encoder). Heads cannot be read from shapes (query kernels are [hidden, hidden] whatever the
    split): `num_heads` when given, else the preset's (the released 24-layer models have 16 heads at
    hidden 1024), else hidden_size // 64, BERT's head size; a hidden size that is no multiple of 64
    then needs `num_heads`. share: None follows the layout (coupled -> shared, separate -> not).
    token_ids: pad_token_id / eos_token_id / bos_token_id (defaults: the released models' 0 / 1 / 2).
    """
    names = list(shapes)
    layout = detect_layout(names)
    vocab, hidden = _shape(shapes, "bert/embeddings/word_embeddings", 2)
    positions, position_hidden = _shape(shapes, "bert/embeddings/position_embeddings", 2)
    if position_hidden != hidden:
        raise HubModuleError(f"bert/embeddings/position_embeddings: hidden size {position_hidden} differs from "
                             f"the word embeddings' {hidden}")
    heads = _num_heads(hidden, num_heads, preset)
    stacks = {}
    for stack in ("encoder", "decoder"):
        body = "encoder" if stack == "decoder" and layout == "coupled" else stack
        layers = _layer_count(names, stack)
        if stack == "decoder" and layout == "coupled" and layers != stacks["encoder"].num_hidden_layers:
            raise HubModuleError(f"coupled layout: {layers} bert/decoder layers (encdec) for "
                                 f"{stacks['encoder'].num_hidden_layers} bert/encoder layers")
        _, intermediate = _shape(shapes, f"bert/{body}/layer_0/intermediate/dense/kernel", 2)
        values = dict(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, intermediate_size=intermediate, max_position_embeddings=positions)
        values.update({k: v for k, v in token_ids.items() if v is not None})
        stacks[stack] = BertForSeqGenerationConfig(**values)
    share = layout == "coupled" if share is None else share
    return EncoderDecoderConfig(stacks["encoder"], stacks["decoder"], share=share)


def _num_heads(hidden: int, num_heads: int | None, preset) -> int:
    if num_heads is not None:
        return num_heads
    default = BertForSeqGenerationConfig()
    if preset is not None and hidden == default.hidden_size:
        # Every preset is a released 24-layer model, whose architecture is the config's defaults.
        return default.num_attention_heads
    if hidden % BERT_HEAD_SIZE:
        raise HubModuleError(f"cannot infer the number of attention heads for hidden size {hidden} (no "
                             f"preset matches and it is no multiple of BERT's head size {BERT_HEAD_SIZE}); "
                             "pass num_heads")
    return hidden // BERT_HEAD_SIZE


def _decoder_repeats_encoder(tensors: dict) -> bool:
    """Separate layout whose decoder self-attention/FFN weights equal the encoder's (a shared model)."""
    body = [n for n in tensors if (m := _LAYER.match(n)) and m.group(1) == "decoder"
            and not m.group(3).startswith("attention/encdec")]
    encoder = [n for n in tensors if (m := _LAYER.match(n)) and m.group(1) == "encoder"]
    return bool(body) and len(body) == len(encoder) and all(
        np.array_equal(tensors[n], tensors.get(n.replace("bert/decoder/", "bert/encoder/", 1))) for n in body)


# ---------------------------------------------------------------------------------------------- tokenizer


def module_tokenizer(directory: str, spm_model=None, vocab_file=None, preset=None, **options):
    """The tokenizer for a module: `spm_model` / `vocab_file` when given, else the module's own.

    Args:
        directory: str. The module directory.
        spm_model: bytes, str or None. A SentencePiece model (bytes or a `spiece.model` path).
        vocab_file: str or None. A WordPiece `vocab.txt`.
        preset: `Preset` or None. Its input preprocessing and maximum input length are the defaults.
        **options: tokenizer constructor arguments.

    Returns:
        A `BertForSeqGenerationTokenizer` or a `WordPieceTokenizer`.

    Raises:
        ValueError: both `spm_model` and `vocab_file`.
        HubModuleError: the module holds no tokenizer and none was given, or its vocabulary is unreadable.
    """
    if spm_model is not None and vocab_file is not None:
        raise ValueError("pass spm_model or vocab_file, not both")
    if spm_model is not None:
        source = TokenizerSource("sentencepiece", spm_model, "spm_model")
    elif vocab_file is not None:
        source = TokenizerSource("wordpiece", os.fspath(vocab_file), os.fspath(vocab_file))
    else:
        source = find_tokenizer(directory)
    if source is None:
        raise HubModuleError(f"{directory} holds no tokenizer: no SentencepieceOp node in saved_model.pb and no "
                             f"vocabulary .txt in assets/; {_TOKENIZER_HELP}")
    if preset is not None:
        options = {"preprocess": preset.preprocess, "max_length": preset.max_input_length, **options}
    return _build_tokenizer(source, options)


def _build_tokenizer(source: TokenizerSource, options: dict):
    cls = {"sentencepiece": tokenizers.BertForSeqGenerationTokenizer, "wordpiece": tokenizers.WordPieceTokenizer}
    try:
        return cls[source.kind].from_module_source(source, **options)
    except OSError as e:
        raise HubModuleError(f"cannot read the vocabulary {source.data}: {e}") from e


# ---------------------------------------------------------------------------------------------- loading


@dataclasses.dataclass
class LoadedModule:
    """Everything `load_module` learns about a module.

    Attributes:
        model: the `EncoderDecoder`, its weights assigned.
        tokenizer: the module's tokenizer.
        layout: str. How the module names its decoder's variables: `"separate"` or `"coupled"` (shared).
        preset: the matching `Preset`, or None.
        directory: str. The module's local directory.
        handle: str. What was asked for (handle or directory).
    """

    model: object
    tokenizer: object
    layout: str
    preset: object
    directory: str
    handle: str


def load(handle_or_dir: str, num_heads: int | None = None, spm_model=None, vocab_file=None, preset=None,
         share: bool | None = None, tokenizer_options: dict | None = None, cls=None) -> LoadedModule:
    """`load_module` with everything it found (layout, preset, directory).

    Args:
        handle_or_dir: str. A module directory or a TF Hub handle.
        num_heads: int or None. As `load_module`.
        spm_model: bytes, str or None. As `load_module`.
        vocab_file: str or None. As `load_module`.
        preset: a `Preset`, a preset name, or None to match one by handle.
        share: bool or None. Whether encoder and decoder share weights; None: read from the variables.
        tokenizer_options: dict or None. Tokenizer constructor arguments.
        cls: the model class to build (`EncoderDecoder`, or a subclass); None: `EncoderDecoder`.

    Returns:
        A `LoadedModule`.

    Raises:
        HubModuleError: not a bertseq2seq module, a tokenizer larger than the embeddings, or variables
            missing, unexpected or of the wrong shape (all checked before any is assigned).
    """
    handle_or_dir = os.fspath(handle_or_dir)
    directory = resolve_module(handle_or_dir)
    preset = get_preset(preset) if isinstance(preset, str) else preset or find_preset(handle_or_dir, directory)
    tensors = read_module_variables(directory)
    layout = detect_layout(tensors)
    tokenizer = module_tokenizer(directory, spm_model, vocab_file, preset, **(tokenizer_options or {}))
    if share is None:
        share = layout == "coupled" or _decoder_repeats_encoder(tensors)
    config = infer_config({n: v.shape for n, v in tensors.items()}, num_heads, preset, share,
                          **_token_ids(tokenizer))
    if tokenizer.vocab_size > config.encoder.vocab_size:
        raise HubModuleError(f"the tokenizer has {tokenizer.vocab_size} tokens but bert/embeddings/word_embeddings "
                             f"only {config.encoder.vocab_size} rows; wrong spm_model / vocab_file?")
    model = (cls or model_class("EncoderDecoder")).from_config(config)
    # All-or-nothing: every variable is checked (missing, unexpected, shape) before any is assigned.
    assign(module_entries(model, layout), tensors, directory, optional={LM_HEAD_BIAS},
           ignore=lambda name: name == GLOBAL_STEP)
    return LoadedModule(model, tokenizer, layout, preset, directory, handle_or_dir)


def _token_ids(tokenizer) -> dict:
    return {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": tokenizer.bos_token_id}


def load_module(handle_or_dir: str, num_heads: int | None = None, spm_model=None, vocab_file=None, **kwargs):
    """A TF Hub bertseq2seq module (TF1 hub format, read by variable name) as (`EncoderDecoder`, tokenizer).

    Args:
        handle_or_dir: str. A module directory or a TF Hub handle (downloaded once into
            `$TFHUB_CACHE_DIR` through tensorflow_hub's cache).
        num_heads: int or None. Attention heads, which the module does not record (`infer_config` has
            the fallback).
        spm_model: bytes, str or None. A SentencePiece model to use instead of the module's own (needed
            when it has none).
        vocab_file: str or None. A WordPiece vocabulary to use instead.
        **kwargs: `preset`, `share`, `tokenizer_options` (see `load`).

    Returns:
        (model, tokenizer).

    Raises:
        HubModuleError: as `load`.
    """
    loaded = load(handle_or_dir, num_heads, spm_model, vocab_file, **kwargs)
    return loaded.model, loaded.tokenizer


def convert_module(handle_or_dir: str, out_dir: str, num_heads: int | None = None, spm_model=None,
                   vocab_file=None, overwrite: bool = True, **kwargs) -> str:
    """Converts a module into our directory format (HF's layout), atomically.

    Writes config.json, generation_config.json and model.safetensors (`EncoderDecoder.save_pretrained`),
    the tokenizer files (spiece.model or vocab.txt + tokenizer_config.json) and preset.json (the
    `Preset` fields: decoding defaults beam 4 and GNMT length penalty 0.6 unless the matched preset says
    otherwise). The module is read and checked completely before anything is written.

    Args:
        handle_or_dir: str. A module directory or a TF Hub handle.
        out_dir: str. The directory to write.
        num_heads: int or None. As `load_module`.
        spm_model: bytes, str or None. As `load_module`.
        vocab_file: str or None. As `load_module`.
        overwrite: bool. Replace an existing `out_dir`.
        **kwargs: as `load`.

    Returns:
        `out_dir`.

    Raises:
        FileExistsError: `out_dir` exists and `overwrite` is False.
        HubModuleError: as `load`.
    """
    if not overwrite and os.path.exists(out_dir):
        raise FileExistsError(f"{out_dir} already exists; refusing to overwrite it")
    loaded = load(handle_or_dir, num_heads, spm_model, vocab_file, **kwargs)
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        loaded.model.save_pretrained(tmp, tokenizer=loaded.tokenizer)
        with open(os.path.join(tmp, PRESET_FILE), "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(conversion_preset(loaded)), f, indent=2)
    return out_dir


def conversion_preset(loaded: LoadedModule):
    """The matched preset, or one describing the converted module with the paper's decoding defaults."""
    if loaded.preset is not None:
        return loaded.preset
    handle = loaded.handle if not os.path.exists(loaded.handle) else None
    parts = [p for p in re.split(r"[/\\]+", loaded.handle.rstrip("/\\")) if p and not p.isdigit()]
    config = loaded.model.config
    return Preset(name=parts[-1] if parts else "tfhub_module", hf_repo=None, tfhub_handle=handle,
                  tokenizer="sentencepiece" if isinstance(loaded.tokenizer, tokenizers.BertForSeqGenerationTokenizer) else "wordpiece",
                  shared=config.share, preprocess=getattr(loaded.tokenizer, "preprocess", None),
                  max_input_length=config.encoder.max_position_embeddings,
                  description=f"converted from TF Hub module {loaded.handle} ({loaded.layout} layout)")


# ---------------------------------------------------------------------------------------------- writing


def module_variables(model, layout: str = "separate") -> dict[str, np.ndarray]:
    """Our model's weights under the hub names of `layout` (no global_step).

    "coupled" needs a shared model (one set of self-attention/FFN weights). Embeddings are stored once:
    an unshared model whose encoder and decoder embeddings differ cannot be written.
    """
    _check_layout(layout)
    if layout == "coupled" and not model.config.share:
        raise HubModuleError("layout='coupled' stores one set of self-attention / feed-forward weights, but "
                             "this model's decoder has its own (share=False); use layout='separate'")
    tensors = {}
    for entry in module_entries(model, layout):
        value = entry.variable.numpy().T if entry.transposed else entry.variable.numpy()
        if entry.name in tensors and not np.array_equal(tensors[entry.name], value):
            raise HubModuleError(f"{entry.name}: the encoder's and the decoder's values differ, but the hub "
                                 "layout stores this weight once")
        tensors[entry.name] = value
    if not np.any(tensors[LM_HEAD_BIAS]):
        del tensors[LM_HEAD_BIAS]
    return tensors


def write_module_variables(model, path: str, layout: str = "separate", global_step: int = 0) -> str:
    """Writes our model as a TF checkpoint with the hub variable names (+ `global_step`): what a module's
    `variables/` holds.

    Args:
        model: an `EncoderDecoder`.
        path: str. A module directory (existing; its `variables/` is replaced atomically) or a checkpoint
            prefix.
        layout: str. `"separate"`, or `"coupled"` for a shared model (one set of self-attention and
            feed-forward weights).
        global_step: int. The checkpoint's `global_step`.

    Returns:
        The checkpoint prefix, readable by `tf.train.load_checkpoint` and `read_module_variables`.

    Raises:
        ValueError: an unknown layout.
        HubModuleError: `"coupled"` for a model that is not shared, or an unshared model whose encoder and
            decoder embeddings differ (the hub layout stores them once).
    """
    tensors = module_variables(model, layout)
    tensors[GLOBAL_STEP] = np.asarray(global_step, np.int64)
    if os.path.isdir(path):
        with atomic_directory(os.path.join(path, "variables")) as tmp:
            _save_v2(os.path.join(tmp, "variables"), tensors)
        return os.path.join(path, "variables", "variables")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    _save_v2(path, tensors)
    return path


def _save_v2(prefix: str, tensors: dict):
    """The raw checkpoint writer behind tf.compat.v1 Saver: names are written exactly as given."""
    import tensorflow as tf

    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(tensors[n]) for n in names])


__all__ = ["HubModuleError", "LAYOUTS", "LoadedModule", "TokenizerSource", "cache_dir_name", "check_module_dir",
           "convert_module", "detect_layout", "find_preset", "find_tokenizer", "infer_config", "load",
           "load_module", "module_entries", "module_tokenizer", "module_variables", "read_module_variables",
           "resolve_module", "sentencepiece_model_from_saved_model", "tfhub_name", "write_module_variables"]

"""SentencePiece tokenizer of the bertseq2seq models (`spiece.model`), equal to
`transformers.BertGenerationTokenizer`."""

from __future__ import annotations

import hashlib
import os
import types

import sentencepiece as spm
import tensorflow as tf

from tf_bert_seqgen import _compat
from tf_bert_seqgen.presets import list_presets
from tf_bert_seqgen.tokenizers.base import _first_not_none, _InGraphTokenizer
from tf_bert_seqgen.tokenizers.hf_files import (
    _CONFIG_KEY,
    DEFAULT_MAX_LENGTH,
    SPIECE_MODEL_FILE,
    TokenizerFileError,
    _kwargs_from_config,
    _read_hf_tokenizer_config,
    _write_configs,
)

# The raw SentencePiece ops (`_compat.sentencepiece_ops`). tf-text's SentencepieceTokenizer wraps them around a *kernel-owned*
# model resource, which TensorFlow deletes with the eager kernel cache (`keras.backend.clear_session()`
# does that), leaving the tokenizer with a dangling handle. `_SentencepieceModel` below owns a named
# resource instead, as TensorFlow's own lookup tables do.

_SPIECE_UNDERLINE = "\u2581"

# What Python's str.strip() removes (str.isspace(): Zs, Zl, Zp, ASCII whitespace, \x1c-\x1f, \x85).
_PY_SPACE = r"[\t-\r\x{1C}-\x{20}\x{85}\p{Z}]"
_PY_STRIP = f"^{_PY_SPACE}+|{_PY_SPACE}+$"


class _SentencepieceModel(tf.saved_model.experimental.TrackableResource):
    """The SentencePiece model as a tracked resource (saved and restored with a SavedModel).

    The resource is named after the model's hash, so it is not owned by (and deleted with) the kernel
    that created it; tokenizers of the same model share it, which is safe as it is read-only.
    """

    def __init__(self, model: bytes):
        self._model = model
        self._shared_name = "tf_bert_seqgen_spiece_" + hashlib.sha256(model).hexdigest()[:32]
        super().__init__()
        _ = self.resource_handle  # create it now, eagerly

    def _create_resource(self):
        return _compat.sentencepiece_ops().sentencepiece_op(model=self._model, shared_name=self._shared_name)


class BertForSeqGenerationTokenizer(_InGraphTokenizer):
    """SentencePiece tokenizer of the bertseq2seq models, equal to `transformers.BertGenerationTokenizer`.

    A `tf.Module`: `tokenize` and `detokenize` run in the graph (eagerly, in `tf.function`, in `tf.data` and
    inside an exported SavedModel); `__call__` pads a batch for the model. The special-token strings that
    are pieces of the model are cut out of input text and map to their ids, as transformers does;
    `pad_token_id`, `eos_token_id`, ... fall back to the model's own pad / eos / bos / unk ids.

    Args:
        model: bytes or str. The serialized SentencePiece model, or the path of a `spiece.model` file.
        bos_token: str. Beginning of sequence (transformers' default `"<s>"`).
        eos_token: str. End of sequence (`"</s>"`).
        unk_token: str. Unknown piece (`"<unk>"`).
        pad_token: str. Padding (`"<pad>"`).
        sep_token: str. Separator (`"<::::>"`).
        max_length: int or None. Truncation length of `tokenize`, bos / eos included; None: no truncation.
        add_bos: bool. Put bos before each sequence (the released models add none).
        add_eos: bool. Put eos after each sequence.
        preprocess: None, `"discofuse"`, `"gigaword"` or `"wikisplit"`: a release's input fix, applied in
            the graph before tokenizing.
        name: str or None. The `tf.Module`'s name.

    Raises:
        TokenizerFileError: `model` is empty, not a SentencePiece model, or has no pieces.
        ValueError: `preprocess` is unknown, `max_length` is not a positive integer (or leaves no room for
            bos / eos), or bos / eos is to be added but the model has none.
    """

    KIND = "sentencepiece"
    # The released checkpoints whose tokenizer this is (`from_preset` names).
    presets = types.MappingProxyType(list_presets(tokenizer=KIND))

    def __init__(self, model, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                 sep_token="<::::>", max_length=DEFAULT_MAX_LENGTH, add_bos=False, add_eos=False,
                 preprocess=None, name=None):
        super().__init__(max_length=max_length, add_bos=add_bos, add_eos=add_eos, preprocess=preprocess,
                         name=name)
        path = None
        if isinstance(model, (str, os.PathLike)):
            path = os.fspath(model)
            with open(path, "rb") as f:
                model = f.read()
        source = path or "the SentencePiece model bytes"
        if not isinstance(model, bytes) or not model:
            raise TokenizerFileError(f"{source} is empty or not bytes")
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model)
        except Exception as e:  # sentencepiece raises RuntimeError / OSError depending on the version
            raise TokenizerFileError(f"{source} is not a valid SentencePiece model: {e}") from e
        size = processor.GetPieceSize()
        if size == 0:
            raise TokenizerFileError(f"{source} is a SentencePiece model without pieces")
        self._model_proto = model
        self.vocab_size = size
        self._piece_list = tuple(processor.IdToPiece(i) for i in range(size))

        def piece_id(token):
            if token is None:
                return None
            token_id = processor.PieceToId(token)
            return token_id if self._piece_list[token_id] == token else None

        def model_id(value):
            return value if 0 <= value < size else None

        self.bos_token, self.eos_token, self.unk_token = bos_token, eos_token, unk_token
        self.pad_token, self.sep_token = pad_token, sep_token
        self.bos_token_id = _first_not_none(piece_id(bos_token), model_id(processor.bos_id()))
        self.eos_token_id = _first_not_none(piece_id(eos_token), model_id(processor.eos_id()))
        self.unk_token_id = _first_not_none(piece_id(unk_token), model_id(processor.unk_id()))
        self.pad_token_id = _first_not_none(piece_id(pad_token), model_id(processor.pad_id()))
        self.sep_token_id = piece_id(sep_token)
        self.lowercase = False
        # Special tokens that are pieces of the model: transformers splits exactly these out of the text.
        # (A special token that is not a piece would be appended past the vocabulary by transformers, an
        # id the model has no embedding for; we leave such strings to SentencePiece instead.)
        special = {t: piece_id(t) for t in (bos_token, eos_token, unk_token, pad_token, sep_token)}
        self._set_special_tokens({t: i for t, i in special.items() if i is not None})
        self._sentencepiece = _SentencepieceModel(model)
        self._pieces = tf.constant(self._piece_list, tf.string)

    def _tokenize_text(self, texts):
        # No sampling (nbest_size=0), no bos/eos from SentencePiece itself: those are ours to add.
        values, row_splits = _compat.sentencepiece_ops().sentencepiece_tokenize_op(
            self._sentencepiece.resource_handle, texts, nbest_size=0, alpha=1.0, add_bos=False,
            add_eos=False, reverse=False, out_type=tf.int32, Tsplits=tf.int64)
        return tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)

    def _join_tokens(self, ids):
        # transformers: "".join(pieces).replace("▁", " ").strip()
        text = tf.strings.reduce_join(tf.gather(self._pieces, ids), axis=-1)
        text = tf.strings.regex_replace(text, _SPIECE_UNDERLINE, " ")
        # Python's str.strip(), not tf.strings.strip (ASCII whitespace only).
        return tf.strings.regex_replace(text, _PY_STRIP, "")

    def save_pretrained(self, directory: str) -> tuple:
        """Writes `spiece.model`, `tokenizer_config.json` and `special_tokens_map.json` (HF's layout, which
        `transformers.BertGenerationTokenizer` reads too).

        Args:
            directory: str. Created if missing; files there of the same names are replaced.

        Returns:
            The paths written.
        """
        os.makedirs(directory, exist_ok=True)
        model_path = os.path.join(directory, SPIECE_MODEL_FILE)
        with open(model_path, "wb") as f:
            f.write(self._model_proto)
        tokens = {"bos_token": self.bos_token, "eos_token": self.eos_token, "unk_token": self.unk_token,
                  "pad_token": self.pad_token, "sep_token": self.sep_token}
        config = {"tokenizer_class": "BertGenerationTokenizer", **tokens,
                  "model_max_length": self.max_length if self.max_length is not None else int(1e30),
                  _CONFIG_KEY: {**self._options(), "max_length": self.max_length}}
        return (model_path, *_write_configs(directory, config, tokens))

    @classmethod
    def from_module_source(cls, source, **options) -> BertForSeqGenerationTokenizer:
        """From a TF Hub module's SentencePiece model (`hub_files.TokenizerSource`: the model bytes)."""
        return cls(source.data, **options)

    @classmethod
    def from_pretrained(cls, directory: str, **overrides) -> BertForSeqGenerationTokenizer:
        """Loads from a directory holding `spiece.model` (and optionally HF's `tokenizer_config.json`).

        Args:
            directory: str. The directory.
            **overrides: constructor arguments that replace the files' settings.

        Raises:
            FileNotFoundError: the directory has no `spiece.model`.
        """
        path = os.path.join(directory, SPIECE_MODEL_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {SPIECE_MODEL_FILE} in {directory}")
        config = _read_hf_tokenizer_config(directory)
        kwargs = _kwargs_from_config(config, ("bos_token", "eos_token", "unk_token", "pad_token",
                                              "sep_token"))
        kwargs.update(overrides)
        return cls(path, **kwargs)

"""Tokenizers that run inside the TensorFlow graph and give the same ids as the reference tokenizers.

Two tokenizers cover the released checkpoints:

- `BertForSeqGenerationTokenizer`: SentencePiece (`spiece.model`), the roberta2roberta / BBC models.
  Reference: `transformers.BertGenerationTokenizer` (the slow, sentencepiece-based tokenizer).
- `WordPieceTokenizer`: BERT WordPiece (`vocab.txt`, cased or uncased), the bert2bert WMT models.
  Reference: `transformers.BertTokenizer` (the `tokenizers`-backed one that transformers 5 ships).

Both are `tf.Module`s: made an attribute of an exported module, their resources (the SentencePiece
model, the WordPiece lookup table) are tracked and saved with it. `tokenize` / `detokenize` are plain
TensorFlow code, usable eagerly, inside `tf.function` and inside `tf.data.Dataset.map`; `encode`,
`decode` and `__call__` are the Python conveniences around them.

Only core TensorFlow ops plus the tf-text ops in `TF_SERVING_SAFE_OPS` end up in a graph. In particular
the reference behaviour is rebuilt from core string ops (`regex_replace`, `strings.split`,
`strings.lower`, `gather`, `reduce_join`) rather than with the newer Fast* tf-text kernels, which older
TF Serving binaries do not link.

What the reference tokenizers do, and so what is reproduced here:

- Special-token strings in the text (`<s>`, `</s>`, `<pad>`, `<unk>`, `<::::>`; `[CLS]`, `[SEP]`, ...)
  are cut out of the raw text first and map to their ids; the pieces of text between them are
  tokenized separately (transformers' added-token trie / `tokenizers`' added vocabulary). This is what
  makes the wikisplit card's `<s>text</s>` input start with bos and end with eos.
- SentencePiece: each piece of text goes through the model as is (transformers' `legacy=True`
  default). Decoding joins the pieces, turns `▁` into spaces and strips the ends, so special tokens
  decode to their strings (`</s>`), not to the empty string as `SentencePieceProcessor.decode` does.
- WordPiece: `tokenizers`' `BertNormalizer` (clean text, pad CJK ideographs, NFD + drop non-spacing
  marks when uncased, per-character lowercase), `BertPreTokenizer` (split on whitespace, isolate
  punctuation), greedy longest-match WordPiece with words over 100 characters mapped to the unknown
  token; decoding is the `WordPiece` decoder with its `cleanup` rules.

Known differences from the reference (each checked against transformers 5 / tokenizers):

- Unicode versions. Character classes come from TensorFlow's RE2 (recent Unicode) and case mapping /
  NFD from its ICU; `tokenizers` uses old category tables for punctuation, marks and format characters
  and Rust's current ones for case and NFD. The category disagreements are listed below
  (`_RE2_ONLY_*` / `_REFERENCE_ONLY_*`) and corrected, so every single code point gives the reference's
  ids with the MiniLM vocabulary, cased and uncased (checked by the tests over planes 0-1 and, once,
  over all of Unicode). What remains are case mappings and decompositions added in Unicode 14-16 that
  TensorFlow's ICU lacks (116 code points, e.g. U+2C2F, U+A7C0, U+10570..U+10595, U+10D50..U+10D65,
  U+11383, U+11938, U+16EA0..U+16EB8): with lowercasing they stay as they are, so they only change ids
  for a vocabulary that holds their lowercase / decomposed forms (pinned by
  tests/test_tokenizers.py::test_known_gap_new_case_mappings).
- We follow `transformers.BertTokenizer` (the `tokenizers` backend), not the pure-Python
  `BertTokenizerLegacy`, which differs from it: CJK extension range U+2B820..U+2B91F, private-use and
  unassigned characters, the final sigma.
- A special-token string that is not a piece of the SentencePiece model (e.g. no `<::::>` piece) would
  get a new id past the vocabulary from transformers, an id the model has no embedding for; here such
  a string is left to SentencePiece.
- `detokenize` drops ids outside `[0, vocab_size)` (the `tokenizers` decoder does too; the slow
  SentencePiece tokenizer raises). Every other id decodes as transformers' `decode` does, special ids
  anywhere included. Generation output is decoded with `stop_at_eos=True` instead: that drops pad ids and
  everything after the first eos, which transformers leaves to the caller.
- Input strings must be valid UTF-8 (a Python `str` always is): the byte 0xFF, which valid UTF-8 never
  contains, marks special-token boundaries internally.
- `max_length` truncation keeps the first tokens, as transformers' `truncation=True` on one sequence;
  there is no stride / overflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text

from tf_bert_seqgen import _compat

# The raw SentencePiece ops (`_compat.sentencepiece_ops`). tf-text's SentencepieceTokenizer wraps them around a *kernel-owned*
# model resource, which TensorFlow deletes with the eager kernel cache (`keras.backend.clear_session()`
# does that), leaving the tokenizer with a dangling handle. `_SentencepieceModel` below owns a named
# resource instead, as TensorFlow's own lookup tables do.

# tf-text ops these tokenizers may put in a graph; every other op they use is a core TensorFlow op.
# Verified by tracing `tokenize` / `detokenize` of both tokenizers and listing the op types that are
# not in `tf.raw_ops` (tests/test_tokenizers.py::test_graph_ops_are_serving_safe).
# TF Serving links tf-text into its model server through `@org_tensorflow_text//tensorflow_text:ops_lib`
# (tensorflow_serving/model_servers/BUILD, SUPPORTED_TENSORFLOW_OPS). The ops below come from the
# long-standing kernels of that library: sentencepiece_tokenizer (the SentencePiece family),
# wordpiece_tokenizer (listed in the TF Serving 2.0 release notes as one of the first tf-text ops in
# the server) and normalize_ops. Deliberately not used: FastWordpiece*, FastBertNormalize*,
# FastSentencepiece* and the trimmer ops (newer than many deployed servers), and tf-text's
# BertTokenizer pieces CaseFoldUTF8 / RegexSplitWithOffsets (core regex ops do the same job here,
# and case folding differs from the reference's lowercasing: NFKC, "ß" -> "ss").
TF_SERVING_SAFE_OPS = (
    # SentencePiece: model resource + tokenize. SentencepieceDetokenizeOp is listed because it is in
    # the same kernel library and safe, although `detokenize` below gathers pieces with core ops to
    # reproduce transformers' decoding exactly.
    "SentencepieceOp",
    "SentencepieceTokenizeOp",
    "SentencepieceDetokenizeOp",
    # WordPiece: greedy longest-match-first subword split over a core lookup table.
    "WordpieceTokenizeWithOffsets",
    # Unicode NFD, only in uncased (accent-stripping) WordPiece graphs.
    "NormalizeUTF8",
)

PREPROCESS_OPTIONS = (None, "discofuse", "gigaword", "wikisplit")

DEFAULT_MAX_LENGTH = 512

# HF writes `model_max_length` = int(1e30) when a tokenizer has no limit; anything this large means "unset".
_UNSET_MAX_LENGTH = 10**9

# Valid UTF-8 never contains 0xFF, so it can mark special-token boundaries without colliding with text.
_DELIMITER = b"\xff"

_SPIECE_UNDERLINE = "\u2581"

# What Python's str.strip() removes (str.isspace(): Zs, Zl, Zp, ASCII whitespace, \x1c-\x1f, \x85).
_PY_SPACE = r"[\t-\r\x{1C}-\x{20}\x{85}\p{Z}]"
_PY_STRIP = f"^{_PY_SPACE}+|{_PY_SPACE}+$"

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
SPIECE_MODEL_FILE = "spiece.model"
VOCAB_FILE = "vocab.txt"

# Our own options live under one key of tokenizer_config.json so that transformers, which passes
# unknown keys to the tokenizer's constructor, reads the file unchanged.
_CONFIG_KEY = "tf_bert_seqgen"


class TokenizerFileError(ValueError):
    """A tokenizer file that cannot be read; the message names the file."""


def _preprocess(texts: tf.Tensor, preprocess: str | None) -> tf.Tensor:
    """Applies a model card's input preprocessing with core string ops. texts: [n] string."""
    if preprocess is None:
        return texts
    if preprocess == "discofuse":
        # DiscoFuse card: double quotes were replaced by a backtick in the training data.
        return tf.strings.regex_replace(texts, '"', "`")
    if preprocess == "gigaword":
        # Gigaword card: lowercased input. Unicode-aware, equal to Python's str.lower().
        return tf.strings.lower(texts, encoding="utf-8")
    if preprocess == "wikisplit":
        # WikiSplit card: `<s>` + text + `</s>`; special-token splitting turns them into bos / eos.
        return tf.strings.join(["<s>", texts, "</s>"])
    raise ValueError(f"preprocess must be one of {PREPROCESS_OPTIONS}, got {preprocess!r}")


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TokenizerFileError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(values, dict):
        raise TokenizerFileError(f"{path} does not hold a JSON object")
    return values


def _token_string(value):
    """A special token as HF stores it: a string or an AddedToken dict with `content`."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def _read_hf_tokenizer_config(directory: str) -> dict:
    """Merged special_tokens_map.json and tokenizer_config.json (the latter wins), when present."""
    values = {}
    for name in (SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            values.update(_read_json(path))
    return values


def _max_length_from_config(config: dict):
    value = config.get("model_max_length")
    if isinstance(value, int) and 0 < value < _UNSET_MAX_LENGTH:
        return value
    return DEFAULT_MAX_LENGTH


class _InGraphTokenizer(tf.Module):
    """What both tokenizers share: special-token splitting, truncation, special tokens, the Python API.

    Subclasses implement `_tokenize_text(texts) -> [n, (tokens)]` for text free of special tokens and
    `_join_tokens(ids) -> [n]` for already filtered ids, and set the special-token attributes.
    """

    def __init__(self, *, max_length, add_bos: bool, add_eos: bool, preprocess, name=None):
        super().__init__(name=name)
        if preprocess not in PREPROCESS_OPTIONS:
            raise ValueError(f"preprocess must be one of {PREPROCESS_OPTIONS}, got {preprocess!r}")
        self.max_length = _check_max_length(max_length, add_bos, add_eos)
        self.add_bos = bool(add_bos)
        self.add_eos = bool(add_eos)
        self.preprocess = preprocess

    def _set_special_tokens(self, special_tokens: dict):
        """special_tokens: {string: id} of the special tokens in the vocabulary, cut out of raw text.

        Called by subclasses once the `*_token_id` attributes are set.
        """
        if self.add_bos and self.bos_token_id is None:
            raise ValueError("add_bos=True but the vocabulary has no bos token")
        if self.add_eos and self.eos_token_id is None:
            raise ValueError("add_eos=True but the vocabulary has no eos token")
        self._special_tokens = dict(special_tokens)
        # Longest first: RE2 alternation is leftmost-first, the reference takes the longest match.
        strings = sorted(self._special_tokens, key=len, reverse=True)
        self._special_pattern = "|".join(re.escape(s) for s in strings) if strings else None
        self._special_strings = tf.constant(strings or [""], tf.string)
        self._special_string_ids = tf.constant([self._special_tokens[s] for s in strings] or [0], tf.int32)
        # transformers' `all_special_ids`: what `skip_special_tokens=True` drops.
        self.all_special_ids = sorted(set(self._special_tokens.values()))
        self._all_special_ids = tf.constant(self.all_special_ids or [-1], tf.int32)

    # ------------------------------------------------------------------ in-graph API

    def tokenize(self, strings) -> tf.RaggedTensor:
        """Text to ids, in graph.

        Args:
            strings: string tensor, [batch] or a scalar.

        Returns:
            int32 `tf.RaggedTensor` [batch, (tokens)] (a [tokens] int32 tensor for a scalar input): the
            preprocessed text's ids, truncated to `max_length` tokens, bos/eos included when added.
        """
        return self._tokenize(strings, self.max_length)

    def _tokenize(self, strings, max_length):
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        rank = strings.shape.rank
        if rank not in (0, 1):
            raise ValueError(f"tokenize expects a scalar or a [batch] string tensor, got {strings.shape}")
        texts = _preprocess(tf.reshape(strings, [-1]), self.preprocess)
        ids = self._tokenize_with_special_tokens(texts)
        if max_length is not None:
            # As transformers: the text is truncated, then the special tokens are added.
            ids = ids[:, :max_length - int(self.add_bos) - int(self.add_eos)]
        parts = [ids]
        if self.add_bos:
            parts.insert(0, self._column(self.bos_token_id, ids.nrows()))
        if self.add_eos:
            parts.append(self._column(self.eos_token_id, ids.nrows()))
        if len(parts) > 1:
            ids = tf.concat(parts, axis=1)
        return ids[0] if rank == 0 else ids

    @staticmethod
    def _column(token_id, rows):
        """[rows, 1] ragged column of `token_id`."""
        return tf.RaggedTensor.from_tensor(tf.fill(tf.stack([rows, 1]), tf.constant(token_id, tf.int32)))

    def detokenize(self, ids, skip_special_tokens: bool = False, stop_at_eos: bool = False) -> tf.Tensor:
        """Ids to text, in graph, as transformers' `decode` (ids outside the vocabulary are dropped).

        Args:
            ids: integer ids, dense [batch, len] / ragged [batch, (len)], or [len] for one sequence.
            skip_special_tokens: drop bos/eos/pad/unk/sep/... ids, as transformers' `decode`.
            stop_at_eos: for generation output: drop everything after the first eos (the eos itself is
                kept unless `skip_special_tokens`) and every pad id, the filler of rows that ended early.

        Returns:
            string tensor [batch] (a scalar for a [len] input).
        """
        if isinstance(ids, tf.RaggedTensor):
            # Padded with -1, an id outside the vocabulary, so the padding is dropped below.
            dense = ids.to_tensor(default_value=tf.cast(-1, ids.dtype))
        else:
            dense = tf.convert_to_tensor(ids)
        rank = dense.shape.rank
        if rank not in (1, 2) or not dense.dtype.is_integer:
            raise ValueError(f"detokenize expects integer ids [len] or [batch, len], got {dense.dtype} "
                             f"of shape {dense.shape}")
        dense = tf.cast(dense[None] if rank == 1 else dense, tf.int64)
        valid = (dense >= 0) & (dense < self.vocab_size)
        dense = tf.cast(tf.where(valid, dense, 0), tf.int32)
        keep = valid
        if stop_at_eos:
            keep &= self._generated_mask(dense, valid)
        if skip_special_tokens:
            keep &= ~tf.reduce_any(dense[..., None] == self._all_special_ids, axis=-1)
        text = self._join_tokens(tf.ragged.boolean_mask(dense, keep))
        return text[0] if rank == 1 else text

    def _generated_mask(self, ids, valid):
        """Mask [batch, len] of the ids a generated row holds: not pad, not after the first eos."""
        keep = tf.ones_like(valid)
        if self.pad_token_id is not None:
            keep &= ids != self.pad_token_id
        if self.eos_token_id is not None:
            is_eos = tf.cast(valid & (ids == self.eos_token_id), tf.int32)
            keep &= tf.math.cumsum(is_eos, axis=1, exclusive=True) == 0
        return keep

    # ------------------------------------------------------------------ Python conveniences

    def encode(self, text):
        """`str` -> list[int]; list of str -> list[list[int]] (the ids of `tokenize`)."""
        if isinstance(text, str):
            return self.tokenize(tf.constant(text)).numpy().tolist()
        return self.tokenize(tf.constant(list(text), tf.string)).to_list()

    def decode(self, ids, skip_special_tokens: bool = False, stop_at_eos: bool = False):
        """One sequence of ids -> str; a batch (list of lists, 2-D array or tensor) -> list[str].

        Equal to transformers' `decode`; `stop_at_eos=True` for generation output (see `detokenize`).
        """
        if isinstance(ids, (tf.Tensor, tf.RaggedTensor, np.ndarray)):
            batched = ids.shape.rank == 2 if isinstance(ids, (tf.Tensor, tf.RaggedTensor)) else ids.ndim == 2
        else:
            ids = list(ids)
            batched = bool(ids) and not np.isscalar(ids[0])
            if batched:
                ids = tf.ragged.constant([[int(i) for i in row] for row in ids], dtype=tf.int32,
                                         row_splits_dtype=tf.int64)
            else:
                ids = tf.constant([int(i) for i in ids], tf.int32, shape=[len(ids)])
        out = self.detokenize(ids, skip_special_tokens=skip_special_tokens, stop_at_eos=stop_at_eos).numpy()
        if batched:
            return [s.decode("utf-8") for s in out]
        return out.decode("utf-8")

    def __call__(self, texts, max_length=None, padding: str = "longest", return_tensors: str = "np"):
        """Model inputs for a text or a list of texts.

        Args:
            texts: `str` (a batch of one) or a list of `str`.
            max_length: truncation length; defaults to `self.max_length`.
            padding: "longest" (pad to the longest row) or "max_length".
            return_tensors: "np" (numpy arrays) or "tf" (tf tensors).

        Returns:
            dict with `input_ids` [batch, len] int32 right-padded with `pad_token_id`, and
            `attention_mask` [batch, len] int32 (1 on tokens, 0 on padding).
        """
        if padding not in ("longest", "max_length"):
            raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
        if return_tensors not in ("np", "tf"):
            raise ValueError(f"return_tensors must be 'np' or 'tf', got {return_tensors!r}")
        if isinstance(texts, str):
            texts = [texts]
        length = self.max_length
        if max_length is not None:
            length = _check_max_length(max_length, self.add_bos, self.add_eos)
        ids = self._tokenize(tf.constant(list(texts), tf.string), length)
        if padding == "max_length":
            if length is None:
                raise ValueError("padding='max_length' needs a max_length")
            shape = [None, length]
        else:
            shape = None
        pad = 0 if self.pad_token_id is None else self.pad_token_id
        input_ids = ids.to_tensor(default_value=pad, shape=shape)
        mask = tf.ones_like(ids).to_tensor(default_value=0, shape=shape)
        if return_tensors == "np":
            return {"input_ids": input_ids.numpy(), "attention_mask": mask.numpy()}
        return {"input_ids": input_ids, "attention_mask": mask}

    # ------------------------------------------------------------------ internals

    def _tokenize_with_special_tokens(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """texts [n] -> ids [n, (tokens)]: special tokens cut out first, the rest tokenized chunk by chunk."""
        if self._special_pattern is None:
            return self._tokenize_text(texts)
        marked = tf.strings.regex_replace(texts, self._special_pattern, _DELIMITER + b"\\0" + _DELIMITER)
        # [n, (chunks)]. The empty chunks around adjacent / leading / trailing special tokens, which the
        # reference skips, give no tokens here either.
        chunks = tf.strings.split(marked, sep=_DELIMITER)
        flat = chunks.flat_values  # [c]
        matches = tf.equal(flat[:, None], self._special_strings[None, :])  # [c, s]
        is_special = tf.reduce_any(matches, axis=1)
        special_ids = tf.gather(self._special_string_ids, tf.argmax(tf.cast(matches, tf.int32), axis=1))
        text_ids = self._tokenize_text(tf.where(is_special, "", flat))  # "" -> no tokens
        special_rows = tf.RaggedTensor.from_row_lengths(
            tf.boolean_mask(special_ids, is_special), tf.cast(is_special, tf.int64))
        chunk_ids = tf.concat([text_ids, special_rows], axis=1)  # one of the two is empty per chunk
        return chunks.with_flat_values(chunk_ids).merge_dims(1, 2)

    def _tokenize_text(self, texts: tf.Tensor) -> tf.RaggedTensor:
        raise NotImplementedError

    def _join_tokens(self, ids: tf.RaggedTensor) -> tf.Tensor:
        raise NotImplementedError

    def _options(self) -> dict:
        return {"add_bos": self.add_bos, "add_eos": self.add_eos, "preprocess": self.preprocess}

    def __repr__(self):
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, max_length={self.max_length}, "
                f"add_bos={self.add_bos}, add_eos={self.add_eos}, preprocess={self.preprocess!r})")


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

    Args:
        model: the serialized SentencePiece model (bytes) or the path of a `spiece.model` file.
        bos_token, eos_token, unk_token, pad_token, sep_token: special-token strings, as transformers'
            defaults. Those that are pieces of the model are cut out of input text and map to their
            ids; `pad_token_id` etc. fall back to the model's own pad/eos/bos/unk ids.
        max_length: truncation length of `tokenize` (bos/eos included), None for none.
        add_bos, add_eos: add bos / eos around each sequence (the released models add none).
        preprocess: None, "discofuse", "gigaword" or "wikisplit" (see `_preprocess`).
    """

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
        """Writes spiece.model, tokenizer_config.json and special_tokens_map.json; returns the paths."""
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
    def from_pretrained(cls, directory: str, **overrides) -> BertForSeqGenerationTokenizer:
        """Loads from a directory holding `spiece.model` (+ optional HF tokenizer_config.json)."""
        path = os.path.join(directory, SPIECE_MODEL_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {SPIECE_MODEL_FILE} in {directory}")
        config = _read_hf_tokenizer_config(directory)
        kwargs = _kwargs_from_config(config, ("bos_token", "eos_token", "unk_token", "pad_token",
                                              "sep_token"))
        kwargs.update(overrides)
        return cls(path, **kwargs)


def _code_points(*items) -> str:
    """Regex character-class body for code points and (first, last) ranges: `\\x{61D}\\x{2E43}-\\x{2E4F}`."""
    parts = []
    for item in items:
        first, last = item if isinstance(item, tuple) else (item, item)
        parts.append(f"\\x{{{first:X}}}" if first == last else f"\\x{{{first:X}}}-\\x{{{last:X}}}")
    return "".join(parts)


# The reference's Unicode tables. `tokenizers` classifies punctuation, non-spacing marks and format
# characters with the `unicode_categories` crate (Unicode 9-era tables), while TensorFlow's RE2 knows
# recent Unicode. These are the code points on which the two disagree, found by running every code
# point through tokenizers 0.23's BertNormalizer / BertPreTokenizer and through RE2's \p{P}, \p{Cf},
# \p{Mn} in TensorFlow 2.21 (tests/test_tokenizers.py::test_every_code_point_matches re-checks them).
# They are characters of recently encoded scripts and punctuation, e.g. U+061D, U+2E43..U+2E5D.
_RE2_ONLY_PUNCTUATION = _code_points(
    0x61D, 0x9FD, 0xA76, 0xC77, 0xC84, (0x1B7D, 0x1B7E), (0x2E43, 0x2E4F), (0x2E52, 0x2E5D), 0x10EAD,
    (0x10F55, 0x10F59), (0x10F86, 0x10F89), (0x1144B, 0x1144F), (0x1145A, 0x1145B), 0x1145D,
    (0x11660, 0x1166C), 0x116B9, 0x1183B, (0x11944, 0x11946), 0x119E2, (0x11A3F, 0x11A46),
    (0x11A9A, 0x11A9C), (0x11A9E, 0x11AA2), (0x11B00, 0x11B09), (0x11C41, 0x11C45), (0x11C70, 0x11C71),
    (0x11EF7, 0x11EF8), (0x11F43, 0x11F4F), 0x11FFF, (0x12FF1, 0x12FF2), (0x16E97, 0x16E9A), 0x16FE2,
    (0x1E95E, 0x1E95F),
)
_REFERENCE_ONLY_PUNCTUATION = _code_points(
    0x166D, 0x111C9,
)
_RE2_ONLY_FORMAT = _code_points(
    (0x890, 0x891), 0x8E2, 0x110CD, (0x13430, 0x1343F),
)
_RE2_ONLY_NONSPACING_MARKS = _code_points(
    0x7FD, (0x898, 0x89F), (0x8CA, 0x8E1), 0x9FE, (0xAFA, 0xAFF), 0xB55, 0xC04, 0xC3C, 0xD00,
    (0xD3B, 0xD3C), 0xD81, 0xEBA, 0xECE, 0x180F, (0x1885, 0x1886), (0x1ABF, 0x1ACE), (0x1DF6, 0x1DFB),
    0xA82C, 0xA8C5, 0xA8FF, 0xA9BD, (0x10D24, 0x10D27), (0x10EAB, 0x10EAC), (0x10EFD, 0x10EFF),
    (0x10F46, 0x10F50), (0x10F82, 0x10F85), 0x11070, (0x11073, 0x11074), 0x110C2, 0x111C9, 0x111CF, 0x1123E,
    0x11241, 0x1133B, (0x11438, 0x1143F), (0x11442, 0x11444), 0x11446, 0x1145E, (0x1182F, 0x11837),
    (0x11839, 0x1183A), (0x1193B, 0x1193C), 0x1193E, 0x11943, (0x119D4, 0x119D7), (0x119DA, 0x119DB),
    0x119E0, (0x11A01, 0x11A0A), (0x11A33, 0x11A38), (0x11A3B, 0x11A3E), 0x11A47, (0x11A51, 0x11A56),
    (0x11A59, 0x11A5B), (0x11A8A, 0x11A96), (0x11A98, 0x11A99), (0x11C30, 0x11C36), (0x11C38, 0x11C3D),
    0x11C3F, (0x11C92, 0x11CA7), (0x11CAA, 0x11CB0), (0x11CB2, 0x11CB3), (0x11CB5, 0x11CB6),
    (0x11D31, 0x11D36), 0x11D3A, (0x11D3C, 0x11D3D), (0x11D3F, 0x11D45), 0x11D47, (0x11D90, 0x11D91),
    0x11D95, 0x11D97, (0x11EF3, 0x11EF4), (0x11F00, 0x11F01), (0x11F36, 0x11F3A), 0x11F40, 0x11F42, 0x13440,
    (0x13447, 0x13455), 0x16F4F, 0x16FE4, (0x1CF00, 0x1CF2D), (0x1CF30, 0x1CF46), (0x1E000, 0x1E006),
    (0x1E008, 0x1E018), (0x1E01B, 0x1E021), (0x1E023, 0x1E024), (0x1E026, 0x1E02A), 0x1E08F,
    (0x1E130, 0x1E136), 0x1E2AE, (0x1E2EC, 0x1E2EF), (0x1E4EC, 0x1E4EF), (0x1E944, 0x1E94A),
)
_REFERENCE_ONLY_NONSPACING_MARKS = _code_points(
    0x1734,
)


class WordPieceTokenizer(_InGraphTokenizer):
    """BERT WordPiece tokenizer, equal to `transformers.BertTokenizer` (cased or uncased).

    Args:
        vocabulary: path of a `vocab.txt` (one token per line, id = line number) or a list of tokens.
        lowercase: lowercase the text (uncased vocabularies), HF's `do_lower_case`.
        strip_accents: NFD + drop non-spacing marks; None follows `lowercase`, as in BERT.
        tokenize_chinese_chars: isolate CJK ideographs.
        unk_token: None picks `[UNK]`, or `<unk>` when the vocabulary only has that one.
        cls_token, sep_token, mask_token: BERT's special tokens.
        pad_token, bos_token, eos_token: None picks `<pad>` / `<s>` / `</s>` when the vocabulary has them
            (the bert2bert WMT cards pass these), else `[PAD]` / `[CLS]` / `[SEP]`.
        max_length, add_bos, add_eos, preprocess: as `BertForSeqGenerationTokenizer`.
    """

    # tokenizers' BertPreTokenizer isolates ASCII punctuation and Unicode P* characters (its tables).
    _PUNCTUATION = ("[!-/:-@\\[-`{-~" + _REFERENCE_ONLY_PUNCTUATION + "]"
                    "|[^\\P{P}" + _RE2_ONLY_PUNCTUATION + "]")
    # tokenizers' BertNormalizer `is_chinese_char` ranges. Note 0x2B920, where the Python BERT tokenizer
    # and tf-text's BasicTokenizer start that range at 0x2B820: U+2B820..U+2B91F are not isolated.
    _CJK = (r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
            r"\x{2B740}-\x{2B81F}\x{2B920}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]")
    # BertNormalizer clean_text: \t \n \r and separators (Z*) become a space; control (Cc), format (Cf)
    # and private-use (Co) characters and U+FFFD are dropped. Unassigned code points are kept, as the
    # reference does (checked against tokenizers: U+0378 survives normalization).
    _WHITESPACE = r"[\t\n\r\p{Z}]"
    _DROPPED = r"[\p{Cc}\p{Co}\x{FFFD}]|[^\P{Cf}" + _RE2_ONLY_FORMAT + "]"
    # Accent stripping drops non-spacing marks (Mn) after NFD.
    _NONSPACING_MARKS = ("[" + _REFERENCE_ONLY_NONSPACING_MARKS + "]"
                         "|[^\\P{Mn}" + _RE2_ONLY_NONSPACING_MARKS + "]")
    # tokenizers' WordPiece `max_input_chars_per_word`: longer words become the unknown token.
    MAX_CHARS_PER_WORD = 100
    # tokenizers' WordPiece decoder `cleanup`, applied to every token in this order.
    _CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))

    def __init__(self, vocabulary, lowercase=True, strip_accents=None, tokenize_chinese_chars=True,
                 unk_token=None, cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
                 pad_token=None, bos_token=None, eos_token=None, max_length=DEFAULT_MAX_LENGTH,
                 add_bos=False, add_eos=False, preprocess=None, name=None):
        super().__init__(max_length=max_length, add_bos=add_bos, add_eos=add_eos, preprocess=preprocess,
                         name=name)
        source = "the vocabulary list"
        if isinstance(vocabulary, (str, os.PathLike)):
            source = os.fspath(vocabulary)
            vocabulary = _read_vocab_file(source)
        tokens = list(vocabulary)
        if not tokens:
            raise TokenizerFileError(f"{source} holds no tokens")
        if not all(isinstance(t, str) for t in tokens):
            raise TokenizerFileError(f"{source} holds non-string tokens")
        # Duplicated lines: the last one wins, as transformers' load_vocab / tokenizers' WordPiece.
        index = {token: i for i, token in enumerate(tokens)}
        if unk_token is None:
            unk_token = "[UNK]" if "[UNK]" in index or "<unk>" not in index else "<unk>"
        if unk_token not in index:
            raise TokenizerFileError(f"{source} has no unknown token {unk_token!r}")
        self._vocab = tuple(tokens)
        self.vocab_size = len(tokens)
        self.lowercase = bool(lowercase)
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self._strip_accents_option = strip_accents
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)

        def pick(token, preferred, fallback):
            if token is not None:
                return token
            return preferred if preferred in index else fallback

        self.unk_token, self.cls_token = unk_token, cls_token
        self.sep_token, self.mask_token = sep_token, mask_token
        self.pad_token = pick(pad_token, "<pad>", "[PAD]")
        self.bos_token = pick(bos_token, "<s>", cls_token)
        self.eos_token = pick(eos_token, "</s>", sep_token)
        self.unk_token_id = index[unk_token]
        self.pad_token_id = index.get(self.pad_token)
        self.bos_token_id = index.get(self.bos_token)
        self.eos_token_id = index.get(self.eos_token)
        self.cls_token_id = index.get(cls_token)
        self.sep_token_id = index.get(sep_token)
        self.mask_token_id = index.get(mask_token)
        special = (self.unk_token, self.sep_token, self.pad_token, self.cls_token, self.mask_token,
                   self.bos_token, self.eos_token)
        self._set_special_tokens({t: index[t] for t in special if t is not None and t in index})
        keys = list(index)
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string),
                                                tf.constant([index[k] for k in keys], tf.int64)),
            default_value=-1)
        # Byte limit of the kernel set out of reach (4 bytes per character at most); the character
        # limit of the reference is applied before the kernel instead.
        self._wordpiece = tf_text.WordpieceTokenizer(
            self._table, suffix_indicator="##", max_bytes_per_word=4 * self.MAX_CHARS_PER_WORD,
            token_out_type=tf.int64, unknown_token=unk_token, split_unknown_characters=False)
        self._tokens = tf.constant(tokens, tf.string)

    def _normalize(self, texts):
        """tokenizers' BertNormalizer, in its order: clean text, CJK, strip accents, lowercase."""
        # Whitespace first: \t \n \r are Cc, but the reference turns them into spaces, not drops them.
        texts = tf.strings.regex_replace(texts, self._WHITESPACE, " ")
        texts = tf.strings.regex_replace(texts, self._DROPPED, "")
        if self.tokenize_chinese_chars:
            texts = tf.strings.regex_replace(texts, self._CJK, " \\0 ")
        if self.strip_accents:
            texts = tf_text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, self._NONSPACING_MARKS, "")
        if self.lowercase:
            # Rust lowercases character by character, so a capital sigma always becomes σ; ICU's
            # full-string lowercase (as Python's) would give the final form ς at the end of a word.
            texts = tf.strings.regex_replace(texts, "\u03a3", "\u03c3")
            texts = tf.strings.lower(texts, encoding="utf-8")
        return texts

    def _tokenize_text(self, texts):
        texts = self._normalize(texts)
        # BertPreTokenizer: whitespace separates words, punctuation is a word of its own.
        texts = tf.strings.regex_replace(texts, self._PUNCTUATION, " \\0 ")
        words = tf.strings.split(texts)  # [n, (words)]
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > self.MAX_CHARS_PER_WORD
        words = words.with_flat_values(tf.where(too_long, self.unk_token, words.flat_values))
        pieces = self._wordpiece.tokenize(words)  # [n, (words), (pieces)] int64
        return tf.cast(pieces.merge_dims(1, 2), tf.int32)

    def _join_tokens(self, ids):
        # tokenizers' WordPiece decoder: the first token as is; later ones lose a leading "##" or get a
        # leading space; then the cleanup rules on each token; then concatenation.
        tokens = tf.gather(self._tokens, ids)
        flat = tokens.flat_values
        row_starts = tf.gather(tokens.row_starts(), tokens.value_rowids())
        first = tf.range(tf.size(flat, out_type=tf.int64)) == row_starts
        continuation = tf.strings.substr(flat, 0, 2) == "##"
        later = tf.where(continuation, tf.strings.regex_replace(flat, "^##", "", replace_global=False),
                         tf.strings.join([" ", flat]))
        flat = tf.where(first, flat, later)
        for old, new in self._CLEANUP:
            flat = tf.strings.regex_replace(flat, re.escape(old), new)
        return tf.strings.reduce_join(tokens.with_flat_values(flat), axis=-1)

    def save_pretrained(self, directory: str) -> tuple:
        """Writes vocab.txt, tokenizer_config.json and special_tokens_map.json; returns the paths."""
        os.makedirs(directory, exist_ok=True)
        vocab_path = os.path.join(directory, VOCAB_FILE)
        with open(vocab_path, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(token + "\n" for token in self._vocab))
        tokens = {"unk_token": self.unk_token, "sep_token": self.sep_token, "pad_token": self.pad_token,
                  "cls_token": self.cls_token, "mask_token": self.mask_token,
                  "bos_token": self.bos_token, "eos_token": self.eos_token}
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.lowercase,
                  "strip_accents": self._strip_accents_option,
                  "tokenize_chinese_chars": self.tokenize_chinese_chars, **tokens,
                  "model_max_length": self.max_length if self.max_length is not None else int(1e30),
                  _CONFIG_KEY: {**self._options(), "max_length": self.max_length}}
        return (vocab_path, *_write_configs(directory, config, tokens))

    @classmethod
    def from_pretrained(cls, directory: str, **overrides) -> WordPieceTokenizer:
        """Loads from a directory holding `vocab.txt` (+ optional HF tokenizer_config.json)."""
        path = os.path.join(directory, VOCAB_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no {VOCAB_FILE} in {directory}")
        config = _read_hf_tokenizer_config(directory)
        kwargs = _kwargs_from_config(config, ("unk_token", "cls_token", "sep_token", "mask_token",
                                              "pad_token", "bos_token", "eos_token"))
        if "do_lower_case" in config:
            kwargs["lowercase"] = bool(config["do_lower_case"])
        if config.get("strip_accents") is not None:
            kwargs["strip_accents"] = bool(config["strip_accents"])
        if "tokenize_chinese_chars" in config:
            kwargs["tokenize_chinese_chars"] = bool(config["tokenize_chinese_chars"])
        kwargs.update(overrides)
        return cls(path, **kwargs)


def _check_max_length(max_length, add_bos, add_eos):
    if max_length is None:
        return None
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length <= 0:
        raise ValueError(f"max_length must be a positive integer or None, got {max_length!r}")
    if max_length < int(add_bos) + int(add_eos):
        raise ValueError(f"max_length={max_length} leaves no room for the bos/eos tokens")
    return max_length


def _first_not_none(*values):
    return next((v for v in values if v is not None), None)


def _read_vocab_file(path: str) -> list:
    """One token per line, as transformers' load_vocab (universal newlines, only "\\n" stripped)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise TokenizerFileError(f"{path} is not a UTF-8 text vocabulary: {e}") from e
    if "\x00" in text:
        raise TokenizerFileError(f"{path} is not a text vocabulary (it holds NUL bytes)")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _kwargs_from_config(config: dict, token_names) -> dict:
    kwargs = {}
    for name in token_names:
        value = _token_string(config.get(name))
        if value is not None:
            kwargs[name] = value
    kwargs["max_length"] = _max_length_from_config(config)
    ours = config.get(_CONFIG_KEY, {})
    if not isinstance(ours, dict):
        raise TokenizerFileError(f"{TOKENIZER_CONFIG_FILE}: {_CONFIG_KEY!r} must be an object")
    for name in ("add_bos", "add_eos", "preprocess", "max_length"):
        if name in ours:
            kwargs[name] = ours[name]
    return kwargs


def _write_configs(directory: str, config: dict, tokens: dict) -> tuple:
    config_path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
    map_path = os.path.join(directory, SPECIAL_TOKENS_MAP_FILE)
    with open(map_path, "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in tokens.items() if v is not None}, f, indent=2, ensure_ascii=False)
    return config_path, map_path


def load_tokenizer(directory: str, **overrides):
    """The tokenizer of an HF-layout directory: `spiece.model` -> SentencePiece, `vocab.txt` -> WordPiece.

    Casing and special tokens come from `tokenizer_config.json` when present (`do_lower_case`, ...);
    keyword arguments override them (e.g. `preprocess="gigaword"`, `max_length=128`).
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"tokenizer directory {directory} does not exist")
    has_spiece = os.path.isfile(os.path.join(directory, SPIECE_MODEL_FILE))
    has_vocab = os.path.isfile(os.path.join(directory, VOCAB_FILE))
    if has_spiece and has_vocab:
        # Both present: let the saved tokenizer class decide, SentencePiece otherwise.
        tokenizer_class = _read_hf_tokenizer_config(directory).get("tokenizer_class", "")
        has_spiece = not tokenizer_class.startswith("BertTokenizer")
    if has_spiece:
        return BertForSeqGenerationTokenizer.from_pretrained(directory, **overrides)
    if has_vocab:
        return WordPieceTokenizer.from_pretrained(directory, **overrides)
    raise FileNotFoundError(
        f"no tokenizer in {directory}: expected {SPIECE_MODEL_FILE} (SentencePiece) "
        f"or {VOCAB_FILE} (WordPiece)")

"""What both in-graph tokenizers share: special-token splitting, truncation, input preprocessing,
the Python API (`encode`, `decode`, `__call__`), and the tf-text ops they may put in a graph."""

from __future__ import annotations

import re

import numpy as np
import tensorflow as tf

from tf_bert_seqgen.checkpoints import hub_files
from tf_bert_seqgen.checkpoints.locate import Located, locate
from tf_bert_seqgen.tokenizers.hf_files import tokenizer_kind

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


# Valid UTF-8 never contains 0xFF, so it can mark special-token boundaries without colliding with text.
_DELIMITER = b"\xff"


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


class _InGraphTokenizer(tf.Module):
    """What both tokenizers share: special-token splitting, truncation, special tokens, the Python API.

    Subclasses implement `_tokenize_text(texts) -> [n, (tokens)]` for text free of special tokens and
    `_join_tokens(ids) -> [n]` for already filtered ids, and set the special-token attributes.
    """

    # The tokenizer files a subclass reads: "sentencepiece" (spiece.model) or "wordpiece" (vocab.txt).
    KIND = None

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

        Raises:
            ValueError: `strings` is neither a scalar nor of rank 1.
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

        Raises:
            ValueError: `ids` are not integers of rank 1 or 2.
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
        """The ids of `tokenize`, as Python lists.

        Args:
            text: a `str`, or a list of `str`.

        Returns:
            list of int for a `str`; list of lists of int for a list.
        """
        if isinstance(text, str):
            return self.tokenize(tf.constant(text)).numpy().tolist()
        return self.tokenize(tf.constant(list(text), tf.string)).to_list()

    def decode(self, ids, skip_special_tokens: bool = False, stop_at_eos: bool = False):
        """Ids to text, equal to transformers' `decode`.

        Args:
            ids: one sequence (a list of int, a 1-D array or tensor) or a batch (a list of lists, a 2-D
                array, tensor or ragged tensor [batch, (len)]).
            skip_special_tokens: bool. As `detokenize`.
            stop_at_eos: bool. As `detokenize`; True for generation output (`generate` pads after eos).

        Returns:
            `str` for one sequence, list of `str` for a batch.
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

        Raises:
            ValueError: an unknown `padding` or `return_tensors`, or `padding="max_length"` without a
                length.
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

    # ------------------------------------------------------------------ presets

    @classmethod
    def from_preset(cls, name_or_path, **overrides):
        """The tokenizer of a preset, as KerasHub's `Tokenizer.from_preset`.

        A preset's input preparation (`preprocess`, `max_length`) comes with it. An HF repo's tokenizer
        files are downloaded (no weights), a TF Hub module's tokenizer is read from its graph or assets.
        `load_tokenizer` picks the class.

        Args:
            name_or_path: str. A preset name (`presets.list_presets()`), an HF repo id, a TF Hub handle or
                a local directory.
            **overrides: constructor arguments that replace the preset's and the files' settings.

        Raises:
            FileNotFoundError: the source holds no tokenizer files.
            ValueError: the source holds the other kind of tokenizer (SentencePiece or WordPiece).
            HubModuleError: a TF Hub module without a tokenizer in its graph or assets.
        """
        return cls.from_located(locate(name_or_path, tokenizer_only=True), **overrides)

    @classmethod
    def from_located(cls, located: Located, **overrides):
        """The tokenizer of an already located source (`checkpoints.locate`)."""
        options = {**located.tokenizer_options(), **overrides}
        source = None
        if located.kind == "tfhub":
            source = hub_files.find_tokenizer(located.directory)
            if source is None:
                raise hub_files.HubModuleError(
                    f"{located.directory} holds no tokenizer: no SentencepieceOp node in saved_model.pb and no "
                    "vocabulary .txt in assets/; load one from its files (BertForSeqGenerationTokenizer(spiece.model)"
                    " or WordPieceTokenizer(vocab.txt))")
            kind = source.kind
        else:
            kind = tokenizer_kind(located.directory)
            if kind is None:
                raise FileNotFoundError(f"no tokenizer in {located.directory} ({located.name}): expected spiece.model "
                                        "(SentencePiece) or vocab.txt (WordPiece)")
        if kind != cls.KIND:
            raise ValueError(f"{located.name} holds a {kind} tokenizer, which {cls.__name__} does not read; "
                             "load_tokenizer picks the right class")
        if source is None:
            return cls.from_pretrained(located.directory, **options)
        return cls.from_module_source(source, **options)

    @classmethod
    def from_module_source(cls, source, **options):
        """From a TF Hub module's tokenizer (`hub_files.TokenizerSource` of this class's KIND)."""
        raise NotImplementedError

    @classmethod
    def from_pretrained(cls, directory: str, **overrides):
        raise NotImplementedError

    def __repr__(self):
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, max_length={self.max_length}, "
                f"add_bos={self.add_bos}, add_eos={self.add_eos}, preprocess={self.preprocess!r})")


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

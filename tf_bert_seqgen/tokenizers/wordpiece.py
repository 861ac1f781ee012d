"""BERT WordPiece tokenizer (`vocab.txt`), equal to `transformers.BertTokenizer`."""

from __future__ import annotations

import os
import re
import types

import tensorflow as tf
import tensorflow_text as tf_text

from tf_bert_seqgen.presets import list_presets
from tf_bert_seqgen.tokenizers.base import _InGraphTokenizer
from tf_bert_seqgen.tokenizers.hf_files import (
    _CONFIG_KEY,
    DEFAULT_MAX_LENGTH,
    VOCAB_FILE,
    TokenizerFileError,
    _kwargs_from_config,
    _read_hf_tokenizer_config,
    _read_vocab_file,
    _write_configs,
)
from tf_bert_seqgen.tokenizers.unicode import (
    _RE2_ONLY_FORMAT,
    _RE2_ONLY_NONSPACING_MARKS,
    _RE2_ONLY_PUNCTUATION,
    _REFERENCE_ONLY_NONSPACING_MARKS,
    _REFERENCE_ONLY_PUNCTUATION,
)


def is_uncased_vocabulary(tokens) -> bool:
    """An uncased BERT vocabulary has no capital letters outside its [SPECIAL] / <special> tokens."""
    words = (t for t in tokens if (t[:1], t[-1:]) not in (("[", "]"), ("<", ">")))
    return not any(t != t.lower() for t in words)


class WordPieceTokenizer(_InGraphTokenizer):
    """BERT WordPiece tokenizer, equal to `transformers.BertTokenizer` (cased or uncased).

    A `tf.Module` like `BertForSeqGenerationTokenizer`: the same in-graph and Python methods.

    Args:
        vocabulary: str or list of str. The path of a `vocab.txt` (one token per line, id = line number),
            or the tokens.
        lowercase: bool. Lowercase the text (uncased vocabularies), HF's `do_lower_case`.
        strip_accents: bool or None. NFD, then drop non-spacing marks; None follows `lowercase`, as in BERT.
        tokenize_chinese_chars: bool. Isolate CJK ideographs.
        unk_token: str or None. None picks `[UNK]`, or `<unk>` when the vocabulary only has that one.
        cls_token: str. BERT's classification token, which starts a warm-started decoder.
        sep_token: str. BERT's separator, which ends a warm-started decoder's output.
        mask_token: str. BERT's mask token.
        pad_token: str or None. None picks `<pad>` when the vocabulary has it (the bert2bert WMT cards pass
            these three), else `[PAD]`.
        bos_token: str or None. None picks `<s>` when the vocabulary has it, else `[CLS]`.
        eos_token: str or None. None picks `</s>` when the vocabulary has it, else `[SEP]`.
        max_length: int or None. As `BertForSeqGenerationTokenizer`.
        add_bos: bool. As `BertForSeqGenerationTokenizer`.
        add_eos: bool. As `BertForSeqGenerationTokenizer`.
        preprocess: None or a release's input fix, as `BertForSeqGenerationTokenizer`.
        name: str or None. The `tf.Module`'s name.

    Raises:
        TokenizerFileError: the vocabulary is empty, not UTF-8 text, or lacks its unknown token.
        ValueError: as `BertForSeqGenerationTokenizer`.
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

    KIND = "wordpiece"
    # The released checkpoints whose tokenizer this is (`from_preset` names).
    presets = types.MappingProxyType(list_presets(tokenizer=KIND))

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
        """Writes `vocab.txt`, `tokenizer_config.json` and `special_tokens_map.json` (HF's layout, which
        `transformers.BertTokenizer` reads too).

        Args:
            directory: str. Created if missing; files there of the same names are replaced.

        Returns:
            The paths written.
        """
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
    def from_module_source(cls, source, **options) -> WordPieceTokenizer:
        """From a TF Hub module's vocabulary (`hub_files.TokenizerSource`: the vocab .txt path), which
        records no casing: uncased when it holds no capital letters outside special tokens."""
        tokens = _read_vocab_file(source.data)
        return cls(source.data, **{"lowercase": is_uncased_vocabulary(tokens), **options})

    @classmethod
    def from_pretrained(cls, directory: str, **overrides) -> WordPieceTokenizer:
        """Loads from a directory holding `vocab.txt` (and optionally HF's `tokenizer_config.json`, whose
        `do_lower_case`, `strip_accents` and special tokens it reads).

        Args:
            directory: str. The directory.
            **overrides: constructor arguments that replace the files' settings.

        Raises:
            FileNotFoundError: the directory has no `vocab.txt`.
        """
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

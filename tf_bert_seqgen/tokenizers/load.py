"""`load_tokenizer`: the tokenizer an HF-layout directory holds."""

from __future__ import annotations

import os

from tf_bert_seqgen.tokenizers.hf_files import SPIECE_MODEL_FILE, VOCAB_FILE, _read_hf_tokenizer_config
from tf_bert_seqgen.tokenizers.sentencepiece import BertForSeqGenerationTokenizer
from tf_bert_seqgen.tokenizers.wordpiece import WordPieceTokenizer


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

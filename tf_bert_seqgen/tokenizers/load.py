"""`load_tokenizer`: the tokenizer a directory holds, or the one of a preset, HF repo or TF Hub module."""

from __future__ import annotations

import os

from tf_bert_seqgen.checkpoints import hub_files
from tf_bert_seqgen.checkpoints.locate import locate
from tf_bert_seqgen.tokenizers.hf_files import SPIECE_MODEL_FILE, VOCAB_FILE, tokenizer_kind
from tf_bert_seqgen.tokenizers.sentencepiece import BertForSeqGenerationTokenizer
from tf_bert_seqgen.tokenizers.wordpiece import WordPieceTokenizer

TOKENIZER_CLASSES = {cls.KIND: cls for cls in (BertForSeqGenerationTokenizer, WordPieceTokenizer)}


def load_tokenizer(name_or_path, **overrides):
    """The tokenizer of an HF-layout directory, a preset name, an HF repo id or a TF Hub handle / module.

    A directory with `spiece.model` gives a `BertForSeqGenerationTokenizer`, one with `vocab.txt` a
    `WordPieceTokenizer` (with both, the saved tokenizer class decides); casing and special tokens come
    from `tokenizer_config.json` when present (`do_lower_case`, ...). Anything else goes through
    `from_preset` of the class its files call for, with the preset's input preparation.

    Args:
        name_or_path: str or path. A directory, a preset name, an HF repo id or a TF Hub handle.
        **overrides: constructor arguments that replace the files' and the preset's settings (e.g.
            `preprocess="gigaword"`, `max_length=128`).

    Returns:
        A `BertForSeqGenerationTokenizer` or a `WordPieceTokenizer`.

    Raises:
        FileNotFoundError: a directory with neither `spiece.model` nor `vocab.txt` (nor a TF Hub module).
        TokenizerFileError: the tokenizer files are unreadable.
    """
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        kind = tokenizer_kind(path)
        if kind is not None:
            return TOKENIZER_CLASSES[kind].from_pretrained(path, **overrides)
        if not os.path.isfile(os.path.join(path, "tfhub_module.pb")):
            raise FileNotFoundError(f"no tokenizer in {path}: expected {SPIECE_MODEL_FILE} (SentencePiece) "
                                    f"or {VOCAB_FILE} (WordPiece)")
    located = locate(path, tokenizer_only=True)
    if located.kind == "tfhub":
        source = hub_files.find_tokenizer(located.directory)
        kind = source.kind if source is not None else BertForSeqGenerationTokenizer.KIND  # it names what is missing
    else:
        kind = tokenizer_kind(located.directory) or BertForSeqGenerationTokenizer.KIND
    return TOKENIZER_CLASSES[kind].from_located(located, **overrides)

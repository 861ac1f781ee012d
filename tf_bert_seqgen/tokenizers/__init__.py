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
  (`unicode.py`: `_RE2_ONLY_*` / `_REFERENCE_ONLY_*`) and corrected, so every single code point gives the reference's
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

Modules: `base` (the shared in-graph machinery, `TF_SERVING_SAFE_OPS`), `sentencepiece`, `wordpiece`,
`unicode` (the reference's character tables), `hf_files` (tokenizer_config.json & co.), `load`
(`load_tokenizer`).
"""

from tf_bert_seqgen.tokenizers.base import PREPROCESS_OPTIONS, TF_SERVING_SAFE_OPS
from tf_bert_seqgen.tokenizers.hf_files import (
    DEFAULT_MAX_LENGTH,
    SPECIAL_TOKENS_MAP_FILE,
    SPIECE_MODEL_FILE,
    TOKENIZER_CONFIG_FILE,
    VOCAB_FILE,
    TokenizerFileError,
)
from tf_bert_seqgen.tokenizers.load import load_tokenizer
from tf_bert_seqgen.tokenizers.sentencepiece import BertForSeqGenerationTokenizer
from tf_bert_seqgen.tokenizers.wordpiece import WordPieceTokenizer

__all__ = ["DEFAULT_MAX_LENGTH", "PREPROCESS_OPTIONS", "SPECIAL_TOKENS_MAP_FILE", "SPIECE_MODEL_FILE",
           "TF_SERVING_SAFE_OPS", "TOKENIZER_CONFIG_FILE", "VOCAB_FILE", "BertForSeqGenerationTokenizer",
           "TokenizerFileError", "WordPieceTokenizer", "load_tokenizer"]

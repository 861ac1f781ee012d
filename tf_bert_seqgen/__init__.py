"""tf_bert_seqgen: BERT-for-sequence-generation (bertseq2seq) models in Keras 3 / TensorFlow."""

import os as _os

# Keras 3 picks its backend at first import; this package is TensorFlow-only.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from tf_bert_seqgen.config import BertForSeqGenerationConfig, ConfigError, EncoderDecoderConfig  # noqa: E402
from tf_bert_seqgen.export import export_saved_model  # noqa: E402
from tf_bert_seqgen.models import (  # noqa: E402
    BertForSeqGenerationDecoder,
    BertForSeqGenerationEncoderModel,
    EncoderDecoder,
)
from tf_bert_seqgen.tokenizers import BertForSeqGenerationTokenizer, WordPieceTokenizer, load_tokenizer  # noqa: E402

__all__ = [
    "BertForSeqGenerationConfig",
    "BertForSeqGenerationDecoder",
    "BertForSeqGenerationEncoderModel",
    "BertForSeqGenerationTokenizer",
    "ConfigError",
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "WordPieceTokenizer",
    "export_saved_model",
    "load_tokenizer",
]
__version__ = "0.1.0"

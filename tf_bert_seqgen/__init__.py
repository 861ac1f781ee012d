"""tf_bert_seqgen: BERT-for-sequence-generation (bertseq2seq) models in Keras 3 / TensorFlow."""

import os as _os

from tf_bert_seqgen import _quiet  # standard library only: it must act before TensorFlow is imported

# Keras 3 picks its backend at first import; this package is TensorFlow-only.
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# The command line keeps TensorFlow's import-time C++ log lines off unless --verbose (see _quiet).
with _quiet.quiet_import():
    from tf_bert_seqgen.config import BertForSeqGenerationConfig, ConfigError, EncoderDecoderConfig
    from tf_bert_seqgen.export import export_saved_model
    from tf_bert_seqgen.generation_config import GenerationConfig
    from tf_bert_seqgen.models import (
        BertForSeqGenerationDecoder,
        BertForSeqGenerationEncoderModel,
        EncoderDecoder,
    )
    from tf_bert_seqgen.tokenizers import BertForSeqGenerationTokenizer, WordPieceTokenizer, load_tokenizer

__all__ = [
    "BertForSeqGenerationConfig",
    "BertForSeqGenerationDecoder",
    "BertForSeqGenerationEncoderModel",
    "BertForSeqGenerationTokenizer",
    "ConfigError",
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "GenerationConfig",
    "WordPieceTokenizer",
    "export_saved_model",
    "load_tokenizer",
]
__version__ = "0.1.0"

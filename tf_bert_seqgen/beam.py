"""The old name of `tf_bert_seqgen.batch_inference` (batch inference on Apache Beam), kept so that pipelines
written against it still run; it warns. Beam search is `tf_bert_seqgen.generation`'s."""

import warnings

from tf_bert_seqgen.batch_inference import *  # noqa: F403

warnings.warn("tf_bert_seqgen.beam is now tf_bert_seqgen.batch_inference", DeprecationWarning, stacklevel=2)

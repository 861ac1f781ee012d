"""Export: one SavedModel that takes raw strings and returns generated strings, ready for TF Serving.

Everything runs in one graph: preset preprocessing and tokenization (SentencePiece / WordPiece ops), the
encoder, the decode loop, detokenization. Loading needs only `tensorflow` and `tensorflow_text`:

    import tensorflow as tf, tensorflow_text  # registers the tokenizer ops
    served = tf.saved_model.load("saved_models/fusion/5")
    served.signatures["serving_default"](text=tf.constant(["..."]))["generated_text"]

Signatures (b = batch, s = source length, m = max_length, h = hidden):
    serving_default        text [b] string -> generated_text [b] string
    generate_with_options  text [b], max_new_tokens [] int32, length_penalty [] float32 -> generated_text [b]
    generate_with_options_per_text
                           text [b], max_new_tokens [b] int32, length_penalty [b] float32 -> generated_text [b]
    generate_ids           input_ids [b, s] int32, attention_mask [b, s] int32 -> output_ids [b, m] int32
    score                  source_text [b], target_text [b] -> log_likelihood [b] float32, num_tokens [b] int32
    encode                 text [b] -> encoder_hidden_states [b, s, h] float32, attention_mask [b, s] int32
The default signature needs no XLA (TF Serving runs without it); `jit_compile=True` exports an XLA variant
whose decode loop is compiled. Calling the module itself, as TF Hub modules are called, is the default
signature: `hub.load(path)(texts)` -> generated strings [b].

An uncased tokenizer's output is cased and spaced as written (`truecase.restore`: casing and spacing taken
from the source, English rules for new material; "if topdown is false , the triple ..." becomes "If topdown
is false, the triple ..."): every text signature returns that text. `truecase=False` at export keeps the
tokenizer's own decoding; a cased tokenizer never needs it.

Concurrent calls of the text signatures (`serving_default`, the module's `__call__`, the two `generate_with_options`)
are batched inside the graph (`batch_timeout_micros`, TF's BatchFunction op): calls of up to `max_batch_size`
texts that arrive while a batch runs, or within the timeout, run as one batch, one batch at a time (rows
with other options in their own decode). A decode step streams the same weights for one row or thirty-two,
so concurrent clients share each pass over them, and calls are served in arrival order instead of
interleaving op by op. A larger call runs directly, in slices.
`batch_timeout_micros=None` leaves this out (a server that batches its own requests, such as TF Serving
with `--enable_batching`, gains little from it).

Defined behaviour for odd input: a text with no source tokens (empty, whitespace) returns "" and never
reaches the model; a batch larger than `max_batch_size` is run in slices of that size inside the graph,
so memory stays that of one slice; invalid UTF-8 is refused with an error that says so. With
`min_added_token_probability` (copy-restricted decoding), a text whose output would add a word the model
is unsure of comes back exactly as written.

Weight storage (`weights_dtype`, `export.weights`): graph-mode exports store Keras' [in, out] kernels
(float32, or float16 cast back once per call); XLA exports the model's [out, in] kernels, or int8 (one scale
per output channel) or bfloat16, whose bytes each decode step streams in forms measured on the exporting CPU
(`tuning`, recorded in the info file). Every export carries its tokenizer's files (`EXPORT_TOKENIZER_DIR`), so
`load_export` can write it again in another storage or mode.

One concept per module: `module` (the signatures), `weights` (what is stored), `rows` (slices, row buckets,
request batching), `warmup` (TF Serving's warm-up file), `files` (the info file, version folders),
`saved_model` (writing and reading back).
"""

from tf_bert_seqgen.export.files import (
    EXPORT_INFO_FILE,
    EXPORT_TOKENIZER_DIR,
    WARMUP_FILE,
    latest_version_dir,
    next_version_dir,
    read_export_info,
)
from tf_bert_seqgen.export.module import GenerationModule, shape_buckets
from tf_bert_seqgen.export.rows import (
    DEFAULT_BATCH_TIMEOUT_MICROS,
    DEFAULT_MAX_BATCH_SIZE,
    bucket_rows,
    row_buckets,
)
from tf_bert_seqgen.export.saved_model import export_saved_model, load_export, load_model
from tf_bert_seqgen.export.warmup import WARMUP_TEXTS
from tf_bert_seqgen.export.weights import WEIGHTS_DTYPES

__all__ = ["DEFAULT_BATCH_TIMEOUT_MICROS", "DEFAULT_MAX_BATCH_SIZE", "EXPORT_INFO_FILE", "EXPORT_TOKENIZER_DIR",
           "WARMUP_FILE", "WARMUP_TEXTS", "WEIGHTS_DTYPES", "GenerationModule", "bucket_rows", "export_saved_model",
           "latest_version_dir", "load_export", "load_model", "next_version_dir", "read_export_info", "row_buckets",
           "shape_buckets"]

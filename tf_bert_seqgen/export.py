"""Export: one SavedModel that takes raw strings and returns generated strings, ready for TF Serving.

Everything runs in one graph: preset preprocessing and tokenization (SentencePiece / WordPiece ops), the
encoder, the decode loop, detokenization. Loading needs only `tensorflow` and `tensorflow_text`:

    import tensorflow as tf, tensorflow_text  # registers the tokenizer ops
    served = tf.saved_model.load("saved_models/fusion/5")
    served.signatures["serving_default"](text=tf.constant(["..."]))["generated_text"]

Signatures (b = batch, s = source length, m = max_length, h = hidden):
    serving_default        text [b] string -> generated_text [b] string
    generate_with_options  text [b], max_new_tokens [] int32, length_penalty [] float32 -> generated_text [b]
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

Concurrent calls of the text signatures (`serving_default`, the module's `__call__`, `generate_with_options`)
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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid

import tensorflow as tf

from tf_bert_seqgen import _compat, generation, layers
from tf_bert_seqgen import truecase as truecasing
from tf_bert_seqgen.cpu import warn_if_bfloat16_is_emulated
from tf_bert_seqgen.io_utils import atomic_directory
from tf_bert_seqgen.losses import token_log_likelihood
from tf_bert_seqgen.models import EncoderDecoder, shift_right

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
EXPORT_INFO_FILE = os.path.join("assets.extra", "tf_bert_seqgen.json")
# Where `training.export_with_tokenizer` writes the tokenizer's files (evaluation and further fine-tuning).
EXPORT_TOKENIZER_DIR = os.path.join("assets.extra", "tokenizer")
WARMUP_TEXTS = ["This is a warm-up request.", ""]
# Rows one model call takes at most: beam 4 over 32 texts of the full-size model holds a 3 GB cache.
DEFAULT_MAX_BATCH_SIZE = 32
# How long a lone call of a text signature waits for others to batch with. Calls that arrive while a
# batch runs are batched whatever the timeout; a generation takes 0.3-3 s, so 1 ms is lost in its noise.
DEFAULT_BATCH_TIMEOUT_MICROS = 1000
# Batches the BatchFunction op holds before a call is refused ("queue is full"): 100 x max_batch_size texts.
_MAX_ENQUEUED_BATCHES = 100


class _Untracked:
    """A plain holder: tf.Module does not follow it when collecting what to save."""

    def __init__(self, model):
        self.model = model


def _stored_swaps(model, jit_compile: bool, stored: tf.DType) -> dict:
    """layer -> (the model variable the export stops reading, the value it stores instead), in saving order.

    A graph-mode export multiplies by Keras' [in, out] kernels (`layers.in_out_kernels`): they replace the
    Dense kernels, so the SavedModel holds each weight once. The XLA variant keeps [out, in]. Stored in
    float16, the word-embedding tables (the LM head) are replaced too.
    """
    swaps = {} if jit_compile else {layer: (layer.kernel, tf.transpose(layer.kernel.value))
                                    for layer in _compat.sublayers(model) if isinstance(layer, layers.Dense)}
    if stored != model.compute_dtype:
        tables = dict.fromkeys(stack.embeddings.word_embeddings for stack in (model.encoder, model.decoder))
        swaps.update({table: (table.embeddings, table.embeddings.value) for table in tables})
    return swaps


def _kept_weights(model, swaps: dict) -> list:
    """The model's weights the export stores as they are (`model_variables`), in saving order."""
    replaced = {id(variable.value) for variable, _ in swaps.values()}
    return [w for w in model.weights if id(w.value) not in replaced]


class GenerationModule(tf.Module):
    """What the SavedModel holds: the model's variables, the tokenizer's resources, the signatures."""

    def __init__(self, model, tokenizer, config: generation.GenerationConfig, max_input_length: int,
                 jit_compile: bool = False, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
                 truecase: bool | None = None, weights_dtype: str | None = None,
                 batch_timeout_micros: int | None = DEFAULT_BATCH_TIMEOUT_MICROS):
        super().__init__(name="tf_bert_seqgen")
        if max_input_length > model.config.encoder.max_position_embeddings:
            raise ValueError(f"max_input_length {max_input_length} exceeds the encoder's max_position_embeddings "
                             f"({model.config.encoder.max_position_embeddings})")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if batch_timeout_micros is not None and batch_timeout_micros < 0:
            raise ValueError(f"batch_timeout_micros must be >= 0 (or None: no batching of calls), "
                             f"got {batch_timeout_micros}")
        stored = tf.as_dtype(weights_dtype or model.compute_dtype)
        if stored != model.compute_dtype and (jit_compile or stored != tf.float16 or model.compute_dtype != "float32"):
            raise ValueError(f"weights_dtype={weights_dtype!r}: only a graph-mode export of a float32 model can "
                             f"store its weights in float16 (this is a {model.compute_dtype} model"
                             + (", exported with jit_compile=True)" if jit_compile else ")"))
        self.max_batch_size = max_batch_size
        self.batch_timeout_micros = batch_timeout_micros
        # The batch op's queue is found by this name in the process: unique, so that two exports loaded
        # side by side never batch each other's calls.
        self._batch_queue = f"tf_bert_seqgen_{uuid.uuid4().hex}"
        # The SavedModel tracks the model's plain tf.Variables, not the Keras model: saving Keras 3
        # variables through the model writes each twice in the TF1 graph that TF Serving and
        # saved_model_cli load, and the copy the functions read is never restored there.
        self._keras = _Untracked(model)
        swaps = _stored_swaps(model, jit_compile, stored)
        self._keras.in_out = {layer: tf.Variable(tf.cast(value, stored), trainable=False)
                              for layer, (_, value) in swaps.items()}
        self.in_out_kernels = list(self._keras.in_out.values())
        self.model_variables = [w.value for w in _kept_weights(model, swaps)]
        self.weights_dtype = stored.name
        self.tokenizer = tokenizer
        self.config = config
        self.max_input_length = max_input_length
        self.jit_compile = jit_compile
        # Generated text cased and spaced from the source (`truecase.restore`); by default when uncased.
        self.truecase = truecasing.needed(tokenizer) if truecase is None else bool(truecase)
        self._pad_id = model.config.encoder.pad_token_id
        generate_fn = generation.build_generate_fn(model, config)

        def decode(ids, mask, dynamic):
            with self._compute_weights():
                return generate_fn(ids, mask, dynamic)

        self._decode = tf.function(decode, jit_compile=jit_compile, autograph=False)
        self._generate_rows_fn = tf.function(self._generate_rows, autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32)])

    def tracing(self):
        """The context every trace of this module's functions runs in (the kernels' layout)."""
        return layers.in_out_kernels(self._keras.in_out)

    def _compute_weights(self):
        """Inside a model call: float16-stored weights cast to float32 once per call, not at every decode
        step (the decode loop reads the cast tensors)."""
        model = self._keras.model
        if self.weights_dtype == model.compute_dtype:
            return contextlib.nullcontext()
        return layers.in_out_kernels({layer: tf.cast(variable, model.compute_dtype)
                                      for layer, variable in self._keras.in_out.items()})

    # -- pieces ---------------------------------------------------------------------------------------

    def _check_utf8(self, text):
        """Invalid UTF-8 is rejected with a message naming the problem, not tokenized into garbage."""
        repaired = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
        return tf.debugging.assert_equal(tf.reduce_all(repaired == text), True,
                                         message="input text is not valid UTF-8")

    def _tokens(self, text):
        """text [b] -> ragged ids [b, (tokens)], truncated to max_input_length."""
        with tf.control_dependencies([self._check_utf8(text)]):
            return self.tokenizer.tokenize(text)[:, :self.max_input_length]

    def _pad(self, tokens):
        """ragged ids [b, (tokens)] -> ids [b, w], mask [b, w]. w is the longest row in graph mode, which runs
        any shape (padding to a bucket cost the encoder up to 2x the work); the XLA variant, which compiles
        per shape, pads to `generation.bucket_length`."""
        width = tokens.bounding_shape(axis=1)
        if self.jit_compile:
            width = generation.bucket_length(width, self.max_input_length)
        shape = tf.stack([tokens.nrows(), tf.cast(width, tf.int64)])
        ids = tokens.to_tensor(default_value=self._pad_id, shape=shape)
        mask = tf.ones_like(tokens).to_tensor(default_value=0, shape=shape)
        return tf.cast(ids, tf.int32), tf.cast(mask, tf.int32)

    def _source(self, text):
        """text [b] -> ids [b, w], mask [b, w]."""
        return self._pad(self._tokens(text))

    def _in_slices(self, fn, inputs, output_specs):
        """fn over rows [i, i + max_batch_size) of each input [b, ...], outputs (`output_specs`: TensorSpecs
        [None, ...]) joined along rows: a large batch costs the memory of one slice (the cache and the
        logits grow with the rows)."""
        total = tf.shape(inputs[0])[0]
        count = (total + self.max_batch_size - 1) // self.max_batch_size

        def body(i, arrays):
            start = i * self.max_batch_size
            outputs = fn(*[x[start:start + self.max_batch_size] for x in inputs])
            return i + 1, [a.write(i, o) for a, o in zip(arrays, outputs, strict=True)]

        arrays = [tf.TensorArray(spec.dtype, size=count, infer_shape=False, element_shape=spec.shape)
                  for spec in output_specs]
        _, arrays = tf.while_loop(lambda i, _: i < count, body, (tf.constant(0), arrays))
        return [a.concat() for a in arrays]

    def _generate_ids(self, ids, mask, dynamic):
        """ids, mask [b, w] -> generated ids [b, m] and unsure [b] (`generation.build_generate_fn`),
        max_batch_size rows per model call."""
        specs = [tf.TensorSpec([None, self.config.max_length], tf.int32), tf.TensorSpec([None], tf.bool)]
        return self._in_slices(lambda i, m: self._decode_rows(i, m, dynamic), [ids, mask], specs)

    def _decode_rows(self, ids, mask, dynamic):
        """ids, mask [r, w] -> generated ids [r, m], unsure [r]. The XLA variant compiles once per shape, and
        batched calls bring any row count: it decodes `bucket_rows` rows, copies of the first row after the
        real ones (they finish when it does, so they never lengthen the loop), and drops the copies."""
        if not self.jit_compile:
            return list(self._decode(ids, mask, dynamic))
        rows = bucket_rows(tf.shape(ids)[0], self.max_batch_size)
        outputs = self._decode(tf.gather(ids, rows), tf.gather(mask, rows), dynamic)
        return [output[:tf.shape(ids)[0]] for output in outputs]

    def _generate_text(self, text, dynamic):
        """text [b] -> generated text [b] (cased and spaced from the source when `truecase`); a text without
        source tokens gets "" and is not decoded."""
        tokens = self._tokens(text)
        has_tokens = tokens.row_lengths() > 0
        kept = tf.where(has_tokens)[:, 0]
        ids, mask = self._pad(tf.gather(tokens, kept))
        output_ids, unsure = self._generate_ids(ids, mask, dynamic)
        generated = self._text_out(output_ids)
        if self.truecase:
            generated = truecasing.restore(tf.gather(text, kept), generated,
                                           strip_accents=getattr(self.tokenizer, "strip_accents", True),
                                           max_source_tokens=self.max_input_length)
        generated = tf.where(unsure, tf.gather(text, kept), generated)  # kept as written, not re-cased
        return tf.tensor_scatter_nd_update(tf.fill(tf.shape(text), ""), kept[:, None], generated)

    def _dynamic(self, max_new_tokens=None, length_penalty=None):
        dynamic = generation.dynamic_options(self.config)
        if max_new_tokens is not None:
            dynamic["max_length"] = tf.clip_by_value(max_new_tokens + 1, 2, self.config.max_length)
        if length_penalty is not None:
            dynamic["length_penalty"] = tf.cast(length_penalty, tf.float32)
        return dynamic

    def _text_out(self, output_ids):
        # Drop the decoder start token; generated text ends at eos and drops pad.
        return self.tokenizer.detokenize(output_ids[:, 1:], skip_special_tokens=True, stop_at_eos=True)

    # -- signatures -----------------------------------------------------------------------------------

    def _generate_rows(self, text, max_new_tokens, length_penalty):
        """text, max_new_tokens, length_penalty [b] -> generated text [b]. Rows that share their options
        decode together: one group for one call, more when the batch op joined calls with other options."""
        key = tf.cast(max_new_tokens, tf.int64) * 2 ** 32 + tf.cast(tf.bitcast(length_penalty, tf.uint32), tf.int64)
        options, group = tf.unique(key)

        def body(i, generated):
            rows = tf.where(group == i)[:, 0]
            first = rows[0]
            texts = self._generate_text(tf.gather(text, rows),
                                        self._dynamic(max_new_tokens[first], length_penalty[first]))
            return i + 1, tf.tensor_scatter_nd_update(generated, rows[:, None], texts)

        _, generated = tf.while_loop(lambda i, _: i < tf.size(options), body, (0, tf.fill(tf.shape(text), "")))
        return generated

    def _batched_calls(self, text, max_new_tokens, length_penalty):
        """text [b], max_new_tokens [], length_penalty [] -> generated text [b]. A call of up to
        max_batch_size texts goes through the batch op, which joins concurrent calls (of either text
        signature) into one batch of their rows, never padded, and runs one batch at a time."""
        rows = [text, tf.fill(tf.shape(text), max_new_tokens), tf.fill(tf.shape(text), length_penalty)]
        generate = self._generate_rows_fn.get_concrete_function()
        if self.batch_timeout_micros is None:
            return generate(*rows)

        def batched():
            return tf.raw_ops.BatchFunction(
                in_tensors=rows, captured_tensors=generate.captured_inputs, f=generate, Tout=[tf.string],
                num_batch_threads=1, max_batch_size=self.max_batch_size, allowed_batch_sizes=[],
                batch_timeout_micros=self.batch_timeout_micros, max_enqueued_batches=_MAX_ENQUEUED_BATCHES,
                shared_name=self._batch_queue, enable_large_batch_splitting=True)[0]

        generated = tf.cond(tf.size(text) <= self.max_batch_size, batched, lambda: generate(*rows))
        generated.set_shape(text.shape)  # the batch op's output has no static shape; signatures show [b]
        return generated

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_text(self, text):
        return {"generated_text": self._batched_calls(text, self.config.max_length - 1, self.config.length_penalty)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def __call__(self, text):
        """`hub.load(path)(texts)` and `hub.KerasLayer(path)`: text [b] -> generated text [b]."""
        return self.serve_text(text)["generated_text"]

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([], tf.int32, name="max_new_tokens"),
                                  tf.TensorSpec([], tf.float32, name="length_penalty")])
    def serve_text_with_options(self, text, max_new_tokens, length_penalty):
        return {"generated_text": self._batched_calls(text, max_new_tokens, length_penalty)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, None], tf.int32, name="input_ids"),
                                  tf.TensorSpec([None, None], tf.int32, name="attention_mask")])
    def serve_ids(self, input_ids, attention_mask):
        return {"output_ids": self._generate_ids(input_ids, attention_mask, self._dynamic())[0]}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="source_text"),
                                  tf.TensorSpec([None], tf.string, name="target_text")])
    def serve_score(self, source_text, target_text):
        """Sum of log p(target token | source, previous tokens) over the target and its eos."""
        ids, mask = self._source(source_text)
        labels, label_mask = self._labels(target_text)
        specs = [tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32)]
        log_likelihood, num_tokens = self._in_slices(self._score, [ids, mask, labels, label_mask], specs)
        return {"log_likelihood": log_likelihood, "num_tokens": num_tokens}

    def _labels(self, text):
        """text [b] -> target ids + eos [b, t] int32 (pad after), mask [b, t] float32."""
        with tf.control_dependencies([self._check_utf8(text)]):
            # Room for the start token: the decoder has max_position_embeddings positions.
            target = self.tokenizer.tokenize(text)[:, :self._keras.model.config.decoder.max_position_embeddings - 1]
        eos = tf.fill([target.nrows(), 1], tf.constant(self.config.eos_token_id, target.dtype))
        labels = tf.concat([target, tf.RaggedTensor.from_tensor(eos)], axis=1)
        mask = tf.cast(tf.ones_like(labels).to_tensor(default_value=0), tf.float32)
        return tf.cast(labels.to_tensor(default_value=self.config.pad_token_id), tf.int32), mask

    def _score(self, ids, mask, labels, label_mask):
        """-> log-likelihood [b] and target length [b] of `labels` given the source `ids`."""
        model = self._keras.model
        decoder_inputs = shift_right(labels, self.config.decoder_start_token_id, self.config.pad_token_id)
        with self._compute_weights():
            logits = model.decoder(decoder_inputs, model.encoder(ids, mask), mask)
        log_likelihood = tf.reduce_sum(token_log_likelihood(labels, logits) * label_mask, axis=1)
        return [log_likelihood, tf.cast(tf.reduce_sum(label_mask, axis=1), tf.int32)]

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_encode(self, text):
        ids, mask = self._source(text)
        model = self._keras.model
        spec = tf.TensorSpec([None, None, model.config.encoder.hidden_size], model.compute_dtype)
        states = self._in_slices(lambda i, m: [self._encode(i, m)], [ids, mask], [spec])[0]
        return {"encoder_hidden_states": states, "attention_mask": mask}

    def _encode(self, ids, mask):
        with self._compute_weights():
            return self._keras.model.encoder(ids, mask)

    def signatures(self):
        """The functions themselves, not their concrete functions: `tf.saved_model.save` traces them in its
        save context, once. A concrete function traced before the save would not be found in that context's
        cache, and saving would trace every function a second time."""
        return {
            "serving_default": self.serve_text,
            "generate_with_options": self.serve_text_with_options,
            "generate_ids": self.serve_ids,
            "score": self.serve_score,
            "encode": self.serve_encode,
        }


def bucket_rows(count, limit):
    """[n] row indices that pad `count` rows (a scalar tensor, >= 1) to the next power of two, at most
    `limit` (or `count` when larger): 0..count-1, then row 0 repeated. An XLA export compiles per row count,
    so a stream of calls of any size compiles for 1, 2, 4, ... rows only."""
    bucket = tf.maximum(generation.bucket_length(count, limit, smallest=1), count)
    return tf.concat([tf.range(count), tf.zeros([bucket - count], tf.int32)], axis=0)


def _warmup_texts(module) -> list[list[str]]:
    """The texts of each warm-up request to the default signature. Graph mode runs any shape: one request
    (with an empty text, which skips the model). The XLA variant compiles once per source width bucket
    (`generation.bucket_length`) and row bucket, 10-15 s each for the full-size model: one more request of
    one text for each width bucket, so that a single text of any length finds its program compiled. Joined
    calls of 2, 4, ... rows compile at their first use (row buckets times width buckets would be dozens)."""
    if not module.jit_compile:
        return [WARMUP_TEXTS]
    limit = module.max_input_length
    words = WARMUP_TEXTS[0].split() * limit  # a word is at least one token: enough words for any bucket

    def tokens(count):
        return int(module.tokenizer.tokenize(tf.constant([" ".join(words[:count])])).row_lengths()[0])

    def bucket(count):
        return generation.bucket_length(max(min(tokens(count), limit), 1), limit)

    covered, requests = {bucket(len(WARMUP_TEXTS[0].split()))}, [WARMUP_TEXTS]
    for count in range(1, len(words) + 1):  # the shortest text of each width bucket
        width = bucket(count)
        if width not in covered:
            covered.add(width)
            requests.append([" ".join(words[:count])])
        if limit in covered:
            return requests
    return requests


def _write_warmup_requests(export_dir: str, module):
    """PredictionLog records TF Serving replays at load, so the first real request finds traced (and, in
    the XLA variant, compiled) functions."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    requests = [("serving_default", {"text": tf.constant(texts)}) for texts in _warmup_texts(module)]
    requests.append(("score", {"source_text": tf.constant(WARMUP_TEXTS[:1]),
                               "target_text": tf.constant(WARMUP_TEXTS[:1])}))
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature))
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def export_saved_model(model, tokenizer, export_dir: str, *, max_input_length: int | None = None,
                       max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, jit_compile: bool = False,
                       overwrite: bool = False, truecase: bool | None = None, weights_dtype: str | None = None,
                       batch_timeout_micros: int | None = DEFAULT_BATCH_TIMEOUT_MICROS,
                       **generation_options) -> str:
    """Writes the SavedModel (with a TF Serving warm-up file) to `export_dir`, atomically.

    The export is written to a temporary sibling, loaded back and run once, and only then moved into
    place; an existing `export_dir` is never replaced unless `overwrite=True`.
    max_batch_size: rows per model call; a larger request is run in slices of this size.
    truecase: text signatures return text cased and spaced from the source (`truecase.restore`); None: when
        the tokenizer lowercases (an uncased vocabulary), which is when it is needed.
    weights_dtype: "float16" stores a float32 model's matrices (Dense kernels, word embeddings) in half the
        bytes; each model call casts them back to float32 once (graph-mode exports). None: the model's dtype.
    batch_timeout_micros: how long a call of a text signature waits for concurrent calls to join its
        batch (calls that arrive while a batch runs join the next one anyway); None: calls are not batched.
    generation_options: as `EncoderDecoder.generate` (num_beams, max_new_tokens, length_penalty, ...).
    """
    config = generation.resolve_config(model.config, **generation_options)
    if config.num_return_sequences != 1:
        raise ValueError("text signatures return one text per input: num_return_sequences must be 1")
    max_input_length = max_input_length or min(tokenizer.max_length or 512,
                                               model.config.encoder.max_position_embeddings)
    warn_if_bfloat16_is_emulated(model.compute_dtype)
    module = GenerationModule(model, tokenizer, config, max_input_length, jit_compile=jit_compile,
                              max_batch_size=max_batch_size, truecase=truecase, weights_dtype=weights_dtype,
                              batch_timeout_micros=batch_timeout_micros)
    with atomic_directory(export_dir, overwrite=overwrite) as tmp:
        with module.tracing():
            tf.saved_model.save(module, tmp, signatures=module.signatures())
        _write_warmup_requests(tmp, module)
        info = {"generation": {k: v for k, v in vars(config).items()}, "max_input_length": max_input_length,
                "max_batch_size": max_batch_size, "batch_timeout_micros": batch_timeout_micros,
                "jit_compile": jit_compile, "truecase": module.truecase,
                "weights_dtype": module.weights_dtype,
                "model": model.config.to_dict(), "tokenizer": type(tokenizer).__name__}
        with open(os.path.join(tmp, EXPORT_INFO_FILE), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
        _verify(tmp)
    return export_dir


def read_export_info(path: str) -> dict:
    """What `export_saved_model` recorded about a SavedModel (its model config, decoding options, storage)."""
    info_path = os.path.join(path, EXPORT_INFO_FILE)
    if not os.path.isfile(info_path):
        raise FileNotFoundError(f"{path} was not exported by tf_bert_seqgen ({EXPORT_INFO_FILE} missing)")
    with open(info_path, encoding="utf-8") as f:
        return json.load(f)


def load_model(export_dir: str):
    """The `EncoderDecoder` an export holds, to fine-tune further or to generate with other options: built
    from the export's config with the weights it stores (float16-stored ones come back as float32, with
    float16's rounding). The export's decoding options are `read_export_info(export_dir)["generation"]`.
    """
    info = read_export_info(export_dir)
    model = EncoderDecoder.from_config(info["model"])
    swaps = _stored_swaps(model, info["jit_compile"], tf.as_dtype(info.get("weights_dtype") or model.compute_dtype))
    kept, loaded = _kept_weights(model, swaps), tf.saved_model.load(export_dir)

    def refuse(what):
        raise ValueError(f"{export_dir}: its stored weights do not fit the model its config describes ({what}); "
                         "was it written by another version of tf_bert_seqgen?")

    if (len(kept), len(swaps)) != (len(loaded.model_variables), len(loaded.in_out_kernels)):
        refuse(f"{len(loaded.model_variables)} + {len(loaded.in_out_kernels)} tensors for {len(kept)} + "
               f"{len(swaps)} weights")
    pairs = list(zip(kept, loaded.model_variables, strict=True)) + [
        (variable, tf.transpose(value) if isinstance(layer, layers.Dense) else value)
        for (layer, (variable, _)), value in zip(swaps.items(), loaded.in_out_kernels, strict=True)]
    mismatched = [w.path for w, value in pairs if tuple(w.shape) != tuple(value.shape)]
    if mismatched:
        refuse(f"shapes differ for {', '.join(mismatched[:3])}")
    for weight, value in pairs:
        weight.assign(tf.cast(value, weight.dtype))
    return model


def _verify(export_dir: str):
    """Loads the export and runs its default signature; a broken export never reaches its final path."""
    loaded = tf.saved_model.load(export_dir)
    out = loaded.signatures["serving_default"](text=tf.constant(WARMUP_TEXTS[:1]))["generated_text"]
    if out.shape != (1,):
        raise RuntimeError(f"exported serving_default returned shape {out.shape}, expected (1,)")


def _versions(base_dir: str) -> list[int]:
    if not os.path.isdir(base_dir):
        return []
    return [int(v) for v in os.listdir(base_dir) if re.fullmatch(r"\d+", v)]


def next_version_dir(base_dir: str) -> str:
    """saved_models/<name>/<N+1>: TF Serving loads the highest numeric version."""
    return os.path.join(base_dir, str(max(_versions(base_dir), default=0) + 1))


def latest_version_dir(base_dir: str) -> str | None:
    """The highest numeric version under `base_dir`, as TF Serving would serve it; None if there is none."""
    versions = _versions(base_dir)
    return os.path.join(base_dir, str(max(versions))) if versions else None

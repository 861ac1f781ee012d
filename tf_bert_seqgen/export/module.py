"""What the SavedModel holds: the stored weights, the tokenizer's resources and the signatures."""

from __future__ import annotations

import uuid

import tensorflow as tf

from tf_bert_seqgen import generation, storage
from tf_bert_seqgen import truecase as truecasing
from tf_bert_seqgen.export import rows as row_policy
from tf_bert_seqgen.export.weights import StoredWeights
from tf_bert_seqgen.losses import token_log_likelihood
from tf_bert_seqgen.models import shift_right


class _Untracked:
    """A plain holder: tf.Module does not follow it when collecting what to save."""

    def __init__(self, value):
        self.value = value


def shape_buckets(jit_compile: bool, max_batch_size: int, max_input_length: int, row_buckets=None,
                  width_buckets=None) -> tuple[list[int], list[int]]:
    """(row buckets, source width buckets) an XLA export pads to, one program per pair: the given ones
    (checked), else powers of two (1, 2, 4, ... rows; 16, 32, ... tokens). Graph mode runs any shape and
    takes none."""
    if not jit_compile:
        if row_buckets or width_buckets:  # what this returns for graph mode, [], passes again
            raise ValueError("row_buckets and width_buckets are for XLA exports (jit_compile), which "
                             "compile one program per shape; graph mode runs any shape")
        return [], []
    rows = row_policy.row_buckets(max_batch_size) if row_buckets is None else row_buckets
    widths = generation.buckets(max_input_length) if width_buckets is None else width_buckets
    return (row_policy.check_buckets(rows, max_batch_size, "row_buckets"),
            row_policy.check_buckets(widths, max_input_length, "width_buckets"))


class GenerationModule(tf.Module):
    """The module `export_saved_model` saves: signatures over one copy of the model whose layers read the
    export's stored weights (`export.weights`)."""

    def __init__(self, stored: StoredWeights, tokenizer, config: generation.GenerationConfig,
                 max_input_length: int, jit_compile: bool = False,
                 max_batch_size: int = row_policy.DEFAULT_MAX_BATCH_SIZE, truecase: bool | None = None,
                 batch_timeout_micros: int | None = row_policy.DEFAULT_BATCH_TIMEOUT_MICROS,
                 row_buckets=None, width_buckets=None):
        super().__init__(name="tf_bert_seqgen")
        model = stored.model
        if max_input_length > model.config.encoder.max_position_embeddings:
            raise ValueError(f"max_input_length {max_input_length} exceeds the encoder's max_position_embeddings "
                             f"({model.config.encoder.max_position_embeddings})")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if batch_timeout_micros is not None and batch_timeout_micros < 0:
            raise ValueError(f"batch_timeout_micros must be >= 0 (or None: no batching of calls), "
                             f"got {batch_timeout_micros}")
        self.max_batch_size = max_batch_size
        self.row_buckets, self.width_buckets = shape_buckets(jit_compile, max_batch_size, max_input_length,
                                                             row_buckets, width_buckets)
        self.batch_timeout_micros = batch_timeout_micros
        # The batch op's queue is found by this name in the process: unique, so that two exports loaded
        # side by side never batch each other's calls.
        self._batch_queue = f"tf_bert_seqgen_{uuid.uuid4().hex}"
        # The SavedModel tracks plain tf.Variables, not the Keras model: saving Keras 3 variables through the
        # model writes each twice in the TF1 graph that TF Serving and saved_model_cli load, and the copy the
        # functions read is never restored there.
        self._stored = _Untracked(stored)
        self.model_variables = [w.value for w in stored.kept]
        self.stored_variables = stored.stored_variables
        self.weights_dtype = stored.dtype
        self.tokenizer = tokenizer
        self.config = config
        self.max_input_length = max_input_length
        self.jit_compile = jit_compile
        # The row buckets whose products take a block form are traced each with its row count, so that they
        # take that count's form; the others share one program of any row count (float32's form).
        beams = config.num_beams if config.num_beams > 1 else config.num_return_sequences
        own = set(stored.row_counts_with_own_forms()) if jit_compile else set()
        self.static_rows = [b for b in self.row_buckets if b * beams in own]
        # Generated text cased and spaced from the source (`truecase.restore`); by default when uncased.
        self.truecase = truecasing.needed(tokenizer) if truecase is None else bool(truecase)
        self._pad_id = model.config.encoder.pad_token_id
        generate_fn = generation.build_generate_fn(model, config)

        def decode(ids, mask, dynamic):  # named: the SavedModel's function is found by it
            return generate_fn(ids, mask, dynamic)

        self._decode = tf.function(decode, jit_compile=jit_compile, autograph=False)
        self._generate_rows_fn = tf.function(self._generate_rows, autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32)])

    @property
    def model(self):
        return self._stored.value.model

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
        per shape, pads to its bucket of `width_buckets`."""
        width = tokens.bounding_shape(axis=1)
        if self.jit_compile:
            width = row_policy.bucket_for(width, self.width_buckets)
        shape = tf.stack([tokens.nrows(), tf.cast(width, tf.int64)])
        ids = tokens.to_tensor(default_value=self._pad_id, shape=shape)
        mask = tf.ones_like(tokens).to_tensor(default_value=0, shape=shape)
        return tf.cast(ids, tf.int32), tf.cast(mask, tf.int32)

    def _source(self, text):
        """text [b] -> ids [b, w], mask [b, w]."""
        return self._pad(self._tokens(text))

    def _in_slices(self, fn, inputs, output_specs):
        return row_policy.in_slices(fn, inputs, output_specs, self.max_batch_size)

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
        rows = row_policy.bucket_rows(tf.shape(ids)[0], self.row_buckets)
        ids, mask, count = tf.gather(ids, rows), tf.gather(mask, rows), tf.shape(ids)[0]
        outputs = self._decode_static(ids, mask, dynamic) if self.static_rows else self._decode(ids, mask, dynamic)
        return [output[:count] for output in outputs]

    def _decode_static(self, ids, mask, dynamic):
        """`_decode` of ids, mask [r, w]: traced with r known for the row buckets in `static_rows` (their own
        forms), with r unknown for the others (the last branch)."""
        found = tf.equal(self.static_rows, tf.shape(ids)[0])
        index = tf.where(tf.reduce_any(found), tf.argmax(tf.cast(found, tf.int32), output_type=tf.int32),
                         len(self.static_rows))

        def branch(rows):
            return lambda: self._decode(tf.ensure_shape(ids, [rows, None]), tf.ensure_shape(mask, [rows, None]),
                                        dynamic)

        return tf.switch_case(index, [*(branch(rows) for rows in self.static_rows), branch(None)])

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
        """text [b], max_new_tokens [], length_penalty [] -> generated text [b] (`_batched_rows`)."""
        return self._batched_rows([text, tf.fill(tf.shape(text), max_new_tokens),
                                   tf.fill(tf.shape(text), length_penalty)])

    def _batched_rows(self, rows):
        """rows = text, max_new_tokens, length_penalty [b] -> generated text [b]; concurrent calls of the text
        signatures joined into one batch (`rows.batched`) unless batch_timeout_micros is None."""
        generate = self._generate_rows_fn.get_concrete_function()
        if self.batch_timeout_micros is None:
            return generate(*rows)
        return row_policy.batched(generate, rows, self.max_batch_size, self.batch_timeout_micros, self._batch_queue)

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_text(self, text):
        return {"generated_text": self._batched_calls(text, self.config.max_new_tokens, self.config.length_penalty)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def __call__(self, text):
        """`hub.load(path)(texts)` and `hub.KerasLayer(path)`: text [b] -> generated text [b]."""
        return self.serve_text(text)["generated_text"]

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([], tf.int32, name="max_new_tokens"),
                                  tf.TensorSpec([], tf.float32, name="length_penalty")])
    def serve_text_with_options(self, text, max_new_tokens, length_penalty):
        return {"generated_text": self._batched_calls(text, max_new_tokens, length_penalty)}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([None], tf.int32, name="max_new_tokens"),
                                  tf.TensorSpec([None], tf.float32, name="length_penalty")])
    def serve_text_with_options_per_text(self, text, max_new_tokens, length_penalty):
        """Options of each text: every input has the batch dimension, so TF Serving's --enable_batching joins
        these requests (it refuses `generate_with_options`' scalars), and a warm-up record of one new token
        compiles the program every text signature runs at that shape (the options are not part of it)."""
        checks = [tf.debugging.assert_equal(tf.shape(option), tf.shape(text), message=f"{name} needs one "
                                            "value per text")
                  for name, option in (("max_new_tokens", max_new_tokens), ("length_penalty", length_penalty))]
        with tf.control_dependencies(checks):
            return {"generated_text": self._batched_rows([tf.identity(text), max_new_tokens, length_penalty])}

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, None], tf.int32, name="input_ids"),
                                  tf.TensorSpec([None, None], tf.int32, name="attention_mask")])
    def serve_ids(self, input_ids, attention_mask):
        if self.jit_compile:  # the text signatures' width buckets, so that it runs their compiled programs
            input_ids, attention_mask = self._pad_width(input_ids, attention_mask)
        return {"output_ids": self._generate_ids(input_ids, attention_mask, self._dynamic())[0]}

    def _pad_width(self, ids, mask):
        """ids, mask [b, s] -> [b, w]: padded (masked) to s's width bucket, results unchanged."""
        width = tf.shape(ids)[1]
        padding = [[0, 0], [0, tf.maximum(row_policy.bucket_for(width, self.width_buckets), width) - width]]
        return tf.pad(ids, padding, constant_values=self._pad_id), tf.pad(mask, padding)

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
            target = self.tokenizer.tokenize(text)[:, :self.model.config.decoder.max_position_embeddings - 1]
        eos = tf.fill([target.nrows(), 1], tf.constant(self.config.eos_token_id, target.dtype))
        labels = tf.concat([target, tf.RaggedTensor.from_tensor(eos)], axis=1)
        mask = tf.cast(tf.ones_like(labels).to_tensor(default_value=0), tf.float32)
        return tf.cast(labels.to_tensor(default_value=self.config.pad_token_id), tf.int32), mask

    def _score(self, ids, mask, labels, label_mask):
        """-> log-likelihood [b] and target length [b] of `labels` given the source `ids`."""
        decoder_inputs = shift_right(labels, self.config.decoder_start_token_id, self.config.pad_token_id)
        with storage.float32_once(self._stored.value.matrices):
            logits = self.model.decoder(decoder_inputs, self.model.encoder(ids, mask), mask)
        log_likelihood = tf.reduce_sum(token_log_likelihood(labels, logits) * label_mask, axis=1)
        return [log_likelihood, tf.cast(tf.reduce_sum(label_mask, axis=1), tf.int32)]

    @tf.function(autograph=False, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve_encode(self, text):
        ids, mask = self._source(text)
        spec = tf.TensorSpec([None, None, self.model.config.encoder.hidden_size], self.model.compute_dtype)
        states = self._in_slices(lambda i, m: [self._encode(i, m)], [ids, mask], [spec])[0]
        return {"encoder_hidden_states": states, "attention_mask": mask}

    def _encode(self, ids, mask):
        with storage.float32_once(self._stored.value.matrices):
            return self.model.encoder(ids, mask)

    def signatures(self):
        """The functions themselves, not their concrete functions: `tf.saved_model.save` traces them in its
        save context, once. A concrete function traced before the save would not be found in that context's
        cache, and saving would trace every function a second time."""
        return {
            "serving_default": self.serve_text,
            "generate_with_options": self.serve_text_with_options,
            "generate_with_options_per_text": self.serve_text_with_options_per_text,
            "generate_ids": self.serve_ids,
            "score": self.serve_score,
            "encode": self.serve_encode,
        }

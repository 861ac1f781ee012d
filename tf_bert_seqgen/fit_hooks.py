"""What `EncoderDecoder` adds to `keras.Model` for `compile` / `fit` / `evaluate`.

A model-level module: it imports only Keras, TensorFlow and the losses, so that `models` never reaches
the training package (training imports models, never the reverse).
"""

from __future__ import annotations

import re
import warnings

import keras
import tensorflow as tf

from tf_bert_seqgen import _compat
from tf_bert_seqgen.losses import SequenceCrossEntropy


class TrainingHooks:
    """What `EncoderDecoder` adds to `keras.Model` for `compile` / `fit` / `evaluate` (a mixin).

    - `compile(optimizer)` defaults the loss to `SequenceCrossEntropy` with the model's pad id
      (`label_smoothing=` smooths it); a model saved compiled (`.keras`) loads compiled.
    - `jit_compile="auto"` means XLA (Keras' "auto" never picks it on CPU, where it halves the step time
      of these models), except under a distribution strategy, where Keras' rule applies. A step that does
      not lower to XLA falls back to graph mode on the first batch, with a warning saying why; that batch
      is then trained on in graph mode, so no data is skipped.
    - Batches may be bare feature dicts: the target is then their "labels".
    - MultiWorkerMirroredStrategy under Keras 3 (TF backend): Keras all-reduces a first batch only to learn
      input shapes (it cannot reduce a dict, and batches of different lengths differ between workers), and
      reduces the step's logs along axis 0, which scalars lack (tensorflow/tensorflow#72388). The model
      builds from int32 [batch, length] specs instead, and its logs are given a length-1 axis there.
    - `fit` builds the model, optimizer and metrics from those specs before the first trace of the step,
      with or without a strategy. Keras defers that to the trace when there is no strategy, and a trace
      that creates variables makes `tf.function` trace the step a second time: twice the time to the
      first batch.
    """

    def compile(self, optimizer="adam", loss=None, label_smoothing: float = 0.0, jit_compile="auto", **kwargs):
        if loss is None:
            loss = SequenceCrossEntropy(self.config.decoder.pad_token_id, label_smoothing)
        self._xla_unverified = (jit_compile == "auto" and not kwargs.get("run_eagerly")
                                and _compat.distribute_strategy_of(self) is None)
        if self._xla_unverified:
            jit_compile = True
        super().compile(optimizer=optimizer, loss=loss, jit_compile=jit_compile, **kwargs)

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        if getattr(self, "_xla_unverified", False) and self.jit_compile:
            self.train_function = self._xla_or_graph(self.train_function)
        return self.train_function

    def _xla_or_graph(self, xla_function):
        """Keras' XLA train function, tried on the first call: if the step does not lower, a warning and
        Keras' graph-mode function. The first batches are read here and replayed (an XLA compile error
        comes after the step has read its input), in an iterator of the same element spec, so that the
        trace is the one later steps reuse."""

        def first_call(iterator):
            if not isinstance(iterator, tf.data.Iterator):  # e.g. a distributed iterator: no replay
                return xla_function(iterator)
            batches = _take(iterator, self.steps_per_execution)
            if not batches:
                raise StopIteration
            try:
                logs = xla_function(_replay(batches, iterator.element_spec))
                self.train_function = xla_function
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
                reason = _xla_failure(error)
                if reason is None:
                    raise
                warnings.warn(f"the training step does not compile with XLA ({reason}); training in graph "
                              "mode instead, which is slower (compile(jit_compile=False) skips the attempt)",
                              stacklevel=2)
                self.jit_compile = False
                super(TrainingHooks, self).make_train_function(force=True)
                logs = self.train_function(_replay(batches, iterator.element_spec))
            self._xla_unverified = False
            return logs

        return first_call

    def compile_from_config(self, config):
        """Re-compiles a model that `keras.saving.load_model` loads. Keras' own version skips a model whose
        `compile` is overridden; the saved arguments are Keras' (the loss object included), so `compile`
        takes them as they are."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)  # so that the saved optimizer state loads into it

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is None and isinstance(x, dict):
            y = x.get("labels")
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):  # a Keras hook: _compat.OVERRIDDEN_HOOKS
        ids = keras.KerasTensor((None, None), "int32")
        with self.distribute_strategy.scope():
            _compat.symbolic_build(self, ({"input_ids": ids, "attention_mask": ids, "labels": ids}, ids))

    def train_step(self, data):
        return self._logs_for_reduction(super().train_step(data))

    def test_step(self, data):
        return self._logs_for_reduction(super().test_step(data))

    def _logs_for_reduction(self, logs):
        if not _compat.is_multi_worker(self.distribute_strategy):
            return logs
        return {k: tf.reshape(v, [-1]) if tf.is_tensor(v) and v.shape.rank == 0 else v for k, v in logs.items()}


def _take(iterator, count: int) -> list:
    """Up to `count` elements of a tf.data iterator (fewer at its end)."""
    batches = []
    for _ in range(count):
        element = iterator.get_next_as_optional()
        if not element.has_value():
            break
        batches.append(element.get_value())
    return batches


def _replay(batches, element_spec) -> tf.data.Iterator:
    """An iterator over `batches` whose element spec is `element_spec` (shapes relaxed to it, so that a
    tf.function traced on it is reused for the iterator they came from)."""

    def relax(*element):
        element = element[0] if len(element) == 1 else element
        return tf.nest.map_structure(lambda t, spec: tf.compat.v1.placeholder_with_default(t, spec.shape),
                                     element, element_spec)

    dataset = tf.data.Dataset.from_tensors(batches[0])
    for batch in batches[1:]:  # batches may differ in length
        dataset = dataset.concatenate(tf.data.Dataset.from_tensors(batch))
    return iter(dataset.map(relax))


def _xla_failure(error) -> str | None:
    """Why XLA could not compile the step (its first line naming the op), or None for any other error."""
    message = str(error)
    found = re.search(r"Detected unsupported operations[^\n]*?: (\w+)", message)
    if found:
        return f"unsupported operation {found.group(1)}"
    if "XLA" in message or "tf2xla" in message:
        return next(line.strip() for line in message.splitlines() if "XLA" in line or "tf2xla" in line)[:200]
    return None

"""What `EncoderDecoder` adds to `keras.Model` for `compile` / `fit` / `evaluate`.

A model-level module: it imports only Keras, TensorFlow and the losses, so that `models` never reaches
the training package (training imports models, never the reverse).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_bert_seqgen import _compat
from tf_bert_seqgen.losses import SequenceCrossEntropy


class TrainingHooks:
    """What `EncoderDecoder` adds to `keras.Model` for `compile` / `fit` / `evaluate` (a mixin).

    - `compile(optimizer)` defaults the loss to `SequenceCrossEntropy` with the model's pad id
      (`label_smoothing=` smooths it); a model saved compiled (`.keras`) loads compiled.
    - Batches may be bare feature dicts: the target is then their "labels".
    - MultiWorkerMirroredStrategy under Keras 3 (TF backend): Keras all-reduces a first batch only to learn
      input shapes (it cannot reduce a dict, and batches of different lengths differ between workers), and
      reduces the step's logs along axis 0, which scalars lack (tensorflow/tensorflow#72388). The model
      builds from int32 [batch, length] specs instead, and its logs are given a length-1 axis there.
    """

    def compile(self, optimizer="adam", loss=None, label_smoothing: float = 0.0, **kwargs):
        if loss is None:
            loss = SequenceCrossEntropy(self.config.decoder.pad_token_id, label_smoothing)
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

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
        if _compat.distribute_strategy_of(self) is None:
            return
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

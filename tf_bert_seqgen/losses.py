"""Token-level training loss for sequence-to-sequence models (functions and the Keras loss)."""

from __future__ import annotations

import keras
import tensorflow as tf


def token_log_likelihood(labels, logits):
    """log p(labels[b, t]) under logits [b, t, v] -> [b, t] float32; every label must be a vocabulary id."""
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    return tf.gather(log_probs, tf.cast(labels, tf.int32), batch_dims=2)


def sequence_cross_entropy(labels, logits, pad_token_id: int = 0, label_smoothing: float = 0.0):
    """Mean cross-entropy over target tokens that are not padding.

    labels [b, t] int (pad_token_id or -100 mark ignored positions, as in `transformers`);
    logits [b, t, v]. Returns a scalar. Label smoothing spreads `label_smoothing` of the mass uniformly
    over the vocabulary, as Keras' CategoricalCrossentropy does.
    """
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    valid = tf.logical_and(labels != pad_token_id, labels != -100)
    nll = -token_log_likelihood(tf.where(valid, labels, 0), logits)
    if label_smoothing:
        uniform = tf.reduce_mean(tf.nn.log_softmax(logits, axis=-1), axis=-1)
        nll = (1.0 - label_smoothing) * nll - label_smoothing * uniform
    weights = tf.cast(valid, tf.float32)
    return tf.reduce_sum(nll * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


@keras.saving.register_keras_serializable(package="tf_bert_seqgen")
class SequenceCrossEntropy(keras.losses.Loss):
    """Keras loss around `sequence_cross_entropy`: y_true labels [b, t], y_pred logits [b, t, v] -> scalar,
    the mean over target tokens that are not pad (or -100). `EncoderDecoder.compile()` without a loss
    uses it.

    Args:
        pad_token_id: int. Label id that is not scored (nor is -100).
        label_smoothing: float. Share of the target probability spread over the vocabulary.
        name: str. The loss's name.
    """

    def __init__(self, pad_token_id: int = 0, label_smoothing: float = 0.0, name="sequence_cross_entropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_token_id = int(pad_token_id)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        loss = sequence_cross_entropy(y_true, y_pred, self.pad_token_id, self.label_smoothing)
        # Replicas' gradients are summed, so Keras divides a reduced loss by their number; it leaves a
        # scalar returned by `call` (already a token mean) alone, so that is done here.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return loss / replicas if replicas > 1 else loss

    def get_config(self):
        return {**super().get_config(), "pad_token_id": self.pad_token_id,
                "label_smoothing": self.label_smoothing}

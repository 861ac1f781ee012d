"""Token-level training loss for sequence-to-sequence models."""

from __future__ import annotations

import tensorflow as tf


def sequence_cross_entropy(labels, logits, pad_token_id: int = 0, label_smoothing: float = 0.0):
    """Mean cross-entropy over target tokens that are not padding.

    labels [b, t] int (pad_token_id or -100 mark ignored positions, as in `transformers`);
    logits [b, t, v]. Returns a scalar. Label smoothing spreads `label_smoothing` of the mass uniformly
    over the vocabulary, as Keras' CategoricalCrossentropy does.
    """
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    valid = tf.logical_and(labels != pad_token_id, labels != -100)
    safe_labels = tf.where(valid, labels, 0)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    nll = -tf.gather(log_probs, safe_labels, batch_dims=2)
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * tf.reduce_mean(log_probs, axis=-1)
    weights = tf.cast(valid, tf.float32)
    return tf.reduce_sum(nll * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)

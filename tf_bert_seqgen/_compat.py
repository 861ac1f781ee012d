"""Every private TensorFlow, tf-text and Keras access of the package, one function each.

These names are not public API and may move in an upgrade; tests/test_compat.py calls each function and
names the private API that went missing. Code elsewhere calls these functions, never the private names.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def in_xla_context() -> bool:
    """True while tracing inside an XLA cluster (`jit_compile=True`): `tf.__internal__`."""
    return tf.__internal__.get_enclosing_xla_context() is not None


def sentencepiece_ops():
    """tf-text's generated SentencePiece op wrappers (its public tokenizer hides the model-resource ops
    we build on): `tensorflow_text.python.ops.sentencepiece_tokenizer.gen_sentencepiece_tokenizer`."""
    from tensorflow_text.python.ops.sentencepiece_tokenizer import gen_sentencepiece_tokenizer

    return gen_sentencepiece_tokenizer


def distribute_strategy_of(model: keras.Model):
    """The strategy a Keras model was created under, or None without one: `Model._distribute_strategy`
    (the public `distribute_strategy` falls back to the default strategy)."""
    return model._distribute_strategy


def is_multi_worker(strategy) -> bool:
    """A MultiWorkerMirroredStrategy with more than one worker: `extended._in_multi_worker_mode()`."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def symbolic_build(model: keras.Model, data_batch) -> None:
    """Builds a Keras model (and its metrics) from a symbolic batch: `Model._symbolic_build`."""
    model._symbolic_build(data_batch=data_batch)


def all_reduce_sum_gradients(optimizer_super, grads_and_vars):
    """Keras' TF-backend all-reduce of the replicas' gradients: `Optimizer._all_reduce_sum_gradients`.
    `optimizer_super` is `super()` inside an override of that method."""
    return optimizer_super._all_reduce_sum_gradients(grads_and_vars)


# Private Keras methods the package overrides (Keras calls them; an upgrade that renames one would
# silently skip our override, so the test checks they still exist).
OVERRIDDEN_HOOKS = (
    (keras.optimizers.Optimizer, "_all_reduce_sum_gradients"),  # training/optim.py: clip after the sum
    (keras.Model, "_maybe_symbolic_build"),  # fit_hooks.py: build from int32 specs before the first trace
)


def missing_overridden_hooks() -> list[str]:
    """The `OVERRIDDEN_HOOKS` this Keras no longer has, as "Class.method"."""
    return [f"{cls.__name__}.{name}" for cls, name in OVERRIDDEN_HOOKS if not callable(getattr(cls, name, None))]


def sublayers(layer) -> list:
    """Every layer inside `layer`, recursively, each once: Keras' `Layer._flatten_layers`."""
    return list(layer._flatten_layers(include_self=False, recursive=True))

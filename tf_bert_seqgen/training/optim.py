"""Learning-rate schedule and optimizers of the paper's recipe (tensor2tensor's Adam)."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tf_bert_seqgen import _compat

# Adam as tensor2tensor's transformer hparams, which the paper's models were trained with.
ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.997
ADAM_EPSILON = 1e-9


@keras.saving.register_keras_serializable(package="tf_bert_seqgen")
class WarmupRsqrtDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then inverse square-root decay, normalised by the hidden size.

    Rothe et al. (2020) fine-tune with Adam at a learning rate of 0.05 with a linear warm-up (40k steps),
    normalisation by the square root of the hidden size and a square-root decay: tensor2tensor's
    `learning_rate_schedule = "constant*linear_warmup*rsqrt_decay*rsqrt_hidden_size"`
    (tensor2tensor/utils/learning_rate.py, `learning_rate_factor`), i.e.

        lr(step) = scale * min(1, step / warmup) * max(step, warmup) ** -0.5 * hidden ** -0.5
                 = scale * hidden ** -0.5 * min(step * warmup ** -1.5, step ** -0.5)

    which is also Vaswani et al.'s (2017) eq. 3 with scale = 1. The peak, at step = warmup, is
    scale / sqrt(hidden * warmup). `step` is 1-based here (Keras passes `optimizer.iterations`, 0 on the
    first update, and we add one) so the first update is not a zero-size step.

    Args:
        scale: float. The paper's "learning rate" (0.05).
        hidden_size: int. The model's hidden size.
        warmup_steps: int. Linear warm-up, in updates.

    Raises:
        ValueError: `scale` not positive, or `hidden_size` / `warmup_steps` below 1.
    """

    def __init__(self, scale: float = 0.05, hidden_size: int = 1024, warmup_steps: int = 40000):
        if warmup_steps < 1 or hidden_size < 1 or scale <= 0:
            raise ValueError(f"need scale > 0, hidden_size >= 1, warmup_steps >= 1; got {scale}, "
                             f"{hidden_size}, {warmup_steps}")
        self.scale = float(scale)
        self.hidden_size = int(hidden_size)
        self.warmup_steps = int(warmup_steps)

    @property
    def peak(self) -> float:
        """The largest learning rate, reached at step == warmup_steps."""
        return self.scale / math.sqrt(self.hidden_size * self.warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + 1.0
        warmup = float(self.warmup_steps)
        return (self.scale * self.hidden_size ** -0.5) * tf.minimum(step * warmup ** -1.5, tf.math.rsqrt(step))

    def get_config(self):
        return {"scale": self.scale, "hidden_size": self.hidden_size, "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="tf_bert_seqgen")
class PerUpdateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` at the count of updates under gradient accumulation.

    With `gradient_accumulation_steps=n`, Keras calls a schedule with the micro-batch count (n per update;
    its docs say so), while warm-up steps are counted in updates; this divides by n, so that
    accumulating n batches of b follows the schedule as one batch of n * b does.

    Args:
        schedule: a Keras `LearningRateSchedule` (or its serialized dict), counted in updates.
        accumulation_steps: int. Batches per update.
    """

    def __init__(self, schedule, accumulation_steps: int):
        self.schedule = keras.optimizers.schedules.deserialize(schedule) if isinstance(schedule, dict) else schedule
        self.accumulation_steps = int(accumulation_steps)

    def __call__(self, step):
        return self.schedule(step // self.accumulation_steps)

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule),
                "accumulation_steps": self.accumulation_steps}


class _ClipSummedGradients:
    """Gradient clipping on the gradient summed over replicas, for a Keras optimizer (a mixin).

    Keras clips in `apply`, before its TF backend sums the replicas' gradients, so under a distribution
    strategy each replica's share would be clipped instead of the gradient. Clipping here, after the
    all-reduce, gives the same update for 1 or N replicas (and is plain clipping without a strategy).
    """

    def __init__(self, *args, clipnorm=None, global_clipnorm=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.summed_clipnorm = clipnorm
        self.summed_global_clipnorm = global_clipnorm

    def _all_reduce_sum_gradients(self, grads_and_vars):  # a Keras hook: _compat.OVERRIDDEN_HOOKS
        pairs = list(_compat.all_reduce_sum_gradients(super(), grads_and_vars))
        grads = [g for g, _ in pairs]
        if self.summed_clipnorm or self.summed_global_clipnorm:
            # Sparse (embedding) gradients may repeat a row, once per replica or per token: the norm is
            # that of the dense sum.
            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        if self.summed_clipnorm:
            grads = [None if g is None else tf.clip_by_norm(g, self.summed_clipnorm) for g in grads]
        if self.summed_global_clipnorm:
            present = [g for g in grads if g is not None]
            clipped = iter(tf.clip_by_global_norm(present, self.summed_global_clipnorm)[0])
            grads = [None if g is None else next(clipped) for g in grads]
        return [(g, v) for g, (_, v) in zip(grads, pairs, strict=True)]

    def get_config(self):
        return {**super().get_config(), "clipnorm": self.summed_clipnorm,
                "global_clipnorm": self.summed_global_clipnorm}


@keras.saving.register_keras_serializable(package="tf_bert_seqgen")
class Adam(_ClipSummedGradients, keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose clipping applies to the replicas' summed gradient."""


@keras.saving.register_keras_serializable(package="tf_bert_seqgen")
class AdamW(_ClipSummedGradients, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` whose clipping applies to the replicas' summed gradient."""


def make_optimizer(learning_rate: float = 0.05, hidden_size: int = 1024, warmup_steps: int = 40000,
                   optimizer: str = "adam", weight_decay: float = 0.01, clipnorm: float | None = 1.0,
                   global_clipnorm: float | None = None, epsilon: float = ADAM_EPSILON, accumulate: int = 1):
    """Adam (the paper; tensor2tensor's betas and epsilon) or AdamW over
    `WarmupRsqrtDecay(learning_rate, hidden_size, warmup_steps)`.

    Args:
        learning_rate: float. The schedule's scale.
        hidden_size: int. The model's hidden size (the schedule normalises by it).
        warmup_steps: int. Linear warm-up, in updates.
        optimizer: str. `"adam"` or `"adamw"`.
        weight_decay: float. AdamW's.
        clipnorm: float or None. Clip each gradient tensor to this norm.
        global_clipnorm: float or None. Clip all of them together (BERT's 1.0). Both clippings act on the
            gradient summed over replicas, so 1 or N replicas give the same update.
        epsilon: float. Adam's epsilon; tensor2tensor's 1e-9 by default, BERT's pre-training used 1e-6.
        accumulate: int. Update every this many batches with the mean of their gradients (Keras'
            `gradient_accumulation_steps`): n batches of b make the update one batch of n * b makes when
            every batch holds as many target tokens (the loss is a mean over tokens). `iterations` and the
            schedule count updates; clipping and weight decay act on the mean, once per update.

    Returns:
        An `Adam` or `AdamW` (Keras optimizers, registered for `.keras` saving).

    Raises:
        ValueError: an unknown `optimizer`, or `accumulate` not an integer >= 1.
    """
    if not isinstance(accumulate, int) or isinstance(accumulate, bool) or accumulate < 1:
        raise ValueError(f"accumulate must be an integer >= 1 (batches per update), got {accumulate!r}")
    schedule = WarmupRsqrtDecay(learning_rate, hidden_size, warmup_steps)
    if accumulate > 1:
        schedule = PerUpdateSchedule(schedule, accumulate)
    common = dict(learning_rate=schedule, beta_1=ADAM_BETA_1, beta_2=ADAM_BETA_2, epsilon=epsilon,
                  clipnorm=clipnorm, global_clipnorm=global_clipnorm,
                  gradient_accumulation_steps=accumulate if accumulate > 1 else None)
    if optimizer == "adam":
        return Adam(**common)
    if optimizer == "adamw":
        return AdamW(weight_decay=weight_decay, **common)
    raise ValueError(f"optimizer must be 'adam' or 'adamw', got {optimizer!r}")

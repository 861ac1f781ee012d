"""`finetune`: the whole run (strategy, checkpoints with resume, TensorBoard, dev metrics, save + export)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import warnings

import keras
import numpy as np
import tensorflow as tf

from tf_bert_seqgen.export import export_saved_model, next_version_dir
from tf_bert_seqgen.training.data import make_dataset
from tf_bert_seqgen.training.evaluate import GenerationEvaluation, evaluate_generation, float32_model
from tf_bert_seqgen.training.init_specs import build_model
from tf_bert_seqgen.training.optim import ADAM_EPSILON, make_optimizer

# Strategies whose replicas synchronise through merge_call (see `finetune` with accumulate > 1).
MERGE_CALL_STRATEGIES = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)


@dataclasses.dataclass
class TrainingConfig:
    """Hyper-parameters of `finetune`. Defaults suit a small model on a small set; the paper used
    learning_rate 0.05, warmup 40k steps, batch 256 (BERT-large sized, TPU).

    Attributes:
        steps: int. Optimizer updates.
        batch_size: int. Examples per batch, all replicas together; an update sees
            `accumulate * batch_size`.
        accumulate: int. Batches whose mean gradient makes one update (`make_optimizer`).
        xla: bool. The training step under XLA where it compiles (`TrainingHooks`), else graph mode.
        learning_rate: float. The schedule's scale; peak = scale / sqrt(hidden * warmup).
        warmup_steps: int. Linear warm-up, in updates.
        optimizer: str. `"adam"` or `"adamw"`.
        weight_decay: float. AdamW only.
        clipnorm: float or None. Clip each gradient tensor's norm.
        global_clipnorm: float or None. Clip the norm of all gradients together.
        adam_epsilon: float. tensor2tensor's 1e-9 by default (BERT's is 1e-6).
        label_smoothing: float. Of the sequence cross-entropy.
        freeze_word_embeddings: bool. Keep the word embeddings (and the LM head tied to them) as
            pre-trained: with a large vocabulary and a small set, updates push the rows of words absent
            from the targets away from the decoder's states, and the model can no longer copy them.
        max_source_length: int. Source truncation.
        max_target_length: int. Target truncation, eos included.
        steps_per_checkpoint: int. Updates per checkpoint, which is also a Keras "epoch" (dev loss, a
            progress line).
        eval_every: int. Dev generation metrics every this many checkpoints (0: at the end only).
        eval_batch_size: int. Texts per generation batch in the dev evaluation.
        mixed_precision: str or None. `"mixed_float16"` or `"mixed_bfloat16"` (Keras' policies).
        seed: int. Weights' initialisation, dropout and data order.
        verbose: int or str. Keras `fit`'s verbosity.
        generation: dict. Decoding for the dev metrics and the export (`generate`'s options).

    Raises:
        ValueError: `steps`, `batch_size`, `accumulate` or `steps_per_checkpoint` is not an integer >= 1.
    """

    steps: int = 1000  # optimizer updates
    batch_size: int = 32  # examples per batch (all replicas); an update sees accumulate * batch_size
    accumulate: int = 1  # batches whose mean gradient makes one update (see make_optimizer)
    xla: bool = True  # the training step under XLA where it compiles (see TrainingHooks), else graph mode
    learning_rate: float = 0.05  # the schedule's scale; peak = scale / sqrt(hidden * warmup)
    warmup_steps: int = 100
    optimizer: str = "adam"  # or "adamw"
    weight_decay: float = 0.01  # AdamW only
    clipnorm: float | None = 1.0
    global_clipnorm: float | None = None
    adam_epsilon: float = ADAM_EPSILON
    label_smoothing: float = 0.0
    # Keep the word embeddings (and the LM head tied to them) as pre-trained: with a large vocabulary and
    # a small set, every update pushes the rows of the words absent from the targets away from the
    # decoder's states, so the fine-tuned model can no longer copy such words from the source.
    freeze_word_embeddings: bool = False
    max_source_length: int = 128
    max_target_length: int = 128
    steps_per_checkpoint: int = 100  # also a Keras "epoch": checkpoint, dev loss, progress-bar line
    eval_every: int = 1  # dev generation metrics every this many checkpoints (0: at the end only)
    eval_batch_size: int = 32
    mixed_precision: str | None = None  # "mixed_float16" / "mixed_bfloat16"
    seed: int = 0
    verbose: int | str = "auto"
    generation: dict = dataclasses.field(default_factory=lambda: {"num_beams": 1, "max_new_tokens": 64})

    def __post_init__(self):
        for name in ("steps", "batch_size", "accumulate", "steps_per_checkpoint"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def is_chief(strategy=None) -> bool:
    """True except on the non-chief workers of a multi-worker strategy (only the chief writes outputs)."""
    resolver = getattr(strategy or tf.distribute.get_strategy(), "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def worker_dir(out_dir: str, strategy=None) -> str:
    """`out_dir` on the chief; `out_dir/worker_<id>` on other workers, so they never overwrite its files."""
    if is_chief(strategy):
        return out_dir
    return os.path.join(out_dir, f"worker_{strategy.cluster_resolver.task_id}")


def _restored_step(backup_dir: str, steps_per_epoch: int) -> int:
    """The batch BackupAndRestore will resume from (it restarts at an epoch boundary)."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["epoch"]) * steps_per_epoch


def finetune(init, tokenizer, train_data, out_dir: str, config: TrainingConfig | None = None, eval_data=None,
             strategy=None, export: bool = True, callbacks=()):
    """Fine-tunes, checkpointing as it goes; resumes from `out_dir` if a previous run was interrupted.

    Args:
        init: str or callable. An init spec (`share:<bert dir>`, `bert:<dir>`, `bert2rnd:<dir>`,
            `random[:<dir>]`, `model:<dir>`; `parse_init`) or a function returning a fresh `EncoderDecoder`,
            called inside `strategy.scope()`.
        tokenizer: the model's tokenizer (tokenizes the data in the input pipeline; saved with the model).
        train_data: (source, target) pairs or a `.tsv` / `.jsonl` path.
        out_dir: str. The run directory: `backup/` (resume state), `logs/` (TensorBoard), `history.json`,
            `model/` (`save_pretrained`), `export/<version>/` (`export_saved_model`), `metrics.json`.
        config: `TrainingConfig` or None (its defaults).
        eval_data: dev pairs or path, or None: the dev loss at every checkpoint and generation metrics
            (`val_sari`, ...) every `config.eval_every` checkpoints.
        strategy: a `tf.distribute` strategy (Mirrored, MultiWorkerMirrored, ...); None: the default one.
        export: bool. Write the SavedModel at the end.
        callbacks: extra Keras callbacks.

    Returns:
        (model, history): the trained model and {metric: [value per checkpoint]} plus "step".

    Raises:
        ValueError: `accumulate > 1` under a Mirrored strategy (Keras cannot synchronise replicas there),
            or data or an init spec that `make_dataset` / `build_model` refuse.
    """
    config = config or TrainingConfig()
    strategy = strategy or tf.distribute.get_strategy()
    model = _compiled_model(init, tokenizer, config, strategy)  # refuses a bad set-up before writing anything
    chief = is_chief(strategy)
    out_dir = worker_dir(out_dir, strategy)
    os.makedirs(out_dir, exist_ok=True)

    updates_per_epoch = min(config.steps_per_checkpoint, config.steps)
    epochs = math.ceil(config.steps / updates_per_epoch)
    steps_per_epoch = updates_per_epoch * config.accumulate  # Keras counts batches
    backup_dir = os.path.join(out_dir, "backup")
    dataset_options = dict(max_source_length=config.max_source_length, max_target_length=config.max_target_length,
                           eos_token_id=model.config.decoder.eos_token_id,
                           pad_token_id=model.config.decoder.pad_token_id,
                           pad_to_bucket=bool(model.jit_compile))  # few shapes for XLA to compile
    train = make_dataset(train_data, tokenizer, config.batch_size, shuffle=True, repeat=True, seed=config.seed,
                         **dataset_options)
    # The shuffled stream is a function of the seed: skipping the batches trained on makes a resumed run
    # see exactly the batches an uninterrupted one would, none twice.
    train = train.skip(_restored_step(backup_dir, steps_per_epoch))
    validation = validation_steps = None
    all_callbacks = [keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
                     StopAtStep(config.steps)]
    if eval_data is not None:
        validation = make_dataset(eval_data, tokenizer, config.eval_batch_size, **dataset_options)
        # Bucketing makes the batch count data-dependent; Keras wants it to evaluate without warnings.
        validation_steps = int(validation.reduce(0, lambda count, _: count + 1))
        if chief:
            every = config.eval_every or epochs
            all_callbacks.append(GenerationEvaluation(tokenizer, eval_data, every, config.eval_batch_size,
                                                      **config.generation))
    rows = HistoryRows(os.path.join(out_dir, "history.json"))
    all_callbacks.append(rows)
    if chief and importlib.util.find_spec("tensorboard") is not None:
        all_callbacks.append(keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), update_freq="epoch"))
    elif chief:
        warnings.warn("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)", stacklevel=2)
    all_callbacks.extend(callbacks)
    model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, validation_data=validation,
              validation_steps=validation_steps, callbacks=all_callbacks, verbose=config.verbose if chief else 0)
    history = rows.columns()
    last_row = rows.rows[-1] if rows.rows and rows.rows[-1]["step"] == config.steps else {}
    _finish(model, tokenizer, out_dir, config, export, eval_data, chief, last_row)
    return model, history


def _compiled_model(init, tokenizer, config: TrainingConfig, strategy):
    """The model `finetune` trains (`init`: a spec or a function), built and compiled inside `strategy`."""
    if config.accumulate > 1 and isinstance(strategy, MERGE_CALL_STRATEGIES):
        # Keras updates every n-th batch inside a tf.cond; these strategies synchronise replicas with a
        # merge_call, which TensorFlow refuses inside control flow (except under XLA on GPUs).
        raise ValueError(f"accumulate > 1 does not run under {type(strategy).__name__} (Keras' gradient "
                         "accumulation cannot synchronise replicas there): use no strategy or OneDeviceStrategy, "
                         "or a larger batch_size across the replicas")
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(init, tokenizer) if isinstance(init, str) else init()
        if config.freeze_word_embeddings:
            freeze_word_embeddings(model)
        model.compile(make_optimizer(config.learning_rate, model.config.decoder.hidden_size, config.warmup_steps,
                                     config.optimizer, config.weight_decay, config.clipnorm,
                                     config.global_clipnorm, config.adam_epsilon, config.accumulate),
                      label_smoothing=config.label_smoothing, jit_compile="auto" if config.xla else False)
    return model


def freeze_word_embeddings(model) -> None:
    """Makes the encoder's and decoder's word embeddings (the same table when shared) non-trainable."""
    for stack in (model.encoder, model.decoder):
        stack.embeddings.word_embeddings.trainable = False


class HistoryRows(keras.callbacks.Callback):
    """Writes one row per epoch to a JSON file as training goes: the optimizer step (a resumed run's
    epochs start mid-way) and every metric logged, including those only some epochs have (Keras'
    History would misalign them). Rows of an interrupted run up to its restore point are kept.

    Args:
        path: str. The JSON file (`history.json` of a `finetune` run).
    """

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.rows = []

    def on_train_begin(self, logs=None):
        self.rows = []
        if os.path.isfile(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.rows = json.load(f)
        step = int(self.model.optimizer.iterations.numpy())  # BackupAndRestore has run: the restored step
        self.rows = [r for r in self.rows if r["step"] <= step]

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        logs["step"] = int(self.model.optimizer.iterations.numpy())
        self.rows.append({k: int(v) if k == "step" else float(v) for k, v in logs.items()})
        with open(self.path, "w", encoding="utf-8") as f:
            json.dump(self.rows, f, indent=1)

    def columns(self) -> dict:
        """{metric: [value or None per row]}"""
        keys = sorted({k for r in self.rows for k in r})
        return {k: [r.get(k) for r in self.rows] for k in keys}


class StopAtStep(keras.callbacks.Callback):
    """Ends `fit` once the optimizer has made `steps` updates (the last "epoch" may be a partial one).

    Args:
        steps: int. Updates after which training stops.
    """

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            self.model.stop_training = True


def _finish(model, tokenizer, out_dir, config, export, eval_data, chief, last_row):
    """save_pretrained; on the chief also dev metrics (metrics.json) and the SavedModel."""
    model.save_pretrained(os.path.join(out_dir, "model"), tokenizer=tokenizer)
    if not chief:
        return
    plain = float32_model(model)
    if eval_data is not None:
        metrics = {k[len("val_"):]: v for k, v in last_row.items() if k.startswith("val_") and k != "val_loss"}
        if "sari" not in metrics:  # not evaluated at the last step (a resumed, already finished run)
            metrics = evaluate_generation(plain, tokenizer, eval_data, config.eval_batch_size, **config.generation)
            metrics.pop("predictions")
        with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2)
    if export:
        export_saved_model(plain, tokenizer, _next_export_dir(out_dir), **config.generation)


def _next_export_dir(out_dir):
    return next_version_dir(os.path.join(out_dir, "export"))


def weights_digest(model) -> np.ndarray:
    """All trainable weights flattened into one vector (for comparing runs)."""
    return np.concatenate([np.asarray(w.numpy() if hasattr(w, "numpy") else w).ravel()
                           for w in model.trainable_weights])

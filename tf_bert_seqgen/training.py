"""Fine-tuning with Keras: the paper's recipe (Rothe et al. 2020) on `model.compile` + `model.fit`.

    model = EncoderDecoder.from_encoder_decoder_pretrained(bert_dir, bert_dir, share=True)  # BERTSHARE
    tokenizer = load_tokenizer(bert_dir)
    model.compile(make_optimizer(hidden_size=model.config.decoder.hidden_size, warmup_steps=1000))
    model.fit(make_dataset(pairs, tokenizer, batch_size=32, shuffle=True, repeat=True,
                           eos_token_id=model.config.decoder.eos_token_id), steps_per_epoch=..., epochs=...)
    evaluate_generation(model, tokenizer, dev_pairs)  # ROUGE / BLEU / SARI / exact match + predictions

`finetune` wraps all of it (distribution strategy, checkpoints with resume, TensorBoard, dev metrics,
`save_pretrained` + `export_saved_model`); `tf-bert-seqgen finetune` is its command line
(`tf_bert_seqgen.training_cli`).

What the model learns from: a batch is `(features, labels)` with features = {"input_ids" [b, s],
"attention_mask" [b, s], "labels" [b, t]} and labels [b, t] (a bare features dict works too). The target
is the tokenized text followed by the model's eos; `EncoderDecoder.call` makes the decoder inputs by
shifting the labels right behind the start token, so users only ever give (source, target) text pairs.
The loss is token cross-entropy with pad ignored (`losses.sequence_cross_entropy`).

Shapes: b = batch, s = source length, t = target length.
"""

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

from tf_bert_seqgen.fit_hooks import TrainingHooks  # noqa: F401  (training.TrainingHooks, as before)
from tf_bert_seqgen.losses import SequenceCrossEntropy  # noqa: F401  (training.SequenceCrossEntropy)

# Adam as tensor2tensor's transformer hparams, which the paper's models were trained with.
ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.997
ADAM_EPSILON = 1e-9


# --- learning-rate schedule, optimizer ---------------------------------------------------------------

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

    def _all_reduce_sum_gradients(self, grads_and_vars):
        pairs = list(super()._all_reduce_sum_gradients(grads_and_vars))
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
                   global_clipnorm: float | None = None, epsilon: float = ADAM_EPSILON):
    """Adam (the paper; tensor2tensor's betas and epsilon) or AdamW over
    `WarmupRsqrtDecay(learning_rate, hidden_size, warmup_steps)`.

    clipnorm: clip each gradient tensor to this norm; global_clipnorm: clip all of them together
    (BERT's 1.0). Both act on the gradient summed over replicas (see `_ClipSummedGradients`).
    epsilon: Adam's epsilon; tensor2tensor's 1e-9 by default, BERT's pre-training used 1e-6.
    """
    schedule = WarmupRsqrtDecay(learning_rate, hidden_size, warmup_steps)
    common = dict(learning_rate=schedule, beta_1=ADAM_BETA_1, beta_2=ADAM_BETA_2, epsilon=epsilon,
                  clipnorm=clipnorm, global_clipnorm=global_clipnorm)
    if optimizer == "adam":
        return Adam(**common)
    if optimizer == "adamw":
        return AdamW(weight_decay=weight_decay, **common)
    raise ValueError(f"optimizer must be 'adam' or 'adamw', got {optimizer!r}")




# --- data ----------------------------------------------------------------------------------------------

def read_pairs(path: str) -> list[tuple[str, str]]:
    """(source, target) pairs from `source<TAB>target` lines (.tsv) or {"source", "target"} objects (.jsonl)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no data file at {path}")
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if path.endswith(".jsonl"):
                record = json.loads(line)
                if not isinstance(record, dict) or "source" not in record or "target" not in record:
                    raise ValueError(f"{path}:{number}: expected an object with 'source' and 'target'")
                pairs.append((str(record["source"]), str(record["target"])))
            elif path.endswith(".tsv"):
                fields = line.split("\t")
                if len(fields) != 2:
                    raise ValueError(f"{path}:{number}: expected 'source<TAB>target', got {len(fields)} fields")
                pairs.append((fields[0], fields[1]))
            else:
                raise ValueError(f"{path}: unknown data format; use .tsv or .jsonl")
    if not pairs:
        raise ValueError(f"{path} holds no examples")
    return pairs


def as_pairs(data) -> list[tuple[str, str]]:
    """A path (.tsv / .jsonl) or a sequence of (source, target) -> a list of pairs."""
    if isinstance(data, (str, os.PathLike)):
        return read_pairs(os.fspath(data))
    pairs = [(str(s), str(t)) for s, t in data]
    if not pairs:
        raise ValueError("no training examples")
    return pairs


def default_bucket_boundaries(max_length: int) -> list[int]:
    """8, 16, 32, ... below max_length: few distinct shapes, little padding."""
    boundaries, width = [], 8
    while width < max_length:
        boundaries.append(width)
        width *= 2
    return boundaries


def make_dataset(data, tokenizer, batch_size: int, max_source_length: int = 128, max_target_length: int = 128,
                 *, shuffle: bool = False, repeat: bool = False, bucket: bool = True, bucket_boundaries=None,
                 seed: int = 0, eos_token_id: int | None = None, pad_token_id: int | None = None,
                 drop_remainder: bool = False) -> tf.data.Dataset:
    """A tf.data pipeline of (features, labels) batches, tokenized in the graph by `tokenizer`.

    Args:
        data: (source, target) pairs or a .tsv / .jsonl path (see `read_pairs`).
        tokenizer: a `tf_bert_seqgen.tokenizers` tokenizer (its `tokenize` runs inside `Dataset.map`).
        batch_size: examples per batch (the global batch under a distribution strategy).
        max_source_length, max_target_length: truncation, eos included in the target's length.
        shuffle, seed: reshuffle every pass, deterministically given the seed.
        repeat: repeat forever (training with `steps_per_epoch`).
        bucket: group examples of similar length (`bucket_by_sequence_length`) before padding;
            boundaries default to 8, 16, 32, ... (`bucket_boundaries` overrides).
        eos_token_id, pad_token_id: the model's; default to the tokenizer's.

    Returns:
        Dataset of ({"input_ids" [b, s], "attention_mask" [b, s], "labels" [b, t]}, labels [b, t]),
        int32, right-padded with pad to the longest row of the batch; every target row ends with eos.
    """
    pairs = as_pairs(data)
    eos = tokenizer.eos_token_id if eos_token_id is None else eos_token_id
    pad = tokenizer.pad_token_id if pad_token_id is None else pad_token_id
    if eos is None or pad is None:
        raise ValueError("the target needs an eos and padding a pad id; the tokenizer has none, pass them")
    append_eos = not getattr(tokenizer, "add_eos", False)

    def tokenize(source, target):
        source_ids = tokenizer.tokenize(source)[:max_source_length]
        target_ids = tokenizer.tokenize(target)
        if append_eos:
            target_ids = tf.concat([target_ids[:max_target_length - 1], [eos]], axis=0)
        else:  # the tokenizer's eos is already last; keep it when truncating
            target_ids = tf.concat([target_ids[:-1][:max_target_length - 1], target_ids[-1:]], axis=0)
        return tf.cast(source_ids, tf.int32), tf.ones_like(source_ids, tf.int32), tf.cast(target_ids, tf.int32)

    ds = tf.data.Dataset.from_tensor_slices(([s for s, _ in pairs], [t for _, t in pairs]))
    # Tokenize once; later passes read the cache.
    ds = ds.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    padded_shapes = ([None], [None], [None])
    padding_values = (tf.constant(pad, tf.int32), tf.constant(0, tf.int32), tf.constant(pad, tf.int32))
    if bucket:
        boundaries = list(bucket_boundaries or default_bucket_boundaries(max(max_source_length, max_target_length)))
        ds = ds.bucket_by_sequence_length(
            lambda ids, mask, labels: tf.maximum(tf.shape(ids)[0], tf.shape(labels)[0]), boundaries,
            [batch_size] * (len(boundaries) + 1), padded_shapes=padded_shapes, padding_values=padding_values,
            drop_remainder=drop_remainder)
    else:
        ds = ds.padded_batch(batch_size, padded_shapes, padding_values, drop_remainder=drop_remainder)

    def to_features(ids, mask, labels):
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}, labels

    return ds.map(to_features).prefetch(tf.data.AUTOTUNE)


# --- evaluation ----------------------------------------------------------------------------------------

def generate_texts(model, tokenizer, sources, batch_size: int = 32, max_source_length: int | None = None,
                   **generation_options) -> list[str]:
    """Decodes every source with `model.generate` (greedy unless num_beams > 1); returns texts in order.

    Sources are batched by length so that little of each batch is padding.
    """
    # 64 new tokens unless the decoder's positions end sooner.
    generation_options.setdefault("max_new_tokens", min(64, model.config.decoder.max_position_embeddings - 1))
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    predictions = [""] * len(sources)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        inputs = tokenizer([sources[i] for i in rows], max_length=max_source_length)
        ids = model.generate(inputs["input_ids"], inputs["attention_mask"], **generation_options).numpy()
        # Column 0 is the decoder start token; the text ends at eos, as the exported model's does.
        texts = tokenizer.decode(ids[:, 1:], skip_special_tokens=True, stop_at_eos=True)
        for i, text in zip(rows, texts, strict=True):
            predictions[i] = text
    return predictions


def as_tokenizer_writes(tokenizer, texts) -> list[str]:
    """`texts` encoded and decoded again: the closest string the model can produce. An uncased WordPiece
    model writes "if the string contains no timezone, utc is assumed." for "If the string ... UTC ...".
    """
    return tokenizer.decode(tokenizer.encode(list(texts)), skip_special_tokens=True)


def evaluate_generation(model, tokenizer, data, batch_size: int = 32, max_source_length: int | None = None,
                        references: str = "tokenizer", **generation_options) -> dict:
    """ROUGE-1/2/L, BLEU, SARI (0-100) and exact match (0-1) of generated text against the targets.

    data: (source, target) pairs or a .tsv / .jsonl path. generation_options: as `EncoderDecoder.generate`
    (num_beams, max_new_tokens, length_penalty, ...).
    references: "tokenizer" scores against sources and targets as the tokenizer writes them
    (`as_tokenizer_writes`: lowercased for an uncased model, WordPiece spacing around quotes), so that
    exact match means "produced the target's tokens"; "raw" against the texts as given (case-sensitive
    exact match and BLEU, which an uncased model can never match on capitalised text).
    Returns the metrics plus "predictions" (list[str]).
    """
    from tf_bert_seqgen.metrics import compute_metrics

    if references not in ("tokenizer", "raw"):
        raise ValueError(f"references must be 'tokenizer' or 'raw', got {references!r}")
    pairs = as_pairs(data)
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    predictions = generate_texts(model, tokenizer, sources, batch_size, max_source_length, **generation_options)
    if references == "tokenizer":
        sources, targets = as_tokenizer_writes(tokenizer, sources), as_tokenizer_writes(tokenizer, targets)
    return {**compute_metrics(sources, predictions, targets), "predictions": predictions}


class GenerationEvaluation(keras.callbacks.Callback):
    """Decodes dev pairs every `every` epochs and adds `val_<metric>` (sari, exact_match, ...) to the
    epoch logs, so History, the progress bar and TensorBoard show them."""

    def __init__(self, tokenizer, data, every: int = 1, batch_size: int = 32, **generation_options):
        super().__init__()
        self.tokenizer = tokenizer
        self.pairs = as_pairs(data)
        self.every = max(1, int(every))
        self.batch_size = batch_size
        self.generation_options = generation_options

    def on_epoch_end(self, epoch, logs=None):
        last = self.model.stop_training or epoch + 1 == self.params.get("epochs")
        if logs is None or ((epoch + 1) % self.every and not last):
            return
        results = evaluate_generation(plain_copy(self.model), self.tokenizer, self.pairs, self.batch_size,
                                      **self.generation_options)
        logs.update({f"val_{k}": float(v) for k, v in results.items() if k != "predictions"})


class StopAtStep(keras.callbacks.Callback):
    """Ends `fit` once the optimizer has made `steps` updates (the last "epoch" may be a partial one)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            self.model.stop_training = True


# --- model initialisation ---------------------------------------------------------------------------------

# A MiniLM-shaped stack for `random` with no directory to take a config from.
_DEFAULT_RANDOM_STACK = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


def parse_init(spec: str) -> tuple[str, str | None]:
    """`bert:<dir>` (BERT2BERT), `share:<dir>` (BERTSHARE), `bert2rnd:<dir>`, `random[:<dir>]` (RND2RND,
    config from the directory), `model:<dir>` (continue from a saved EncoderDecoder) -> (kind, dir)."""
    kind, _, directory = spec.partition(":")
    if kind not in ("bert", "share", "bert2rnd", "random", "model"):
        raise ValueError(f"--init must be bert:<dir>, share:<dir>, bert2rnd:<dir>, random[:<dir>] or "
                         f"model:<dir>; got {spec!r}")
    if kind != "random" and not directory:
        raise ValueError(f"--init {kind}: needs a directory ({kind}:<dir>)")
    return kind, directory or None


def check_cross_attention(kind: str, cross_attention: str):
    """A cross-attention start other than random needs a warm start with a pre-trained decoder."""
    if cross_attention != "random" and kind not in ("bert", "share"):
        raise ValueError(f"--cross-attention {cross_attention} applies to --init bert: or share:, not {kind}:")


def build_model(spec: str, tokenizer=None, dropout: float | None = None, cross_attention: str = "random"):
    """The `EncoderDecoder` an init spec describes (see `parse_init`). Call it inside `strategy.scope()`.

    `tokenizer` sizes `random` without a directory; `dropout` overrides the hidden and attention dropout;
    `cross_attention` ("random" or "self_attention") is how BERT2BERT / BERTSHARE start the decoder's
    cross-attention (`checkpoints.bert.warm_start`).
    """
    from tf_bert_seqgen.checkpoints import bert, hf
    from tf_bert_seqgen.config import BertForSeqGenerationConfig, EncoderDecoderConfig, read_config_json
    from tf_bert_seqgen.models import EncoderDecoder

    kind, directory = parse_init(spec)
    check_cross_attention(kind, cross_attention)
    overrides = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}

    def stack(config):
        return BertForSeqGenerationConfig.from_dict({**config.to_dict(), **overrides})

    if kind == "model":
        if not overrides:
            return EncoderDecoder.from_pretrained(directory)
        config = EncoderDecoderConfig.from_dict(read_config_json(os.path.join(directory, "config.json")))
        return EncoderDecoder.from_pretrained(directory, encoder=stack(config.encoder).to_dict(),
                                              decoder=stack(config.decoder).to_dict())
    if kind == "random":
        if directory is None:
            if tokenizer is None:
                raise ValueError("--init random without a directory needs a tokenizer to size the vocabulary")
            config = BertForSeqGenerationConfig(
                vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **_DEFAULT_RANDOM_STACK)
            return EncoderDecoder.from_config(EncoderDecoderConfig(stack(config), stack(config)))
        values = read_config_json(os.path.join(directory, "config.json"))
        if values.get("model_type") == "encoder-decoder":
            config = EncoderDecoderConfig.from_dict(values)
            return EncoderDecoder.from_config(EncoderDecoderConfig(stack(config.encoder), stack(config.decoder),
                                                                   config.share, config.decoder_start_token_id))
        config = stack(bert.bert_config(directory) if values.get("model_type", "bert") == "bert"
                       else BertForSeqGenerationConfig.from_dict(values))
        return EncoderDecoder.from_config(EncoderDecoderConfig(config, config))
    directory = hf.resolve(directory)
    decoder = {"bert": directory, "share": directory, "bert2rnd": None}[kind]
    return bert.warm_start(directory, decoder, share=kind == "share", config=stack(bert.bert_config(directory)),
                           cross_attention=cross_attention)


def load_init_tokenizer(spec: str, tokenizer_dir: str | None = None):
    """The tokenizer of `tokenizer_dir`, else of the init directory."""
    from tf_bert_seqgen.tokenizers import load_tokenizer

    directory = tokenizer_dir or parse_init(spec)[1]
    if directory is None:
        raise ValueError("--init random without a directory needs --tokenizer DIR")
    return load_tokenizer(directory)


# --- the whole run -----------------------------------------------------------------------------------------

@dataclasses.dataclass
class TrainingConfig:
    """Hyper-parameters of `finetune`. Defaults suit a small model on a small set; the paper used
    learning_rate 0.05, warmup 40k steps, batch 256 (BERT-large sized, TPU)."""

    steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 0.05  # the schedule's scale; peak = scale / sqrt(hidden * warmup)
    warmup_steps: int = 100
    optimizer: str = "adam"  # or "adamw"
    weight_decay: float = 0.01  # AdamW only
    clipnorm: float | None = 1.0
    global_clipnorm: float | None = None
    adam_epsilon: float = ADAM_EPSILON
    label_smoothing: float = 0.0
    max_source_length: int = 128
    max_target_length: int = 128
    steps_per_checkpoint: int = 100  # also a Keras "epoch": checkpoint, dev loss, progress-bar line
    eval_every: int = 1  # dev generation metrics every this many checkpoints (0: at the end only)
    eval_batch_size: int = 32
    mixed_precision: str | None = None  # "mixed_float16" / "mixed_bfloat16"
    seed: int = 0
    verbose: int | str = "auto"
    generation: dict = dataclasses.field(default_factory=lambda: {"num_beams": 1, "max_new_tokens": 64})


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
    """The step BackupAndRestore will resume from (it restarts at an epoch boundary)."""
    path = os.path.join(backup_dir, "training_metadata.json")
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["epoch"]) * steps_per_epoch


def finetune(init, tokenizer, train_data, out_dir: str, config: TrainingConfig | None = None, eval_data=None,
             strategy=None, export: bool = True, callbacks=()):
    """Fine-tunes, checkpointing as it goes; resumes from `out_dir` if a previous run was interrupted.

    Args:
        init: an init spec (`parse_init`) or a function returning a fresh `EncoderDecoder`; it is called
            inside `strategy.scope()`.
        tokenizer: the model's tokenizer (tokenizes the data in the input pipeline; saved with the model).
        train_data, eval_data: (source, target) pairs or .tsv / .jsonl paths. eval_data gives the dev
            loss at every checkpoint and generation metrics (`val_sari`, ...) every `eval_every`.
        out_dir: `backup/` (resume state), `logs/` (TensorBoard), `history.json`, `model/`
            (`save_pretrained`), `export/<version>/` (`export_saved_model`), `metrics.json`.
        strategy: a `tf.distribute` strategy (Mirrored, MultiWorkerMirrored, ...); default: none.
        export: write the SavedModel at the end.
        callbacks: extra Keras callbacks.

    Returns:
        (model, history): the trained model and {metric: [value per checkpoint]} plus "step".
    """
    config = config or TrainingConfig()
    strategy = strategy or tf.distribute.get_strategy()
    chief = is_chief(strategy)
    out_dir = worker_dir(out_dir, strategy)
    os.makedirs(out_dir, exist_ok=True)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_model(init, tokenizer) if isinstance(init, str) else init()
        model.compile(make_optimizer(config.learning_rate, model.config.decoder.hidden_size, config.warmup_steps,
                                     config.optimizer, config.weight_decay, config.clipnorm,
                                     config.global_clipnorm, config.adam_epsilon),
                      label_smoothing=config.label_smoothing)

    steps_per_epoch = min(config.steps_per_checkpoint, config.steps)
    epochs = math.ceil(config.steps / steps_per_epoch)
    backup_dir = os.path.join(out_dir, "backup")
    dataset_options = dict(max_source_length=config.max_source_length, max_target_length=config.max_target_length,
                           eos_token_id=model.config.decoder.eos_token_id,
                           pad_token_id=model.config.decoder.pad_token_id)
    train = make_dataset(train_data, tokenizer, config.batch_size, shuffle=True, repeat=True, seed=config.seed,
                         **dataset_options)
    # The shuffled stream is a function of the seed: skipping what was trained on makes a resumed run
    # see exactly the batches an uninterrupted one would.
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


class HistoryRows(keras.callbacks.Callback):
    """Writes one row per epoch to a JSON file as training goes: the optimizer step (a resumed run's
    epochs start mid-way) and every metric logged, including those only some epochs have (Keras'
    History would misalign them). Rows of an interrupted run up to its restore point are kept."""

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


def plain_copy(model):
    """`model` itself, or, when it computes in (b)float16 or lives in a distribution strategy, a float32
    copy outside it: generation and export need plain float32 variables (the decoder's cache is float32)."""
    from tf_bert_seqgen.models import EncoderDecoder

    if model._distribute_strategy is None and model.compute_dtype == "float32":
        return model
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = EncoderDecoder.from_config(model.config)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    copy.set_weights(model.get_weights())
    return copy


def _finish(model, tokenizer, out_dir, config, export, eval_data, chief, last_row):
    """save_pretrained; on the chief also dev metrics (metrics.json) and the SavedModel."""
    model.save_pretrained(os.path.join(out_dir, "model"), tokenizer=tokenizer)
    if not chief:
        return
    plain = plain_copy(model)
    if eval_data is not None:
        metrics = {k[len("val_"):]: v for k, v in last_row.items() if k.startswith("val_") and k != "val_loss"}
        if "sari" not in metrics:  # not evaluated at the last step (a resumed, already finished run)
            metrics = evaluate_generation(plain, tokenizer, eval_data, config.eval_batch_size, **config.generation)
            metrics.pop("predictions")
        with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2)
    if export:
        export_with_tokenizer(plain, tokenizer, _next_export_dir(out_dir), **config.generation)


def _next_export_dir(out_dir):
    from tf_bert_seqgen.export import next_version_dir

    return next_version_dir(os.path.join(out_dir, "export"))


# Where `export_with_tokenizer` keeps the tokenizer's files inside a SavedModel (TF Serving ignores it).
EXPORT_TOKENIZER_DIR = os.path.join("assets.extra", "tokenizer")


def export_with_tokenizer(model, tokenizer, export_dir: str, **generation_options) -> str:
    """`export_saved_model`, plus the tokenizer's files under assets.extra/tokenizer so that evaluation can
    write references as the model does (`tf-bert-seqgen evaluate`)."""
    from tf_bert_seqgen.export import export_saved_model

    export_saved_model(model, tokenizer, export_dir, **generation_options)
    tokenizer.save_pretrained(os.path.join(export_dir, EXPORT_TOKENIZER_DIR))
    return export_dir


def weights_digest(model) -> np.ndarray:
    """All trainable weights flattened into one vector (for comparing runs)."""
    return np.concatenate([np.asarray(w.numpy() if hasattr(w, "numpy") else w).ravel()
                           for w in model.trainable_weights])

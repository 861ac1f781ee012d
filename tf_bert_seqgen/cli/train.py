"""Training commands: finetune and evaluate.

    tf-bert-seqgen finetune --init share:<bert dir> --train train.tsv --eval dev.tsv --out runs/fusion \\
        --steps 600 --batch-size 16 --learning-rate 0.05 --warmup 100
    tf-bert-seqgen evaluate --model runs/fusion/model --data test.tsv
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tf_bert_seqgen import training
from tf_bert_seqgen.cli.errors import as_flags
from tf_bert_seqgen.cli.flags import add_field_flags, field_values
from tf_bert_seqgen.cli.sources import default_model_dir
from tf_bert_seqgen.export import latest_version_dir
from tf_bert_seqgen.io_utils import atomic_file
from tf_bert_seqgen.tokenizers import load_tokenizer

STRATEGIES = ("none", "mirrored", "multi-worker")


def make_strategy(name: str):
    """A tf.distribute strategy by name. Create it first: MultiWorkerMirroredStrategy must exist before
    any other TensorFlow op runs (it configures the collective ops of the process); it reads TF_CONFIG."""
    if name == "none":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--strategy must be one of {STRATEGIES}, got {name!r}")


# TrainingConfig's fields the finetune command takes as flags of the same names (`cli.flags`).
TRAINING_FLAGS = ("steps", "batch_size", "accumulate", "xla", "learning_rate", "warmup_steps", "optimizer",
                  "weight_decay", "clipnorm", "global_clipnorm", "adam_epsilon", "label_smoothing",
                  "freeze_word_embeddings", "max_source_length", "max_target_length", "steps_per_checkpoint",
                  "eval_every", "seed")


def training_config(args):
    values = field_values(args, training.TrainingConfig, TRAINING_FLAGS)
    values["clipnorm"] = values["clipnorm"] or None  # --clipnorm 0: none
    generation = {"num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens}
    return training.TrainingConfig(
        **values, mixed_precision=args.mixed_precision and f"mixed_{args.mixed_precision}", verbose=args.verbose,
        generation=generation)


def cmd_finetune(args):
    strategy = make_strategy(args.strategy)  # before anything else runs a TensorFlow op
    with as_flags(steps="--steps", batch_size="--batch-size", accumulate="--accumulate",
                  steps_per_checkpoint="--steps-per-checkpoint"):
        config = training_config(args)
    with as_flags(init="--init", cross_attention="--cross-attention", tokenizer_dir="--tokenizer DIR"):
        kind, _ = training.parse_init(args.init)  # fail on a bad spec before loading anything
        training.check_cross_attention(kind, args.cross_attention)
        tokenizer = training.load_init_tokenizer(args.init, args.tokenizer)

    def init():
        return training.build_model(args.init, tokenizer, dropout=args.dropout,
                                    cross_attention=args.cross_attention)

    model, history = training.finetune(init, tokenizer, args.train, args.out, config, eval_data=args.eval,
                                       strategy=strategy, export=not args.no_export)
    out = training.worker_dir(args.out, strategy)
    schedule = training.WarmupRsqrtDecay(config.learning_rate, model.config.decoder.hidden_size, config.warmup_steps)
    report = {"out": out, "model": os.path.join(out, "model"), "steps": int(model.optimizer.iterations.numpy()),
              "parameters": model.count_params(), "peak_learning_rate": schedule.peak,
              "final": {k: v[-1] for k, v in history.items() if v and v[-1] is not None}}
    if training.is_chief(strategy) and not args.no_export:
        report["export"] = latest_version_dir(os.path.join(out, "export"))
    print(json.dumps(report, indent=2))


def _evaluation_tokenizer(path: str, tokenizer_dir: str | None):
    """The tokenizer that writes the references for `--references tokenizer`: --tokenizer, else the
    checkpoint's, else the one `finetune` stores in a SavedModel's assets.extra; None if there is none."""
    for directory in (tokenizer_dir, path, os.path.join(path, training.EXPORT_TOKENIZER_DIR)):
        if directory and any(os.path.isfile(os.path.join(directory, name)) for name in ("vocab.txt", "spiece.model")):
            return load_tokenizer(directory)
    return None


def cmd_evaluate(args):
    path = args.model or default_model_dir()
    pairs = training.read_pairs(args.data)
    options = {k: v for k, v in (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens)) if v}
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    predictions = training.predict(path, sources, args.batch_size, progress=True, **options)
    tokenizer = _evaluation_tokenizer(path, args.tokenizer) if args.references == "tokenizer" else None
    metrics = training.score_predictions(sources, predictions, references, tokenizer)
    metrics.pop("predictions")
    if args.predictions:
        with atomic_file(args.predictions) as f:
            f.writelines(p.replace("\n", " ") + "\n" for p in predictions)
    print(json.dumps({"model": path, "data": args.data, "examples": len(pairs),
                      "references": "raw" if tokenizer is None else "tokenizer", **metrics}, indent=2))


def add_commands(subparsers):
    """Registers finetune and evaluate on the `tf-bert-seqgen` sub-command parser."""
    p = subparsers.add_parser("finetune", help="fine-tune (warm-started or random) on (source, target) pairs")
    p.add_argument("--init", required=True,
                   help="bert:<dir> (BERT2BERT), share:<dir> (BERTSHARE), bert2rnd:<dir>, random[:<dir>] "
                        "(RND2RND, config from dir), model:<dir> (continue a saved model)")
    p.add_argument("--tokenizer", help="tokenizer directory (default: the --init directory)")
    p.add_argument("--train", required=True, help=".tsv (source<TAB>target) or .jsonl ({source, target})")
    p.add_argument("--eval", help="dev data: dev loss and generation metrics at each checkpoint")
    p.add_argument("--out", required=True, help="run directory (checkpoints, logs, model/, export/)")
    add_field_flags(p, training.TrainingConfig, TRAINING_FLAGS[:TRAINING_FLAGS.index("max_source_length")],
                    batch_size={"help": "global batch (all replicas)"},
                    accumulate={"metavar": "N"},
                    warmup_steps={"flags": ["--warmup", "--warmup-steps"]},
                    optimizer={"choices": ["adam", "adamw"]},
                    clipnorm={"help": "clip each gradient tensor's norm; 0 = none"})
    p.add_argument("--dropout", type=float, help="override hidden and attention dropout")
    p.add_argument("--cross-attention", choices=["random", "self_attention"], default="random",
                   help="bert:/share: start the decoder's cross-attention random (the paper) or as a copy of "
                        "each layer's pre-trained self-attention (far better on small data)")
    add_field_flags(p, training.TrainingConfig, TRAINING_FLAGS[TRAINING_FLAGS.index("max_source_length"):-1])
    p.add_argument("--num-beams", type=int, default=1, help="decoding for evaluation and the export")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--mixed-precision", choices=["float16", "bfloat16"])
    p.add_argument("--strategy", choices=STRATEGIES, default="none",
                   help="multi-worker reads TF_CONFIG; non-chief workers write under OUT/worker_<i>")
    add_field_flags(p, training.TrainingConfig, ["seed"])
    p.add_argument("--verbose", type=int, default=1, help="Keras fit verbosity (0, 1 progress bar, 2 a line)")
    p.add_argument("--no-export", action="store_true", help="skip the SavedModel export")
    p.set_defaults(func=cmd_finetune)

    p = subparsers.add_parser("evaluate", help="ROUGE / BLEU / SARI / exact match of a model on (source, target) data")
    p.add_argument("--model", help="checkpoint directory or exported SavedModel (default: the shipped model)")
    p.add_argument("--data", required=True, help=".tsv or .jsonl")
    p.add_argument("--batch-size", type=int, default=32,
                   help="examples per batch (a progress bar on stderr when there is more than one)")
    p.add_argument("--num-beams", type=int, help="checkpoints only (a SavedModel's decoding is fixed)")
    p.add_argument("--max-new-tokens", type=int, help="checkpoints only")
    p.add_argument("--predictions", help="write the predictions here, one per line")
    p.add_argument("--references", choices=["tokenizer", "raw"], default="tokenizer",
                   help="tokenizer: score against the targets as the model's tokenizer writes them (lowercased "
                        "for uncased models; the default when a tokenizer is found), raw: as given")
    p.add_argument("--tokenizer", help="tokenizer directory for --references tokenizer (default: the model's)")
    p.set_defaults(func=cmd_evaluate)

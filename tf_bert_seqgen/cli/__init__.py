"""`tf-bert-seqgen`: generate, export, warm-cache, convert, info, finetune, evaluate, batch.

One rule for every command: an error is one line on stderr and exit code 2; `--debug` shows the
traceback. TensorFlow's C++ and absl log lines stay off unless `--verbose` is given (before the command,
or after any command but finetune, whose `--verbose N` is Keras' fit verbosity); the import-time ones are
kept off by the package's `__init__` (see `tf_bert_seqgen._quiet`). Commands: `inference.py` (generate, export, warm-cache, convert, info), `train.py` (finetune, evaluate),
`batch.py` (batch, on Apache Beam: flags it does not know are Beam's pipeline options);
`sources.py` says what a path holds and loads it.
"""

from __future__ import annotations

import argparse
import sys

from tf_bert_seqgen import _quiet
from tf_bert_seqgen.cli import batch, inference, train
from tf_bert_seqgen.cli.sources import (
    DEFAULT_MODEL_NAME,
    CliError,
    default_model_dir,
    kind_of,
    load_model_and_tokenizer,
    preset_decoding,
)

__all__ = ["DEFAULT_MODEL_NAME", "CliError", "build_parser", "default_model_dir", "kind_of",
           "load_model_and_tokenizer", "main", "preset_decoding"]


def build_parser():
    parser = argparse.ArgumentParser(prog="tf-bert-seqgen", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--verbose", dest="tensorflow_logs", action="store_true",
                        help="show TensorFlow's C++ and absl log lines")
    commands = parser.add_subparsers(dest="command", required=True)
    inference.add_commands(commands)
    train.add_commands(commands)
    batch.add_commands(commands)
    for name, command in commands.choices.items():
        if name not in _quiet.OWN_VERBOSE:
            # SUPPRESS: a sub-command's default must not undo a --verbose given before the command.
            command.add_argument("--verbose", dest="tensorflow_logs", action="store_true", default=argparse.SUPPRESS,
                                 help="show TensorFlow's C++ and absl log lines")
    return parser


def main(argv=None):
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "accepts_pipeline_args", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")  # what parse_args says
    args.pipeline_args = unknown
    if not args.tensorflow_logs:
        _quiet.quiet_tensorflow_logs()
    try:
        args.func(args)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # the CLI's contract: one line, non-zero exit, no traceback
        if args.debug:
            raise
        message = "; ".join(line.strip() for line in str(e).strip().splitlines() if line.strip())
        print(f"tf-bert-seqgen {args.command}: error: {message or type(e).__name__}", file=sys.stderr)
        sys.exit(2)

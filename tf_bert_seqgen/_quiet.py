"""The command line starts quiet: TensorFlow's C++ (absl) log lines stay off unless `--verbose` is given.

TensorFlow writes its first lines (CUDA probing, oneDNN and CPU-feature notes) from C++ while it is being
imported, through absl before its logging is set up, and TF_CPP_MIN_LOG_LEVEL does not reach those: the
only way to keep them off is to point file descriptor 2 elsewhere while TensorFlow loads. The package's
`__init__` imports TensorFlow, and any `tf_bert_seqgen.cli` entry point runs that `__init__` first, so it
is `__init__` that calls `quiet_import()` before its imports. This module uses the standard library only.

Only a process started as the command line is quieted (`tf-bert-seqgen ...`, `python -m
tf_bert_seqgen.cli ...`); any other process that imports the package is left as it is.
"""

from __future__ import annotations

import contextlib
import os
import sys

CLI_SCRIPT = "tf-bert-seqgen"
CLI_MODULES = ("tf_bert_seqgen.cli", "tf_bert_seqgen.cli.__main__")
VERBOSE_FLAG = "--verbose"
# `finetune --verbose N` is Keras' fit verbosity; there, only a --verbose before the command means logs.
OWN_VERBOSE = ("finetune",)


def cli_arguments() -> list[str] | None:
    """The command-line arguments when this process is the command line, else None."""
    script = os.path.basename(sys.argv[0]) if sys.argv else ""
    if script in (CLI_SCRIPT, f"{CLI_SCRIPT}.exe", f"{CLI_SCRIPT}-script.py"):
        return list(sys.argv[1:])
    # `python -m tf_bert_seqgen.cli`: while the package imports, sys.argv[0] is still "-m".
    original = list(getattr(sys, "orig_argv", []))
    for i, arg in enumerate(original[:-1]):
        if arg == "-m":
            return original[i + 2:] if original[i + 1] in CLI_MODULES else None
    return None


def wants_logs(args: list[str]) -> bool:
    """Whether command-line `args` ask for TensorFlow's logs: --verbose before the command, or after any
    command but finetune."""
    command = next((i for i, arg in enumerate(args) if not arg.startswith("-")), len(args))
    if VERBOSE_FLAG in args[:command]:
        return True
    return command < len(args) and args[command] not in OWN_VERBOSE and VERBOSE_FLAG in args[command:]


def quiet_tensorflow_logs():
    """From now on, TensorFlow's C++ logs only fatal errors, and its Python loggers only errors."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):  # absl-py comes with TensorFlow
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)


@contextlib.contextmanager
def quiet_import():
    """For the command line without --verbose: TensorFlow's later C++ logs off, and file descriptor 2
    pointed at the null device while the block runs (the imports), then restored."""
    args = cli_arguments()
    if args is None or wants_logs(args):
        yield
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    _flush_stderr()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        _flush_stderr()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _flush_stderr():
    if sys.stderr is not None:  # None under pythonw
        sys.stderr.flush()

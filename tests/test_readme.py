"""The README's examples run, in order, as a reader would run them; its test command is what CI runs.

Fenced blocks are executed in document order by one fresh interpreter whose working directory is a
temporary one: ```python blocks share one namespace (a later block uses what an earlier one made), and
```bash blocks run with `bash -euo pipefail` in the same directory (so they see the files the Python
blocks wrote). A block whose fence says `no-run` (```` ```python no-run ````) is skipped deliberately: it
installs packages or needs network access (Hugging Face repo ids, TF Hub handles, a running TF Serving).
A block whose fence says `standalone` needs nothing an earlier block wrote: it runs alone, in a fresh
directory, in tests/test_readme_standalone.py, so that the README's slow shell examples (each command a
fresh interpreter) run on the other test worker instead of lengthening this one chain. Other fences
(```text, ...) are not code.

The README's paths are relative to the repository root; the one thing it reads from there,
`saved_models/fusion` (the shipped default model), is linked into the temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEST_COMMAND = 'pip install -e ".[test,beam]" && python -m pytest'
LARGE_TIER_COMMAND = "python -m pytest --run_large -m large"
RUN_COMMAND = 'pip install -e . && tf-bert-seqgen generate "'
EXECUTED_LANGUAGES = ("python", "bash")

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks(text: str) -> list[dict]:
    """Fenced code blocks: language, flags (the fence's other words), first line number, source."""
    found = []
    for match in FENCE.finditer(text):
        words = match.group(1).split()
        found.append({"language": words[0] if words else "", "flags": words[1:],
                      "line": text.count("\n", 0, match.start(2)) + 1, "source": match.group(2)})
    return found


def runnable(block: dict) -> bool:
    return block["language"] in EXECUTED_LANGUAGES and "no-run" not in block["flags"]


def standalone(block: dict) -> bool:
    """Run alone, in a fresh directory, by tests/test_readme_standalone.py."""
    return runnable(block) and "standalone" in block["flags"]


def chained(block: dict) -> bool:
    """Run by the one chain of test_readme_examples_run."""
    return runnable(block) and not standalone(block)


# Runs in the fresh interpreter: each Python block compiled under the README's name with its own line
# numbers (a traceback points into README.md), each bash block as a subprocess in the same directory.
DRIVER = r"""
import json, os, subprocess, sys, time
readme, blocks = sys.argv[1], json.load(open(sys.argv[2], encoding="utf-8"))
namespace = {"__name__": "__main__"}
for block in blocks:
    start = time.monotonic()
    print(f"=== README.md line {block['line']} ({block['language']})", flush=True)
    if block["language"] == "python":
        code = compile("\n" * (block["line"] - 1) + block["source"], readme, "exec")
        exec(code, namespace)
    else:
        subprocess.run(["bash", "-euo", "pipefail", "-c", block["source"]], check=True)
    print(f"=== ok in {time.monotonic() - start:.1f} s", flush=True)
"""


def test_readme_blocks_parse():
    found = blocks(README.read_text(encoding="utf-8"))
    python = [b for b in found if b["language"] == "python"]
    assert len([b for b in python if runnable(b)]) >= 8, "the README's Python examples should run"
    for block in found:
        assert set(block["flags"]) <= {"no-run", "standalone"}, (
            f"README.md:{block['line']}: unknown fence flags {block['flags']}")
        assert not {"no-run", "standalone"} <= set(block["flags"]), f"README.md:{block['line']}: both flags"
        if block["language"] == "python":
            compile(block["source"], f"README.md:{block['line']}", "exec")  # also the no-run ones


def test_no_run_blocks_are_the_ones_that_need_network_or_install():
    """Skipping is deliberate: each skipped block installs, downloads or talks to a server."""
    markers = ("pip install", "google/", "tfhub.dev", "docker run", "curl ", "localhost")
    for block in blocks(README.read_text(encoding="utf-8")):
        if "no-run" in block["flags"]:
            assert any(m in block["source"] for m in markers), (
                f"README.md:{block['line']} is marked no-run but needs neither network nor an install")


def run_blocks(to_run: list[dict], tmp_path: Path):
    """Runs the blocks in order in one fresh interpreter, in a new directory under tmp_path that holds a
    link to the shipped default model; fails naming the README line of the block that failed."""
    (tmp_path / "blocks.json").write_text(json.dumps(to_run), encoding="utf-8")
    work = tmp_path / "cwd"
    (work / "saved_models").mkdir(parents=True)
    if (ROOT / "saved_models" / "fusion").is_dir():
        os.symlink(ROOT / "saved_models" / "fusion", work / "saved_models" / "fusion")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_BERT_SEQGEN_OFFLINE": "1", "KERAS_BACKEND": "tensorflow",
           "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-c", DRIVER, str(README), str(tmp_path / "blocks.json")],
                            cwd=work, env=env, capture_output=True, text=True, timeout=900)
    print(result.stdout[-6000:])
    assert result.returncode == 0, (
        f"a README example failed (the last '=== README.md line N' names it):\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    assert result.stdout.count("=== ok in") == len(to_run)


@pytest.mark.large
def test_readme_examples_run(tmp_path):
    run_blocks([b for b in blocks(README.read_text(encoding="utf-8")) if chained(b)], tmp_path)


def test_ci_runs_the_readme_test_command():
    text = README.read_text(encoding="utf-8")
    commands = [line.strip() for b in blocks(text) if b["language"] == "bash"
                for line in b["source"].splitlines() if "python -m pytest" in line]
    assert commands == [TEST_COMMAND], commands
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert TEST_COMMAND in ci_lines, ".ci/run must run the README's test command verbatim"
    assert LARGE_TIER_COMMAND in ci_lines and LARGE_TIER_COMMAND in text, "CI runs the large tier the README names"
    assert any(line.strip().startswith(RUN_COMMAND) for b in blocks(text) for line in b["source"].splitlines()), \
        "the README's quick start runs the main job with `pip install -e . && tf-bert-seqgen generate`"


def _public_classes():
    import importlib
    import inspect

    import tf_bert_seqgen

    names = set(tf_bert_seqgen.__all__)
    for module_name in ("config", "tokenizers", "generation", "export", "training", "presets", "metrics",
                        "checkpoints.hf", "checkpoints.tfhub", "checkpoints.bert"):
        module = importlib.import_module(f"tf_bert_seqgen.{module_name}")
        public = getattr(module, "__all__", None) or [
            name for name, obj in vars(module).items()
            if inspect.isclass(obj) and obj.__module__ == module.__name__ and not name.startswith("_")]
        names |= {name for name in public if inspect.isclass(getattr(module, name))}
    return sorted(names)


def test_readme_documents_every_public_class_and_command():
    from tf_bert_seqgen import cli

    text = README.read_text(encoding="utf-8")
    code = "\n".join(b["source"] for b in blocks(text) if runnable(b))
    missing = [name for name in _public_classes() if name not in text]
    assert not missing, f"public classes the README does not mention: {missing}"
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    not_run = [c for c in commands if not re.search(rf"^tf-bert-seqgen {c}\b", code, re.M)]
    assert not not_run, f"CLI commands without a runnable README example: {not_run}"

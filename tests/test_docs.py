"""The documentation's examples run, in order, as a reader would run them; the README's test command is
what CI runs.

The documents are README.md, then the pages of the site in the order of mkdocs.yml's `nav`. Their fenced
blocks are executed in that order by one fresh interpreter whose working directory is a temporary one:
```python blocks share one namespace (a later block, on the same page or a later one, uses what an
earlier one made, as a reader who follows the guides in order does), and ```bash blocks run with
`bash -euo pipefail` in the same directory (so they see the files the Python blocks wrote). A block whose
fence says `no-run` (```` ```python no-run ````) is skipped deliberately: it installs packages or needs
network access (Hugging Face repo ids, TF Hub handles, a running TF Serving). A block whose fence says
`standalone` needs nothing an earlier block wrote: it runs alone, in a fresh directory, in
tests/test_docs_standalone.py, so that the slow shell examples (each command a fresh interpreter) run on
the other test worker instead of lengthening this one chain. Other fences (```text, ...) are not code.

The examples' paths are relative to the repository root; the one thing they read from there,
`saved_models/fusion` (the shipped default model), is linked into the temporary directory.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS = ROOT / "mkdocs.yml"
README_MAX_LINES = 300
TEST_COMMAND = 'pip install -e ".[test,beam]" && python -m pytest'
LARGE_TIER_COMMAND = "python -m pytest --run_large -m large"
DOCS_BUILD_COMMAND = "mkdocs build --strict"
RUN_COMMAND = 'pip install -e . && tf-bert-seqgen generate "'
EXECUTED_LANGUAGES = ("python", "bash")
FLAGS = ("no-run", "standalone")

FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
API_DIRECTIVE = re.compile(r"^::: (tf_bert_seqgen[\w.]*)\s*$", re.M)


def nav_pages() -> list[Path]:
    """The site's pages in the order of mkdocs.yml's `nav` (nested sections flattened)."""
    def walk(entries):
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            if isinstance(value, list):
                yield from walk(value)
            else:
                yield DOCS / value

    return list(walk(yaml.safe_load(MKDOCS.read_text(encoding="utf-8"))["nav"]))


def documents() -> list[Path]:
    """README.md, then the site's pages: the order in which their examples run."""
    return [README, *nav_pages()]


def blocks(text: str, path: Path = README) -> list[dict]:
    """Fenced code blocks: file (relative to the root), language, flags (the fence's other words), first
    line number, source."""
    found = []
    for match in FENCE.finditer(text):
        words = match.group(1).split()
        found.append({"file": str(path.relative_to(ROOT)), "language": words[0] if words else "",
                      "flags": words[1:], "line": text.count("\n", 0, match.start(2)) + 1,
                      "source": match.group(2)})
    return found


def all_blocks() -> list[dict]:
    """Every document's blocks, in running order."""
    return [block for path in documents() for block in blocks(path.read_text(encoding="utf-8"), path)]


def where(block: dict) -> str:
    return f"{block['file']}:{block['line']}"


def runnable(block: dict) -> bool:
    return block["language"] in EXECUTED_LANGUAGES and "no-run" not in block["flags"]


def standalone(block: dict) -> bool:
    """Run alone, in a fresh directory, by tests/test_docs_standalone.py."""
    return runnable(block) and "standalone" in block["flags"]


def chained(block: dict) -> bool:
    """Run by the one chain of test_docs_examples_run."""
    return runnable(block) and not standalone(block)


# Runs in the fresh interpreter: each Python block compiled under its file's name with its own line
# numbers (a traceback points into the page), each bash block as a subprocess in the same directory.
DRIVER = r"""
import json, os, subprocess, sys, time
root, blocks = sys.argv[1], json.load(open(sys.argv[2], encoding="utf-8"))
namespace = {"__name__": "__main__"}
for block in blocks:
    start = time.monotonic()
    print(f"=== {block['file']} line {block['line']} ({block['language']})", flush=True)
    if block["language"] == "python":
        code = compile("\n" * (block["line"] - 1) + block["source"], os.path.join(root, block["file"]), "exec")
        exec(code, namespace)
    else:
        subprocess.run(["bash", "-euo", "pipefail", "-c", block["source"]], check=True)
    print(f"=== ok in {time.monotonic() - start:.1f} s", flush=True)
"""


def test_every_page_is_in_the_nav_once():
    """The chain runs the pages in nav order: a page left out of the nav would be neither built nor tested."""
    pages = nav_pages()
    assert len(pages) == len(set(pages)), "a page appears twice in mkdocs.yml's nav"
    missing = [p for p in pages if not p.is_file()]
    assert not missing, f"nav pages that do not exist: {missing}"
    on_disk = set(DOCS.rglob("*.md"))
    assert on_disk == set(pages), f"pages outside the nav: {sorted(map(str, on_disk - set(pages)))}"


def test_docs_blocks_parse():
    found = all_blocks()
    python = [b for b in found if b["language"] == "python"]
    assert len([b for b in python if runnable(b)]) >= 20, "the documentation's Python examples should run"
    for block in found:
        assert set(block["flags"]) <= set(FLAGS), f"{where(block)}: unknown fence flags {block['flags']}"
        assert not set(FLAGS) <= set(block["flags"]), f"{where(block)}: both flags"
        if block["language"] == "python":
            compile(block["source"], where(block), "exec")  # also the no-run ones


def test_no_run_blocks_are_the_ones_that_need_network_or_install():
    """Skipping is deliberate: each skipped block installs, downloads or talks to a server."""
    markers = ("pip install", "google/", "tfhub.dev", "docker run", "curl ", "localhost")
    for block in all_blocks():
        if "no-run" in block["flags"]:
            assert any(m in block["source"] for m in markers), (
                f"{where(block)} is marked no-run but needs neither network nor an install")


def test_the_fence_flags_are_dropped_when_the_site_is_built():
    """Python-Markdown would not render a fence whose info string has more than a language."""
    sys.path.insert(0, str(ROOT / "tools"))
    import docs_hooks

    page = "```python no-run\nx = 1\n```\n\n```bash standalone\ny\n```\n\n  ```python\nz\n  ```\n"
    assert docs_hooks.on_page_markdown(page) == "```python\nx = 1\n```\n\n```bash\ny\n```\n\n  ```python\nz\n  ```\n"


def run_blocks(to_run: list[dict], tmp_path: Path):
    """Runs the blocks in order in one fresh interpreter, in a new directory under tmp_path that holds a
    link to the shipped default model; fails naming the file and line of the block that failed."""
    (tmp_path / "blocks.json").write_text(json.dumps(to_run), encoding="utf-8")
    work = tmp_path / "cwd"
    (work / "saved_models").mkdir(parents=True)
    if (ROOT / "saved_models" / "fusion").is_dir():
        os.symlink(ROOT / "saved_models" / "fusion", work / "saved_models" / "fusion")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TF_BERT_SEQGEN_OFFLINE": "1", "KERAS_BACKEND": "tensorflow",
           "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-c", DRIVER, str(ROOT), str(tmp_path / "blocks.json")],
                            cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    print(result.stdout[-6000:])
    assert result.returncode == 0, (
        f"a documented example failed (the last '=== FILE line N' names it):\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    assert result.stdout.count("=== ok in") == len(to_run)


@pytest.mark.large
def test_docs_examples_run(tmp_path):
    run_blocks([b for b in all_blocks() if chained(b)], tmp_path)


def test_ci_runs_the_readme_test_command():
    text = README.read_text(encoding="utf-8")
    commands = [line.strip() for b in blocks(text) if b["language"] == "bash"
                for line in b["source"].splitlines() if "python -m pytest" in line]
    assert commands == [TEST_COMMAND], commands
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert TEST_COMMAND in ci_lines, ".ci/run must run the README's test command verbatim"
    assert LARGE_TIER_COMMAND in ci_lines and LARGE_TIER_COMMAND in text, "CI runs the large tier the README names"
    assert DOCS_BUILD_COMMAND in ci_lines, ".ci/run builds the documentation site strictly"
    assert any(line.strip().startswith(RUN_COMMAND) for b in blocks(text) for line in b["source"].splitlines()), \
        "the README's set-up runs the main job with `pip install -e . && tf-bert-seqgen generate`"


def test_readme_is_a_short_introduction():
    """The README is the package's long description and the first page a user reads: the reference lives
    on the site, the figures in benchmarks/RESULTS.md."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, f"README.md has {len(text.splitlines())} lines"
    assert len([b for b in blocks(text) if runnable(b)]) == 3, "three short examples"
    linked = set(re.findall(r"\]\((docs/[\w/.-]+\.md)", text))
    assert {str(p.relative_to(ROOT)) for p in nav_pages() if "api" not in p.parts} - linked <= {
        "docs/index.md", "docs/results.md", "docs/changelog.md"}, "the README links every guide"
    assert 'long_description=open(os.path.join(HERE, "README.md")' in (ROOT / "setup.py").read_text(encoding="utf-8")


def _public_modules_and_classes():
    """The modules whose names the API reference renders, and the public classes of those modules."""
    import tf_bert_seqgen

    modules = ("config", "tokenizers", "generation", "export", "training", "presets", "metrics",
               "checkpoints.hf", "checkpoints.tfhub", "checkpoints.bert")
    names = set(tf_bert_seqgen.__all__)
    for module_name in modules:
        module = importlib.import_module(f"tf_bert_seqgen.{module_name}")
        public = getattr(module, "__all__", None) or [
            name for name, obj in vars(module).items()
            if inspect.isclass(obj) and obj.__module__ == module.__name__ and not name.startswith("_")]
        names |= {name for name in public if inspect.isclass(getattr(module, name))}
    return sorted(names)


def test_docs_document_every_public_class_and_command():
    from tf_bert_seqgen import cli

    text = "\n".join(path.read_text(encoding="utf-8") for path in documents())
    code = "\n".join(b["source"] for b in all_blocks() if runnable(b))
    missing = [name for name in _public_modules_and_classes() if name not in text]
    assert not missing, f"public classes the documentation does not mention: {missing}"
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    not_run = [c for c in commands if not re.search(rf"^tf-bert-seqgen {c}\b", code, re.M)]
    assert not not_run, f"CLI commands without a runnable example in the documentation: {not_run}"


def test_api_reference_renders_every_public_name():
    """Each top-level name and each public class has its own `::: tf_bert_seqgen.<module>.<Name>` entry,
    and every entry names an object that exists (mkdocs build --strict would fail later, less clearly)."""
    import tf_bert_seqgen

    entries = [m for p in nav_pages() if "api" in p.parts for m in API_DIRECTIVE.findall(p.read_text(encoding="utf-8"))]
    rendered = {entry.rsplit(".", 1)[-1] for entry in entries}
    missing = [name for name in _public_modules_and_classes() if name not in rendered]
    assert not missing, f"public names without an API reference entry: {missing}"
    assert set(tf_bert_seqgen.__all__) <= rendered
    for entry in entries:
        module_name, _, attribute = entry.rpartition(".")
        try:
            importlib.import_module(entry)
        except ImportError:
            assert hasattr(importlib.import_module(module_name), attribute), f"no object {entry}"

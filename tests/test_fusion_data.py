"""Tests of the DiscoFuse-style fusion data: the splitting rules, the shipped files and their rebuild."""

import filecmp
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tf_bert_seqgen.data import FUSION_DIR, FUSION_SPLITS, load_fusion_split

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDER = os.path.join(REPO_ROOT, "tools", "build_fusion.py")  # a build script, not installed with the package


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_fusion", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bf = _load_builder()


@pytest.mark.parametrize(
    "rule, fused, split",
    [
        ("but", "The file is opened lazily, but the header is read at once.",
         "The file is opened lazily. The header is read at once."),
        ("and", "The buffer is flushed first, and the socket is closed afterwards.",
         "The buffer is flushed first. The socket is closed afterwards."),
        ("so", "The lock is reentrant, so the same thread can acquire it twice.",
         "The lock is reentrant. The same thread can acquire it twice."),
        ("semicolon", "The queue is bounded; it blocks when it is full.",
         "The queue is bounded. It blocks when it is full."),
        ("adverb", "The value must be positive; otherwise, a ValueError is raised.",
         "The value must be positive. A ValueError is raised."),
        ("adverb", "The name must be unique; however the check happens late.",
         "The name must be unique. The check happens late."),
        ("because", "The call returns early because the cache already holds the result.",
         "The call returns early. The cache already holds the result."),
        ("because", "Since the data is immutable, it can be shared between threads.",
         "The data is immutable. It can be shared between threads."),
        ("unless", "The connection stays open unless the server closes it.",
         "The connection stays open. The server closes it."),
        ("although", "Although the method is public, it is not meant for users.",
         "The method is public. It is not meant for users."),
        ("although", "The result is exact, though it may be slow to compute.",
         "The result is exact. It may be slow to compute."),
        ("if", "If the path does not exist, an empty list is returned.",
         "The path does not exist. An empty list is returned."),
        ("if", "If the argument is omitted, then the default timeout is used.",
         "The argument is omitted. The default timeout is used."),
        ("if", "If the stream is closed, raise a ValueError instead.",
         "The stream is closed. Raise a ValueError instead."),
        ("when", "When the timer expires, the callback is invoked once.",
         "The timer expires. The callback is invoked once."),
    ],
)
def test_each_rule_splits_its_example(rule, fused, split):
    assert bf.split_sentence(fused) == (rule, split)


@pytest.mark.parametrize(
    "sentence",
    [
        "This supports lists, tuples, and other sequences of any length.",  # a list, not two clauses
        "The value is not an integer here, but a decimal string.",  # "not X, but Y"
        "If the path exists and is a directory, but not a link, it is removed.",  # two connectives
        "The default is used, so that callers need not pass it every time.",  # "so that": purpose
        "When called with no arguments, the function returns the current value.",  # no subject in A
        "It is cached for speed, and the cost of a single lookup.",  # second half has no verb
        "There are no connectives at all in this perfectly ordinary sentence.",
    ],
)
def test_unsplittable_sentences_are_skipped(sentence):
    assert bf.split_sentence(sentence) is None


def test_sentence_extraction_keeps_prose_only():
    doc = """Summary line that is far too short.

    The reader keeps a small buffer of decoded characters in memory. See https://example.org for more
    information about this particular thing. Call read_all(size) to read everything at once now.

    Example::

        If you indent this line, the docstring treats it as a literal code block here.

    >>> If the example is run, the interpreter prints the expected result right here.

    - If the list item is long enough,
      it counts as a prose sentence like any other.

    The reader keeps a small buffer of decoded characters in memory.
    """
    assert bf.extract_sentences([doc, doc]) == [
        "If the list item is long enough, it counts as a prose sentence like any other.",
        "The reader keeps a small buffer of decoded characters in memory.",
    ]


def _read_tsv(split):
    with open(os.path.join(FUSION_DIR, f"{split}.tsv"), encoding="utf-8") as f:
        return f.read().split("\n")[:-1]  # the file ends with a newline


def test_shipped_splits_are_well_formed():
    for split in FUSION_SPLITS:
        lines = _read_tsv(split)
        assert lines, split
        for line in lines:
            source, target = line.split("\t")  # exactly two columns
            assert source == source.strip() and target == target.strip() and "\r" not in line
            first, second = source.split(". ")  # exactly two sentences
            assert first[:1].isupper() or first[:1] in "'\"(", source
            assert second[:1].isupper() or second[:1] in "'\"(", source
            assert second.endswith(".") and target[-1] in ".!?", line
            assert bf.split_sentence(target)[1] == source  # the rules reproduce every row


def test_shipped_splits_are_disjoint_and_sized():
    pairs = {split: load_fusion_split(split) for split in FUSION_SPLITS}
    targets = {split: {t for _, t in rows} for split, rows in pairs.items()}
    sources = {split: {s for s, _ in rows} for split, rows in pairs.items()}
    for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not targets[a] & targets[b] and not sources[a] & sources[b], (a, b)
    assert all(len(targets[s]) == len(pairs[s]) for s in FUSION_SPLITS)  # no duplicates inside a split
    assert len(pairs["train"]) > 4 * len(pairs["dev"]) > 0 and len(pairs["test"]) > 0
    assert sum(os.path.getsize(os.path.join(FUSION_DIR, f)) for f in os.listdir(FUSION_DIR)) < 5_000_000


def test_loader_returns_pairs_and_rejects_unknown_split():
    rows = load_fusion_split("dev")
    assert all(isinstance(r, tuple) and len(r) == 2 for r in rows)
    assert rows == [tuple(line.split("\t")) for line in _read_tsv("dev")]
    with pytest.raises(ValueError, match="unknown split"):
        load_fusion_split("validation")


def test_readme_counts_match_files():
    with open(os.path.join(FUSION_DIR, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    counts = [len(load_fusion_split(s)) for s in FUSION_SPLITS]
    assert f"| {' | '.join(map(str, counts))} | {sum(counts)} |" in readme


def test_split_assignment_ignores_other_sentences():
    sentences = ["The lock is reentrant, so the same thread can acquire it twice.",
                 "If the path does not exist, an empty list is returned."]
    alone = bf.build_examples(sentences[:1])
    together = bf.build_examples(sentences)
    split_alone = next(name for name, rows in alone.items() if rows)
    assert alone[split_alone][0] in together[split_alone]


def _built_with():
    """(version, platform) that built the shipped files, as the README records them."""
    with open(os.path.join(FUSION_DIR, "README.md"), encoding="utf-8") as f:
        match = re.search(r"Built with Python (\S+) on `(\w+)`", f.read())
    return match.group(1), match.group(2)


def _build(out):
    subprocess.run([sys.executable, BUILDER, "--out", str(out)],
                   cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)


@pytest.mark.slow
def test_rebuild_is_deterministic_and_reproduces_shipped_files(tmp_path):
    """On the interpreter that built the shipped files, a rebuild is byte-identical to them. Docstrings
    change between Python versions, so elsewhere the check is that two rebuilds are identical."""
    version, platform = _built_with()
    here = ".".join(map(str, sys.version_info[:3]))
    names = ["train.tsv", "dev.tsv", "test.tsv", "README.md"]
    _build(tmp_path / "fusion")
    assert sorted(os.listdir(tmp_path / "fusion")) == sorted(names)
    if (version, platform) == (here, sys.platform):
        expected_dir = FUSION_DIR
    else:
        expected_dir = tmp_path / "again"
        _build(expected_dir)
    match, mismatch, errors = filecmp.cmpfiles(expected_dir, tmp_path / "fusion", names, shallow=False)
    assert mismatch == [] and errors == [], "rebuild differs: run python tools/build_fusion.py"

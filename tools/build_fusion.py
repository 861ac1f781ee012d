"""Builds a small DiscoFuse-style sentence-fusion data set from the standard library's docstrings.

DiscoFuse (Geva et al., 2019) takes one real sentence that contains a discourse connective, splits it
into two sentences by rule and removes the connective; a model learns to fuse the pair back. We do the
same on English prose that ships with every Python: the docstrings of the standard library.

    python tools/build_fusion.py --out tf_bert_seqgen/data/fusion

Writes train.tsv / dev.tsv / test.tsv (source<TAB>target, no header) and README.md. Docstrings are
read in a fresh interpreter without site-packages, so the output depends only on the Python build and
is byte-for-byte reproducible with it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import inspect
import io
import json
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import textwrap
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator

SEED = "discofuse-stdlib-v1"  # mixed into the split hash: changing it reshuffles the splits
SPLITS = (("train", 80), ("dev", 10), ("test", 10))  # percentages, assigned per target sentence

# Modules with side effects on import (open a browser, print, start a GUI, write grammar caches into
# the install as lib2to3 does) or that are not documentation (test suites, the running script).
# pydoc_data is read on its own, below.
_SKIP_MODULES = {"antigravity", "this", "tkinter", "_tkinter", "idlelib", "turtle", "turtledemo", "test",
                 "lib2to3", "__main__", "__hello__", "__phello__", "pydoc_data"}
_SKIP_PARTS = {"test", "tests", "idle_test", "__main__"}

# -- Sentence extraction ------------------------------------------------------------------------------

_MIN_WORDS, _MAX_WORDS = 8, 40
# Plain prose only: letters, digits, spaces and light punctuation. This rejects code (`=`, `_`, `*`,
# backticks, colons), URLs and reST markup in one test; parentheses and quotes are checked for balance.
_PROSE = re.compile(r"[A-Za-z0-9 ,;'\".()-]+")
_DOTTED_NAME = re.compile(r"\w\.\w")  # os.path, e.g., 3.11: names and abbreviations, not sentence ends
_CALL = re.compile(r"\w\(|\(\)")  # f(x), f(): code, where a prose parenthesis follows a space
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_BULLET = re.compile(r"^(?:[-*+\u2022]|\d+\.) +")
_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-"})


def _paragraphs(doc: str) -> Iterator[str]:
    """Yields the prose paragraphs of a docstring, list markers removed and lines joined.

    Examples, literal blocks (after a paragraph ending with a colon) and blocks whose lines are not
    aligned (code, tables, nested structures) are skipped: joining their lines would garble them.
    """
    after_colon = False
    for block in re.split(r"\n\s*\n", inspect.cleandoc(doc.translate(_TYPOGRAPHY))):
        indented, text = block[:1].isspace(), textwrap.dedent(block)
        text = textwrap.dedent(_BULLET.sub(lambda m: " " * len(m.group()), text, count=1))
        skip = (indented and after_colon) or ">>>" in text or any(line[:1].isspace() for line in text.split("\n"))
        after_colon = text.rstrip().endswith(":")
        if not skip:
            yield " ".join(text.split())


def _balanced(text: str) -> bool:
    """True when parentheses nest properly and double quotes pair up."""
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0 and text.count('"') % 2 == 0


def _is_clean(sentence: str) -> bool:
    """True for a plain English sentence of reasonable length ending with a period."""
    words = sentence.split()
    return (
        _MIN_WORDS <= len(words) <= _MAX_WORDS
        and sentence[0].isupper()
        and sentence.endswith(".")
        and _PROSE.fullmatch(sentence) is not None
        and not _DOTTED_NAME.search(sentence)
        and not _CALL.search(sentence)
        and _balanced(sentence)
        and sum(c.isalpha() for c in sentence) >= 0.75 * sum(not c.isspace() for c in sentence)
        and ".." not in sentence
        and '""' not in sentence
        and not sentence[:-1].rstrip().endswith((",", ";"))
    )


def extract_sentences(docs: Iterable[str]) -> list[str]:
    """Clean, deduplicated sentences from docstrings, sorted (so the result ignores input order)."""
    found = set()
    for doc in docs:
        for paragraph in _paragraphs(doc):
            found.update(s for s in _SENTENCE_END.split(paragraph) if _is_clean(s))
    return sorted(found)


# -- Docstring collection -----------------------------------------------------------------------------


def _stdlib_module_names() -> list[str]:
    """Standard-library modules and submodules, skipping side-effect and test modules."""
    names = []
    for top in sorted(sys.stdlib_module_names):
        if top not in _SKIP_MODULES and "test" not in top:  # _testcapi & co. are CPython's own tests
            names.append(top)
            names.extend(_submodules(top))
    return sorted(set(names))


def _submodules(package_name: str) -> Iterator[str]:
    """Names of a package's submodules, recursively; test packages are skipped before any import."""
    package = _quiet_import(package_name)
    for info in pkgutil.iter_modules(getattr(package, "__path__", None) or []):
        if info.name not in _SKIP_PARTS:
            name = f"{package_name}.{info.name}"
            yield name
            if info.ispkg:
                yield from _submodules(name)


def _quiet_import(name: str):
    """Imports a module with warnings and prints silenced; None when it does not import here."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - platform modules raise anything, some even SystemExit
            return None


def _documented(namespace: object) -> Iterator[object]:
    """Classes, routines and properties of a module or class namespace, in name order.

    Private and dunder members are included: their docstrings are prose like any other.
    """
    for _, value in sorted(vars(namespace).items()):
        if inspect.isclass(value) or inspect.isroutine(value) or isinstance(value, property):
            yield value


def _doc(obj: object) -> str:
    """The object's own docstring ('' if none; some C types expose a descriptor instead)."""
    doc = getattr(obj, "__doc__", None)
    return doc if isinstance(doc, str) else ""


def stdlib_docstrings() -> Iterator[str]:
    """Docstrings of standard-library modules and of their classes, functions, methods and properties.

    Also yields pydoc's help topics (`pydoc_data.topics`: the language reference that `help()` shows).
    Objects re-exported by several modules are visited once.
    """
    seen: set[int] = set()
    for name in _stdlib_module_names():
        module = _quiet_import(name)
        if module is None:
            continue
        yield _doc(module)
        for member in _documented(module):
            if id(member) in seen:
                continue
            seen.add(id(member))
            yield _doc(member)
            if inspect.isclass(member):
                yield from (_doc(attr) for attr in _documented(member))
    from pydoc_data.topics import topics

    yield from (topics[key] for key in sorted(topics))


def stdlib_sentences() -> list[str]:
    """Clean sentences of the standard library's documentation, read in a fresh interpreter.

    `-I -S` leaves out site-packages and the environment: third-party imports in the calling process
    (TensorFlow registers classes with stdlib ABCs, for one) would otherwise add their own docstrings.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sentences.json")
        command = [sys.executable, "-I", "-S", os.path.abspath(__file__), "--sentences-json", path]
        # Imported modules may print; only the JSON file carries the result.
        result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"sentence extraction failed:\n{result.stderr[-2000:]}")
        with open(path, encoding="utf-8") as f:
            return json.load(f)


# -- Splitting rules ----------------------------------------------------------------------------------

# Words that open an independent clause. The second half of an inner connective must start with one,
# so "A, B, and C" lists and "not X, but Y" phrases are not split into non-sentences.
_SUBJECTS = (
    "the this that these those it its they their there we you he she a an each every all some no any "
    "other such both many most one none nothing either neither"
).split()
# Determiners open a noun phrase, so a following word in -s/-ed is a noun or adjective, not a verb.
_DETERMINERS = set("the a an these those each every all some no any other such both many most its their".split())
_ADVERBS = "however|therefore|otherwise|thus|hence|instead|consequently|nevertheless|moreover|furthermore"
_AUX = set(
    "is are was were be been has have had do does did can could will would may might must should shall "
    "cannot can't won't doesn't don't isn't aren't wasn't it's".split()
)
# Placeholders of the rule templates: the halves A and B (A1: a half without commas, so that the cut
# falls on the clause's own comma; S: a half opening with a subject word) and ADV, a discourse adverb.
_SLOTS = {
    "{A}": r"(?P<a>.+?)",
    "{A1}": r"(?P<a>[^,]+)",
    "{B}": r"(?P<b>.+)",
    "{S}": rf"(?P<b>(?:(?:{'|'.join(_SUBJECTS)})\b|[A-Z]).+)",
    "{ADV}": rf"(?:{_ADVERBS})",
}
# name -> templates over the whole sentence. Inner connectives need S; after a sentence-initial one
# ("If A, B.") B is free, since docstrings often go on with an imperative ("If A, raise B.").
RULE_TEMPLATES = {
    "but": ["{A}, but {S}"],
    "and": ["{A1}, and {S}"],
    "so": ["{A}, so (?!that ){S}"],
    "semicolon": ["{A}; (?!{ADV}\\b){S}"],
    "adverb": ["{A}; {ADV},? {B}", "{A1}, otherwise,? {B}"],
    "because": ["{A} because {S}", "(?:Because|Since) {A1}, {B}"],
    "unless": ["{A}(?<!,) unless {S}"],  # ", unless X, Y" is parenthetical: cutting there leaves "A,"
    "although": ["{A}, (?:although|though) {S}", "(?:Although|Though) {A1}, {B}"],
    "if": ["If {A1}, (?:then )?{B}"],
    "when": ["When {A1}, {B}"],
}


def _compile(template: str) -> re.Pattern:
    for slot, pattern in _SLOTS.items():
        template = template.replace(slot, pattern)
    return re.compile(template)


RULES: dict[str, list[re.Pattern]] = {
    name: [_compile(t) for t in templates] for name, templates in RULE_TEMPLATES.items()
}
# Every place where a rule could cut; a sentence must contain exactly one.
_CONNECTIVES = re.compile(
    r", (?:but|and|so|although|though|otherwise) |; | (?:because|unless) |^(?:Because|Since|Although|Though|If|When) "
)
_MIN_HALF_WORDS = 3


def _is_clause(text: str) -> bool:
    """A cheap clause test (no tagger offline): no leading participle ("called with ...", "using ..."),
    and a finite verb: an auxiliary, or a word in -s or -ed that does not follow a determiner
    ("it returns" but not "the arguments" or "the encoded string")."""
    if re.match(r"[a-z]+(?:ed|ing)\b", text):
        return False
    words = text.lower().rstrip(".").split()
    return any(
        word in _AUX
        or (i > 0 and words[i - 1] not in _DETERMINERS and re.fullmatch(r"[a-z]+(?:[^su]s|ed)", word))
        for i, word in enumerate(words)
    )


def _is_imperative(text: str) -> bool:
    """Docstrings go on with commands ("If A, raise B."): a lowercase first word that is neither a
    subject word nor a participle."""
    first = text.split()[0]
    return first.islower() and first not in _SUBJECTS and not re.fullmatch(r"[a-z]+(?:ed|ing)", first)


def _as_sentence(clause: str) -> str:
    """Capitalises the first letter and ends the clause with exactly one period."""
    clause = clause.strip().rstrip(".,;")
    return clause[0].upper() + clause[1:] + "."


def split_sentence(sentence: str) -> tuple[str, str] | None:
    """Splits a fused sentence into (rule name, "A. B.") or returns None when no rule applies cleanly.

    A sentence with more than one connective is skipped: which one a model should restore would be
    ambiguous, and a half could itself hold a connective. Both halves must read as sentences.
    """
    if len(_CONNECTIVES.findall(sentence)) != 1:
        return None
    for name, patterns in RULES.items():
        for pattern in patterns:
            match = pattern.fullmatch(sentence)
            if match is None:
                continue
            a, b = _as_sentence(match["a"]), _as_sentence(match["b"])
            # A half opening with a digit was cut inside a list of numbers ("not 1, 2, or 4 bytes").
            if min(len(a.split()), len(b.split())) < _MIN_HALF_WORDS or b[0].isdigit():
                return None
            if not (_is_clause(match["a"]) and (_is_clause(match["b"]) or _is_imperative(match["b"]))):
                return None
            return (name, f"{a} {b}") if _balanced(a) and _balanced(b) else None
    return None


# -- Data set -----------------------------------------------------------------------------------------


def _split_of(target: str) -> str:
    """Assigns a split from a hash of the target, so a sentence keeps its split when others change."""
    bucket = int(hashlib.sha256(f"{SEED}:{target}".encode()).hexdigest(), 16) % 100
    for name, share in SPLITS:
        if bucket < share:
            return name
        bucket -= share
    raise AssertionError("split shares must sum to 100")


def _order_key(target: str) -> str:
    """A fixed pseudo-random order inside a split (sorted order would group sentences by first word)."""
    return hashlib.sha256(f"{SEED}:order:{target}".encode()).hexdigest()


def build_examples(sentences: Iterable[str]) -> dict[str, list[tuple[str, str, str]]]:
    """Maps each split to its (rule, source, target) examples in a fixed order."""
    splits: dict[str, list[tuple[str, str, str]]] = {name: [] for name, _ in SPLITS}
    for target in sorted(set(sentences)):
        result = split_sentence(target)
        if result is not None:
            splits[_split_of(target)].append((result[0], result[1], target))
    for examples in splits.values():
        examples.sort(key=lambda ex: _order_key(ex[2]))
    return splits


def _readme(splits: dict[str, list[tuple[str, str, str]]], num_sentences: int) -> str:
    """The data card: provenance, rules and counts."""
    per_rule = {name: Counter(rule for rule, _, _ in examples) for name, examples in splits.items()}
    rule_rows = "\n".join(
        f"| {rule} | {'<br>'.join(f'`{t}`' for t in RULE_TEMPLATES[rule]).replace('|', chr(92) + '|')} | "
        + " | ".join(str(per_rule[name][rule]) for name, _ in SPLITS)
        + f" | {sum(per_rule[name][rule] for name, _ in SPLITS)} |"
        for rule in RULES
    )
    first = {}  # one real example per rule, from train
    for rule, source, target in splits["train"]:
        first.setdefault(rule, (source, target))
    examples = "\n".join(f"- {rule}: `{src}` -> `{tgt}`" for rule, (src, tgt) in sorted(first.items()))
    total = sum(len(ex) for ex in splits.values())
    header = " | ".join(name for name, _ in SPLITS)
    counts = " | ".join(str(len(splits[name])) for name, _ in SPLITS)
    version = ".".join(map(str, sys.version_info[:3]))
    return f"""# DiscoFuse-style sentence fusion from Python docstrings

Generated by `python tools/build_fusion.py --out tf_bert_seqgen/data/fusion`; do not edit
by hand. Built with Python {version} on `{sys.platform}`: rebuilding with the same Python build
reproduces these files byte for byte (other versions have other docstrings).

Each line of `train.tsv`, `dev.tsv` and `test.tsv` is `source<TAB>target`, UTF-8, no header.
The target is a real sentence from the standard library's documentation that contains a discourse
connective; the source is that sentence split into two by a rule that drops the connective, as in
DiscoFuse (Geva et al., 2019). A model must fuse the two sentences and restore the connective.
Load a split with `tf_bert_seqgen.data.load_fusion_split("train")`.

## How it was built
1. In a fresh interpreter without site-packages (`python -I -S`), import every standard-library module
   and submodule, skipping test suites and modules with side effects on import (`antigravity`, `this`,
   `tkinter`, `idlelib`, `turtle`, `turtledemo`, `lib2to3`, ...), and read the docstrings of each module
   and of the classes, functions, methods and properties it holds, plus pydoc's help topics
   (`pydoc_data.topics`, the language reference shown by `help()`).
2. Keep prose paragraphs (no `>>>` examples, literal blocks or unaligned lines; list markers removed),
   split them into sentences and keep those of {_MIN_WORDS}-{_MAX_WORDS} words that start with a capital, end
   with a period and use only ASCII letters, digits, spaces, `, ; ' . -`, balanced parentheses and
   double quotes, with no dotted names or calls like `f(x)` (code, URLs and markup fail these
   tests); deduplicate. {num_sentences} sentences survive.
3. Keep sentences with exactly one connective that a rule below matches. The second clause of an inner
   connective must open with a subject word; each half needs {_MIN_HALF_WORDS}+ words and must pass a cheap clause
   test (no leading participle; an auxiliary or a word in -s/-ed not after a determiner), or, for the
   second half, read as an imperative ("If A, raise B."). Each half is capitalised and ends with a
   period.
4. Assign each sentence to a split by a SHA-256 hash of the sentence (seed `{SEED}`), 80/10/10, so the
   splits are disjoint by target sentence; order within a split follows a second hash.

## Counts
| {header} | total |
|---|---|---|---|
| {counts} | {total} |

## Rules
Templates are regular expressions over the whole sentence; `{{A}}` and `{{B}}` become the two sentences,
`{{A1}}` is a half without commas, `{{S}}` a half that opens with a subject word
({", ".join(_SUBJECTS)} or a capitalised word), `{{ADV}}` one of {_ADVERBS.replace("|", ", ")}.

| rule | templates | {header} | total |
|---|---|---|---|---|---|
{rule_rows}

## Examples (source -> target)
{examples}
"""


def build(out_dir: str, sentences: list[str] | None = None) -> dict[str, int]:
    """Builds the data set into `out_dir` (from the standard library unless `sentences` are given) and
    returns the number of examples per split."""
    sentences = stdlib_sentences() if sentences is None else sentences
    splits = build_examples(sentences)
    os.makedirs(out_dir, exist_ok=True)
    for name, examples in splits.items():
        with open(os.path.join(out_dir, f"{name}.tsv"), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{_clean_field(src)}\t{_clean_field(tgt)}\n" for _, src, tgt in examples)
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(_readme(splits, len(sentences)))
    return {name: len(examples) for name, examples in splits.items()}


def _clean_field(text: str) -> str:
    """Tabs and newlines would break the TSV layout; the extraction already excludes them."""
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "fusion"))
    parser.add_argument("--sentences-json", help=argparse.SUPPRESS)  # internal: the clean-interpreter step
    args = parser.parse_args(argv)
    if args.sentences_json:
        with open(args.sentences_json, "w", encoding="utf-8") as f:
            json.dump(extract_sentences(stdlib_docstrings()), f)
        return
    counts = build(args.out)
    print(f"wrote {sum(counts.values())} examples to {args.out}: {counts}")


if __name__ == "__main__":
    main()

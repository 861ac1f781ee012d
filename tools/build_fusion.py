"""Builds a DiscoFuse-style sentence-fusion data set from English prose that ships offline.

DiscoFuse (Geva et al., 2019) takes one real sentence that contains a discourse connective, splits it
into two sentences by rule and removes the connective; a model learns to fuse the pair back. We do the
same on several kinds of English prose: the standard library's docstrings (docs), Debian's plain-text
manuals (manuals), WordNet's example sentences and Webster 1913 (dictionary), the Devil's Dictionary and
the Jargon File (glossaries), and fortune files (quotations, held out whole). tools/fusion_sources.py
reads the packages; this file finds sentences, splits them and writes the data set.

    apt-get install -y fortunes-min fortunes debian-reference-en gnu-standards python3.11-doc \
        developers-reference debian-faq debian-policy git-doc debian-handbook python-django-doc wordnet-base \
        dict-gcide dict-devil dict-jargon
    python tools/build_fusion.py --out tf_bert_seqgen/data/fusion

Writes train / dev / test / heldout .tsv (source<TAB>target, no header), a parallel .origin.tsv per split
(kind<TAB>package<TAB>version<TAB>entry) and README.md. The output depends only on the Python build and
the package versions, and is byte-for-byte reproducible with them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import importlib.util
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


# Early Modern English (the quotations of Webster 1913 come from Shakespeare and Milton): not the
# everyday English a fusion model should learn to write.
_ARCHAIC = set("thou thee thy thine hath doth dost hast shalt wilt canst ye unto 'tis ere nay methinks "
               "wouldst couldst shouldst didst fain whence hither thither wherefore betwixt oft 'twas 't".split())
# A capitalised function word after a lowercase word: a period lost between two sentences ("leave some
# blank For some fields").
_LOST_PERIOD = re.compile(r"[a-z,] (?:The|This|If|For|It|You|We|When|But|And|In|To)\b")
# A period after these is no sentence end: the pieces are joined again (and the sentence then rejected).
_ABBREVIATION = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Gen|Col|Capt|Lt|Rev|Hon|vs|etc|No|Vol|Co|Inc|Ltd)|"
                           r"(?<![\w.])[A-Z])\.$")


def _split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph: cut after . ! ? and a space, except after an abbreviation or an initial."""
    sentences: list[str] = []
    for piece in _SENTENCE_END.split(paragraph):
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] += " " + piece
        else:
            sentences.append(piece)
    return sentences


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
        and "--" not in sentence
        and ". " not in sentence  # an abbreviation inside ("Mr. Smith"): see _split_sentences
        and '""' not in sentence
        and not _ARCHAIC & set(re.findall(r"[a-z']+", sentence.lower()))
        and not _LOST_PERIOD.search(sentence)
        and not sentence[:-1].rstrip().endswith((",", ";"))
    )


def extract_sentences(docs: Iterable[str]) -> list[str]:
    """Clean, deduplicated sentences from docstrings, sorted (so the result ignores input order)."""
    return sorted(extract_sentence_entries(("", doc) for doc in docs))


def extract_sentence_entries(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Clean sentences of (entry, text) items, each mapped to the first entry that holds it."""
    found: dict[str, str] = {}
    for entry, doc in items:
        for paragraph in _paragraphs(doc):
            previous = None
            for sentence in _split_sentences(paragraph):
                clean = _is_clean(sentence)
                if clean:
                    found.setdefault(sentence, entry)
                    # Two sentences, the second opening with a discourse adverb: the "forward" rule's target.
                    if previous and _FORWARD.match(sentence) and len(f"{previous} {sentence}".split()) <= _MAX_WORDS:
                        found.setdefault(f"{previous} {sentence}", entry)
                previous = sentence if clean else None
    return found


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


def stdlib_docstrings() -> Iterator[tuple[str, str]]:
    """(module name, docstring) for standard-library modules and their classes, functions, methods and
    properties (an object re-exported by several modules is visited once, under the first), and
    ("pydoc_data.topics:<topic>", text) for pydoc's help topics (the language reference `help()` shows).
    """
    seen: set[int] = set()
    for name in _stdlib_module_names():
        module = _quiet_import(name)
        if module is None:
            continue
        yield name, _doc(module)
        for member in _documented(module):
            if id(member) in seen:
                continue
            seen.add(id(member))
            yield name, _doc(member)
            if inspect.isclass(member):
                yield from ((name, _doc(attr)) for attr in _documented(member))
    from pydoc_data.topics import topics

    yield from ((f"pydoc_data.topics:{key}", topics[key]) for key in sorted(topics))


def stdlib_sentences() -> dict[str, str]:
    """Clean sentences of the standard library's documentation -> the module that holds each, read in a
    fresh interpreter.

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
    "other such both many most one none nothing either neither my our your his her"
).split()
# Determiners open a noun phrase, so a following word in -s/-ed is a noun or adjective, not a verb.
_DETERMINERS = set("the a an these those each every all some no any other such both many most its their my our your his "
                   "her".split())
_ADVERBS = "however|therefore|otherwise|thus|hence|instead|consequently|nevertheless|moreover|furthermore"
# Adverbs that link a sentence to the one before ("A. However, B."), as DiscoFuse's forward connectives.
_FORWARD_ADVERBS = ("However|Therefore|Thus|Hence|Instead|Otherwise|Consequently|Nevertheless|Moreover|Furthermore|"
                    "Meanwhile|Similarly|Likewise|In addition|As a result|In fact|For example|For instance")
_FORWARD = re.compile(rf"(?:{_FORWARD_ADVERBS}), ")
_AUX = set(
    "is are was were be been has have had do does did can could will would may might must should shall "
    "cannot can't won't doesn't don't isn't aren't wasn't it's am didn't couldn't wouldn't shouldn't haven't hasn't "
    "weren't i'm you're we're they're he's she's that's there's i've you've we've they've i'll you'll we'll they'll "
    "he'll she'll it'll i'd you'd he'd she'd we'd they'd".split()
)
# Common irregular past tenses: narrative prose ("she knew", "they went") has no -ed on its verbs.
_IRREGULAR_PAST = set(
    "said went came got made knew thought took saw gave found told felt left kept began ran became brought stood sat "
    "heard meant lost paid met held wrote spoke grew drew fell broke chose forgot understood taught bought sought "
    "caught fought won wore sold sent spent built lay rose drove ate drank sang slept woke".split()
)
# A personal pronoun opening a clause is its subject, so the next word is (nearly always) its verb.
_PRONOUNS = set("i you we they he she".split())
# Placeholders of the rule templates: the halves A and B (A1: a half without commas, so that the cut
# falls on the clause's own comma; S: a half opening with a subject word) and ADV, a discourse adverb.
_SLOTS = {
    "{A}": r"(?P<a>.+?)",
    "{A1}": r"(?P<a>[^,]+)",
    "{B}": r"(?P<b>.+)",
    "{S}": rf"(?P<b>(?:(?:{'|'.join(_SUBJECTS)})\b|[A-Z]).+)",
    "{ADV}": rf"(?:{_ADVERBS})",
    "{FWD}": rf"(?:{_FORWARD_ADVERBS})",
    "{P}": r"(?P<b>(?:I|you|he|she|we|they|it|there)\b.+)",
}
# name -> templates over the whole sentence. Inner connectives need S; after a sentence-initial one
# ("If A, B.") B is free, since docstrings often go on with an imperative ("If A, raise B.").
RULE_TEMPLATES = {
    "but": ["{A}, but {S}", "{A1}(?<!,) but {P}"],
    "and": ["{A1}, and {S}"],
    "so": ["{A}, so (?!that ){S}"],
    "semicolon": ["{A}; (?!{ADV}\\b){S}"],
    "adverb": ["{A}; {ADV},? {B}", "{A1}, otherwise,? {B}"],
    "because": ["{A} because {S}", "(?:Because|Since) {A1}, {B}"],
    "unless": ["{A}(?<!,) unless {S}", "Unless {A1}, {B}"],  # ", unless X, Y" is parenthetical: no cut there
    "although": ["{A}, (?:although|though) {S}", "(?:Although|Though) {A1}, {B}"],
    "if": ["If {A1}, (?:then )?{B}"],
    "when": ["When {A1}, {B}"],
    "yet": ["{A}, yet {S}"],
    "while": ["{A}, (?:while|whereas) {S}", "(?:While|Whereas) {A1}, {B}"],
    "time": ["(?:Once|After|Before|Until|As soon as) {A1}, {B}"],
    "forward": ["{A}\\. {FWD}, {B}"],  # two sentences (see extract_sentence_entries)
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
    r", (?:but|and|so|although|though|otherwise|yet|while|whereas) |; | (?:because|unless|but) "
    r"|^(?:Because|Since|Although|Though|If|When|Unless|While|Whereas|Once|After|Before|Until|As soon as) "
    rf"|\. (?:{_FORWARD_ADVERBS}), "
)
_MIN_HALF_WORDS = 3


# Words in -s that are no verbs, and words after which a word in -s or -ed is a noun or adjective.
_NOT_VERBS = set("and or but of who that which all too alone both this his its hers ours yours theirs thus always "
                 "perhaps sometimes whereas towards besides afterwards nevertheless unless less".split())
_PREPOSITIONS = set("of in on for with by to from at about into than like between among over under".split())
_RELATIVES = set("which who whom whose".split())


def _is_clause(text: str) -> bool:
    """A cheap clause test (no tagger offline): no leading participle ("called with ...", "using ...") or
    subordinator ("as", "whether", "where"),
    and a finite verb: an auxiliary, a common irregular past tense, a word after an opening personal
    pronoun ("we know"), or a word in -s or -ed that does not follow a determiner or a preposition ("it
    returns" but not "the arguments", "the encoded string" or "of interactions"); verbs after a relative
    pronoun (which, who) do not count."""
    if re.match(r"[a-z]+(?:ed|ing)\b|(?i:as|whether|where|such as)\b", text):
        return False  # a participle, or a subordinate clause ("As A, so B.")
    words = text.lower().rstrip(".").split()
    if len(words) > 1 and words[0] in _PRONOUNS and words[1].isalpha() and words[1] not in _NOT_VERBS:
        return True
    # A verb inside a relative clause ("a white pulp which is sweet") is not the clause's own verb.
    words = words[:next((i for i, word in enumerate(words) if word in _RELATIVES), len(words))]
    return any(
        word in _AUX
        or word in _IRREGULAR_PAST
        or (i > 0 and words[i - 1] not in _DETERMINERS | _PREPOSITIONS and word not in _NOT_VERBS
            and re.fullmatch(r"[a-z]+(?:[^su]s|ed)", word))
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
    first = next(i for i, char in enumerate(clause) if char.isalnum())  # past an opening quote or parenthesis
    return clause[:first] + clause[first].upper() + clause[first + 1:] + "."


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
            # A half opening with a digit was cut inside a list of numbers ("not 1, 2, or 4 bytes"), or
            # would start a sentence with a numeral.
            if min(len(a.split()), len(b.split())) < _MIN_HALF_WORDS or a[0].isdigit() or b[0].isdigit():
                return None
            if not (_is_clause(match["a"]) and (_is_clause(match["b"]) or _is_imperative(match["b"]))):
                return None
            return (name, f"{a} {b}") if _balanced(a) and _balanced(b) else None
    return None


# -- Data set -----------------------------------------------------------------------------------------

HELDOUT_KIND = "quotations"  # every pair of this kind goes to heldout.tsv, none to train / dev / test
ALL_SPLITS = tuple(name for name, _ in SPLITS) + ("heldout",)
# (kind, package, reader): the reader takes the fusion_sources module and yields (entry, text). The
# standard library ("python") is read apart, in a clean interpreter. A sentence found in several
# sources keeps the first origin in this order, held-out kind first (so its text never enters training).
SOURCES = (
    ("quotations", "fortunes-min", lambda fs: fs.fortunes("fortunes-min")),
    ("quotations", "fortunes", lambda fs: fs.fortunes("fortunes")),
    ("docs", "python", None),
    ("manuals", "debian-reference-en", lambda fs: fs.manuals("debian-reference-en")),
    ("manuals", "gnu-standards", lambda fs: fs.manuals("gnu-standards")),
    ("manuals", "python3.11-doc", lambda fs: fs.sphinx_sources("python3.11-doc")),
    ("manuals", "developers-reference", lambda fs: fs.sphinx_sources("developers-reference")),
    ("manuals", "debian-faq", lambda fs: fs.manuals("debian-faq")),
    ("manuals", "debian-policy", lambda fs: fs.sphinx_sources("debian-policy")),
    ("manuals", "git-doc", lambda fs: fs.manuals("git-doc", (".txt",))),
    ("manuals", "debian-handbook", lambda fs: fs.html_manuals("debian-handbook", "/usr/share/doc/debian-handbook/html/en-US")),
    ("manuals", "python-django-doc", lambda fs: fs.html_manuals("python-django-doc", "/usr/share/doc/python-django-doc/html")),
    ("dictionary", "wordnet-base", lambda fs: fs.wordnet()),
    ("dictionary", "dict-gcide", lambda fs: fs.gcide()),
    ("glossaries", "dict-devil", lambda fs: fs.dictd_paragraphs("devil")),
    ("glossaries", "dict-jargon", lambda fs: fs.dictd_paragraphs("jargon")),
)
KINDS = tuple(dict.fromkeys(kind for kind, _, _ in SOURCES))
Origin = tuple[str, str, str, str]  # (kind, package, version, entry)


def _fusion_sources():
    """tools/fusion_sources.py, imported by path (this script also runs as `python -I`, without its folder
    on sys.path, and tests load it by path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fusion_sources.py")
    spec = importlib.util.spec_from_file_location("fusion_sources", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def collect_sentences() -> tuple[dict[str, Origin], dict[str, str]]:
    """Clean sentences of every source -> their origin, and the version of each package read."""
    fs = _fusion_sources()
    sentences: dict[str, Origin] = {}
    versions = {}
    for kind, package, reader in SOURCES:
        if reader is None:
            versions[package] = python_version()
            found = stdlib_sentences()
        else:
            versions[package] = fs.package_version(package)
            found = extract_sentence_entries(reader(fs))
        for sentence, entry in found.items():
            sentences.setdefault(sentence, (kind, package, versions[package], entry))
    return sentences, versions


def _split_of(target: str, kind: str) -> str:
    """heldout for the held-out kind; otherwise a split from a hash of the target, so a sentence keeps its
    split when others change."""
    if kind == HELDOUT_KIND:
        return "heldout"
    bucket = int(hashlib.sha256(f"{SEED}:{target}".encode()).hexdigest(), 16) % 100
    for name, share in SPLITS:
        if bucket < share:
            return name
        bucket -= share
    raise AssertionError("split shares must sum to 100")


def _order_key(target: str) -> str:
    """A fixed pseudo-random order inside a split (sorted order would group sentences by first word)."""
    return hashlib.sha256(f"{SEED}:order:{target}".encode()).hexdigest()


Example = tuple[str, str, str, Origin]  # (rule, source, target, origin)


def build_examples(sentences: dict[str, Origin]) -> dict[str, list[Example]]:
    """Maps each split (train, dev, test, heldout) to its examples in a fixed order.

    Two targets can split into the same source ("A, but B." and "A; B."): only the first in sorted
    order is kept, so no source appears twice or in two splits.
    """
    splits: dict[str, list[Example]] = {name: [] for name in ALL_SPLITS}
    seen_sources = set()
    for target in sorted(sentences):
        result = split_sentence(target)
        if result is not None and result[1] not in seen_sources:
            seen_sources.add(result[1])
            origin = sentences[target]
            splits[_split_of(target, origin[0])].append((result[0], result[1], target, origin))
    for examples in splits.values():
        examples.sort(key=lambda ex: _order_key(ex[2]))
    return splits


def _table(rows: dict[str, Counter], columns: Iterable[str]) -> str:
    """A Markdown table of counts: one row per key of `rows`, one column per split, and a total."""
    columns = list(columns)
    lines = [f"| | {' | '.join(columns)} | total |", "|---" * (len(columns) + 2) + "|"]
    for name, counts in rows.items():
        lines.append(f"| {name} | {' | '.join(str(counts[c]) for c in columns)} | {sum(counts[c] for c in columns)} |")
    return "\n".join(lines)


def _readme(splits: dict[str, list[Example]], versions: dict[str, str], num_sentences: int) -> str:
    """The data card: provenance, rules and counts."""
    per_kind = {kind: Counter(name for name, exs in splits.items() for ex in exs if ex[3][0] == kind) for kind in KINDS}
    per_rule = {rule: Counter(name for name, exs in splits.items() for ex in exs if ex[0] == rule) for rule in RULES}
    templates = "\n".join(
        f"| {rule} | {'<br>'.join(f'`{t}`' for t in RULE_TEMPLATES[rule]).replace('|', chr(92) + '|')} |" for rule in RULES
    )
    packages = "\n".join(
        f"| {kind} | {package} | {versions[package]} |" for kind, package, _ in SOURCES
    )
    debian = " ".join(package for _, package, reader in SOURCES if reader is not None)
    examples = []
    for kind in KINDS:  # the first three examples of each kind, in file order
        rows = [ex for name in ALL_SPLITS for ex in splits[name] if ex[3][0] == kind][:3]
        examples.append(f"\n{kind}:\n" + "\n".join(f"- {rule}: `{src}` -> `{tgt}` ({' '.join(o[1:])})"
                                                   for rule, src, tgt, o in rows))
    counts = Counter({name: len(exs) for name, exs in splits.items()})
    return f"""# DiscoFuse-style sentence fusion from offline English prose

Generated by `python tools/build_fusion.py --out tf_bert_seqgen/data/fusion`; do not edit by hand.
Rebuilding with the same Python build and the same package versions (table below) reproduces these
files byte for byte. To rebuild on Debian 12 (bookworm):

```bash no-run
apt-get install -y {debian}
python tools/build_fusion.py --out tf_bert_seqgen/data/fusion
```

Each line of `train.tsv`, `dev.tsv`, `test.tsv` and `heldout.tsv` is `source<TAB>target`, UTF-8, no
header. The target is a real sentence that contains a discourse connective, as its source wrote it
(or, for the `forward` rule, two consecutive sentences, the second opening with a discourse adverb);
the source is that text split into two sentences by a rule that drops the connective, as in DiscoFuse
(Geva et al., 2019). A model must fuse the two sentences and restore the connective.
Line N of `<split>.origin.tsv` tells where line N's target came from: `kind<TAB>package<TAB>version<TAB>entry`
(entry: the module, `file:number`, `file:offset` or `dictionary:headword` inside the package).
Load a split with `tf_bert_seqgen.data.load_fusion_split("train")` (pairs) or
`load_fusion_split("train", with_origin=True)` (source, target, origin).

`train`, `dev` and `test` are one distribution, split 80/10/10 by a hash of the target. `heldout`
is a whole kind of prose that none of them contains: **{HELDOUT_KIND}** (the `fortunes` files:
literature, people, wisdom, humour), for measuring fusion on text unlike anything trained on.

## Sources
| kind | package | version |
|---|---|---|
{packages}

`python` is the standard library of the interpreter that ran the builder (Python {python_version()} on
`{sys.platform}`): module, class, function, method and property docstrings, read in a fresh interpreter
without site-packages (`python -I -S`), skipping test suites and modules with side effects on import
(`antigravity`, `this`, `tkinter`, `idlelib`, `turtle`, `turtledemo`, `lib2to3`, ...), plus pydoc's help
topics. The other packages are Debian's: `fortunes` files (all but {", ".join(sorted(_fusion_sources().FORTUNE_SKIP))};
attributions dropped), the plain-text manuals of `debian-reference-en` and `gnu-standards` and the reStructuredText sources
of the Python 3.11 documentation (`python3.11-doc`: tutorial, HOWTOs, library and language reference)
and of the Debian Developer's Reference and Debian Policy, the Debian FAQ, git's AsciiDoc manuals
(`git-doc`), the paragraphs of the Debian
Administrator's Handbook (en-US) and of the Django 3.2 documentation, the example
sentences in WordNet 3.0 glosses (written without a final period and often in lower case: each gets
its first letter capitalised and a period), the quotations and usage notes of GCIDE (Webster 1913 and
its supplements; quotation authors and source notes dropped; definitions are phrases, not sentences) and the entries of Ambrose Bierce's
Devil's Dictionary and of the Jargon File (dictd databases).

## How it was built
1. Read prose paragraphs (no code examples, literal blocks or unaligned lines; list markers and line
   breaks removed), split them into sentences (not after Mr., Dr., etc. or an initial) and keep those
   of {_MIN_WORDS}-{_MAX_WORDS} words that start with a capital, end with a period and use only ASCII
   letters, digits, spaces, `, ; ' . -` (typographic quotes and dashes made ASCII first), balanced
   parentheses and double quotes, with no dotted names, calls like `f(x)`, `--` or Early Modern English
   words (thou, hath, ...) or a capitalised function word after a lowercase one (a lost period); also
   keep two consecutive clean sentences when the second opens with a forward adverb ("However, ") and
   both hold at most {_MAX_WORDS} words together; deduplicate across sources. {num_sentences} sentences survive.
2. Keep sentences with exactly one connective that a rule below matches. The second clause of an inner
   connective must open with a subject word; each half needs {_MIN_HALF_WORDS}+ words and must pass a cheap clause
   test (no leading participle or subordinator; an auxiliary, a common irregular past tense, a word after
   an opening personal pronoun, or a word in -s/-ed not after a determiner or preposition, before any
   relative pronoun), or, for the second half, read as an
   imperative ("If A, raise B."). Each half is capitalised and ends with a period. When two targets
   give the same source, only the first (sorted) is kept.
3. Put the {HELDOUT_KIND} in `heldout`; assign every other sentence to a split by a SHA-256 hash of the
   sentence (seed `{SEED}`), 80/10/10. The splits are disjoint by target and by source; order within
   a split follows a second hash.

## Counts
{_table({"pairs": counts}, ALL_SPLITS)}

Per kind:

{_table(per_kind, ALL_SPLITS)}

Per rule:

{_table(per_rule, ALL_SPLITS)}

## Rules
Templates are regular expressions over the whole sentence; `{{A}}` and `{{B}}` become the two sentences,
`{{A1}}` is a half without commas, `{{S}}` a half that opens with a subject word
({", ".join(_SUBJECTS)} or a capitalised word), `{{P}}` a half that opens with a personal pronoun,
`{{ADV}}` one of {_ADVERBS.replace("|", ", ")}, `{{FWD}}` one of {_FORWARD_ADVERBS.replace("|", ", ")}.

| rule | templates |
|---|---|
{templates}

## Examples (source -> target, origin)
{"".join(examples)}
"""


def build(out_dir: str, sentences: dict[str, Origin] | None = None, versions: dict[str, str] | None = None) -> dict[str, int]:
    """Builds the data set into `out_dir` (from the installed sources unless `sentences` -> origin and the
    package `versions` are given) and returns the number of examples per split."""
    if sentences is None:
        sentences, versions = collect_sentences()
    splits = build_examples(sentences)
    os.makedirs(out_dir, exist_ok=True)
    for name, examples in splits.items():
        with open(os.path.join(out_dir, f"{name}.tsv"), "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{_clean_field(src)}\t{_clean_field(tgt)}\n" for _, src, tgt, _ in examples)
        with open(os.path.join(out_dir, f"{name}.origin.tsv"), "w", encoding="utf-8", newline="\n") as f:
            f.writelines("\t".join(map(_clean_field, origin)) + "\n" for _, _, _, origin in examples)
    with open(os.path.join(out_dir, "README.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write(_readme(splits, versions or {}, len(sentences)))
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
            json.dump(extract_sentence_entries(stdlib_docstrings()), f, sort_keys=True)
        return
    counts = build(args.out)
    print(f"wrote {sum(counts.values())} examples to {args.out}: {counts}")


if __name__ == "__main__":
    main()

"""Tests of the DiscoFuse-style fusion data: the splitting rules, the source readers, the shipped files
(splits by kind, provenance, sizes) and their rebuild."""

import filecmp
import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tf_bert_seqgen.data import FUSION_DIR, FUSION_HELDOUT, FUSION_SPLITS, FusionOrigin, load_fusion_split

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILDER = os.path.join(REPO_ROOT, "tools", "build_fusion.py")  # a build script, not installed with the package


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_fusion", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bf = _load_builder()
fs = bf._fusion_sources()
ALL_SPLITS = FUSION_SPLITS + (FUSION_HELDOUT,)


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
        ("but", "She knew the answer but she said nothing at all.",  # no comma: a pronoun opens the clause
         "She knew the answer. She said nothing at all."),
        ("unless", "Unless you water the plants, they will die this week.",
         "You water the plants. They will die this week."),
        ("yet", "The house was small and old, yet it felt like home to us.",
         "The house was small and old. It felt like home to us."),
        ("while", "My brother loves the sea, while my sister prefers the mountains.",
         "My brother loves the sea. My sister prefers the mountains."),
        ("while", "Whereas the old bridge was made of wood, the new one is steel.",
         "The old bridge was made of wood. The new one is steel."),
        ("time", "Once the guests arrived, we went into the garden.",
         "The guests arrived. We went into the garden."),
        ("time", "Before the shop opens, the baker has made all the bread.",
         "The shop opens. The baker has made all the bread."),
        ("time", "As soon as the rain stopped, the children ran outside.",
         "The rain stopped. The children ran outside."),
        ("forward", "The train was late again. However, nobody on the platform seemed surprised.",
         "The train was late again. Nobody on the platform seemed surprised."),
        ("forward", "We had no money left. As a result, we walked all the way home.",
         "We had no money left. We walked all the way home."),
        ("if", 'If there was any justice in the world, "trust" would be a four-letter word.',  # capital after "
         'There was any justice in the world. "Trust" would be a four-letter word.'),
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
        "He is nothing but a fool who talks too much at dinner.",  # "but" not before a clause
        "While waiting for the train, she read the whole newspaper.",  # no subject in A
        "After the long meeting, everybody went home to sleep.",  # A is no clause
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


def test_sentence_filters_for_the_new_sources():
    assert bf._split_sentences("Mr. Smith went home early. He slept. J. R. R. Tolkien wrote it.") == [
        "Mr. Smith went home early.", "He slept.", "J. R. R. Tolkien wrote it."]
    assert bf._is_clean("The weather was cold and wet, but we walked along the shore.")
    assert not bf._is_clean("Mr. Smith went home early because his wife was waiting.")  # abbreviation inside
    assert not bf._is_clean("Thou art a villain, but thy brother is an honest man.")  # Early Modern English
    assert not bf._is_clean("We went home -- it was late -- and we slept for a long time.")
    assert not bf._is_clean("The weather was cold and wet, but we walked along the shore")  # no period


def test_forward_targets_are_two_consecutive_clean_sentences():
    text = ("The train from the city was late again this morning. However, nobody on the crowded platform "
            "seemed very surprised. However, this is a fragment.")  # the last one is too short to keep
    assert bf.extract_sentence_entries([("e", text)]) == {
        "The train from the city was late again this morning.": "e",
        "However, nobody on the crowded platform seemed very surprised.": "e",
        "The train from the city was late again this morning. However, nobody on the crowded platform seemed "
        "very surprised.": "e",
    }


def test_fortune_reader_drops_attributions_and_verse():
    fortune = ("\tA banker is a fellow who lends you his umbrella when the sun is shining\n"
               "and wants it back the minute it begins to rain.\n"
               "\t\t-- Mark Twain\n")
    assert list(fs.fortune_paragraphs(fortune)) == [
        "A banker is a fellow who lends you his umbrella when the sun is shining and wants it back the minute "
        "it begins to rain."]
    verse = "Whose woods these are I think I know.\nHis house is in the village though;\n"
    assert list(fs.fortune_paragraphs(verse)) == []


def test_fortune_file_entries_are_numbered(tmp_path):
    path = tmp_path / "wisdom"
    path.write_text("First fortune here.\n%\nSecond one,\nwrapped.\n%\n", encoding="utf-8")
    assert list(fs.fortune_entries(str(path))) == [("wisdom:1", "First fortune here."),
                                                   ("wisdom:2", "Second one, wrapped.")]


def test_wordnet_reader_returns_examples_as_sentences(tmp_path):
    path = tmp_path / "data.verb"
    path.write_text(
        "  1 This software and database is being provided \"AS IS\"\n"
        '00001740 29 v 01 breathe 0 002 | draw air; "I can breathe better when the air is clean"; '
        '"the patient is respiring"  \n', encoding="utf-8")
    assert list(fs.wordnet_examples(str(path))) == [
        ("data.verb:00001740", "I can breathe better when the air is clean."),
        ("data.verb:00001740", "The patient is respiring.")]


def test_dictd_numbers_and_gcide_entries():
    assert [fs._b64_number(t) for t in ("A", "B", "/", "BA", "Bc")] == [0, 1, 63, 64, 92]
    body = ("Affect \\Af*fect\"\\, v. t. [L. affectus.]\n"
            "   1. To act upon. [Obs.]\n      [1913 Webster]\n\n"
            "            The climate affected their health and {spirits}.\n"
            "                                                  --Macaulay.\n"
            "      [1913 Webster]\n")
    assert list(fs.gcide_paragraphs(body)) == ["The climate affected their health and spirits."]  # no definitions
    verse = "            Careless she is with artful care,\n            Affecting to seem unaffected. --Congreve.\n"
    assert list(fs.gcide_paragraphs(verse)) == []
    note = "   Note: The word is now used only in the sense of a short and cheap trip.\n   [1913 Webster]\n"
    assert list(fs.gcide_paragraphs(note)) == ["The word is now used only in the sense of a short and cheap trip."]


def test_text_manual_paragraphs_skip_code_and_mixed_indentation():
    text = ("A first paragraph of prose\nthat wraps over two lines.\n\n"
            "  $ make install\n    --prefix=/usr\n\n   An indented paragraph\n   of prose.\n")
    assert list(fs.text_paragraphs(text)) == [
        "A first paragraph of prose that wraps over two lines.", "An indented paragraph of prose."]


def test_html_paragraphs_read_p_and_docbook_para(tmp_path):
    path = tmp_path / "page.html"
    path.write_text('<html><body><h1>Title</h1><p>One <code>short</code> &amp; plain\nparagraph.</p>'
                    '<div class="para">A DocBook <div>nested</div> paragraph.</div><pre>code here</pre></body></html>',
                    encoding="utf-8")
    assert list(fs.html_paragraphs(str(path), "page.html")) == [
        ("page.html:1", "One short & plain paragraph."), ("page.html:2", "A DocBook nested paragraph.")]


def _read_tsv(split, suffix=".tsv"):
    with open(os.path.join(FUSION_DIR, f"{split}{suffix}"), encoding="utf-8") as f:
        return f.read().split("\n")[:-1]  # the file ends with a newline


def test_shipped_splits_are_well_formed():
    for split in ALL_SPLITS:
        lines = _read_tsv(split)
        assert lines, split
        for line in lines:
            source, target = line.split("\t")  # exactly two columns
            assert source == source.strip() and target == target.strip() and "\r" not in line
            first, second = source.split(". ")  # exactly two sentences
            assert first[:1].isupper() or first[:1] in "'\"(", source
            assert second[:1].isupper() or second[:1] in "'\"(", source
            assert second.endswith(".") and target[-1] in ".!?", line
            assert target[0].isupper() or target[0] in "'\"(", target  # cased, as written
            assert bf.split_sentence(target)[1] == source  # the rules reproduce every row


def _readme():
    with open(os.path.join(FUSION_DIR, "README.md"), encoding="utf-8") as f:
        return f.read()


def _package_versions():
    """package -> version, from the README's sources table."""
    return dict(re.findall(r"^\| \w+ \| ([\w.+-]+) \| (\S*\d\S*) \|$", _readme(), re.M))  # not the header


def test_every_pair_has_a_well_formed_origin():
    versions = _package_versions()
    kinds = set(bf.KINDS)
    assert {"docs", "manuals", "quotations", "dictionary", "glossaries"} <= kinds
    assert "python" in versions and "fortunes" in versions and len(versions) >= 6
    for split in ALL_SPLITS:
        lines = _read_tsv(split, ".origin.tsv")
        assert len(lines) == len(_read_tsv(split)), split
        for line in lines:
            kind, package, version, entry = line.split("\t")
            assert kind in kinds and versions[package] == version and entry.strip() == entry != "", line
            assert any(k == kind and p == package for k, p, _ in bf.SOURCES), line
            if package == "python":
                assert re.fullmatch(r"[\w.]+(:[\w -]+)?", entry), line  # a module or a pydoc topic
            elif package.startswith("fortunes"):
                assert re.fullmatch(r"[a-z-]+:\d+", entry), line  # fortune file:number


def test_heldout_is_one_whole_kind():
    origins = {split: load_fusion_split(split, with_origin=True) for split in ALL_SPLITS}
    heldout_kinds = {o.kind for _, _, o in origins["heldout"]}
    assert heldout_kinds == {bf.HELDOUT_KIND}
    for split in FUSION_SPLITS:
        kinds = {o.kind for _, _, o in origins[split]}
        assert bf.HELDOUT_KIND not in kinds, split
        assert kinds == set(bf.KINDS) - {bf.HELDOUT_KIND}, split  # every training kind in every split
    assert len(origins["heldout"]) >= 200


def test_shipped_splits_are_disjoint_and_sized():
    pairs = {split: load_fusion_split(split) for split in ALL_SPLITS}
    targets = {split: {t for _, t in rows} for split, rows in pairs.items()}
    sources = {split: {s for s, _ in rows} for split, rows in pairs.items()}
    for i, a in enumerate(ALL_SPLITS):
        for b in ALL_SPLITS[i + 1:]:
            assert not targets[a] & targets[b] and not sources[a] & sources[b], (a, b)
    assert all(len(targets[s]) == len(sources[s]) == len(pairs[s]) for s in ALL_SPLITS)  # no duplicates
    assert sum(map(len, pairs.values())) >= 10 * 719  # ten times the docstring-only set (586 + 62 + 71)
    assert len(pairs["train"]) > 7 * len(pairs["dev"]) > 0 and len(pairs["test"]) > 0
    assert 0.07 < len(pairs["test"]) / sum(len(pairs[s]) for s in FUSION_SPLITS) < 0.13
    assert sum(os.path.getsize(os.path.join(FUSION_DIR, f)) for f in os.listdir(FUSION_DIR)) < 5_000_000


def test_loader_returns_pairs_or_triples_and_rejects_unknown_split():
    rows = load_fusion_split("dev")
    assert all(isinstance(r, tuple) and len(r) == 2 for r in rows)
    assert rows == [tuple(line.split("\t")) for line in _read_tsv("dev")]
    triples = load_fusion_split("heldout", with_origin=True)
    assert [t[:2] for t in triples] == load_fusion_split("heldout")
    origin = triples[0][2]
    assert isinstance(origin, FusionOrigin) and origin.kind == bf.HELDOUT_KIND
    assert "\t".join(origin) == _read_tsv("heldout", ".origin.tsv")[0]
    with pytest.raises(ValueError, match="unknown split"):
        load_fusion_split("validation")


def test_readme_counts_match_files():
    readme = _readme()
    counts = [len(load_fusion_split(s)) for s in ALL_SPLITS]
    assert f"| pairs | {' | '.join(map(str, counts))} | {sum(counts)} |" in readme
    for kind in bf.KINDS:
        per_split = [sum(o.kind == kind for _, _, o in load_fusion_split(s, with_origin=True)) for s in ALL_SPLITS]
        assert f"| {kind} | {' | '.join(map(str, per_split))} | {sum(per_split)} |" in readme


def test_split_assignment_ignores_other_sentences_and_holds_out_a_kind():
    origin = ("docs", "python", "3", "json")
    sentences = {"The lock is reentrant, so the same thread can acquire it twice.": origin,
                 "If the path does not exist, an empty list is returned.": origin}
    first = dict(list(sentences.items())[:1])
    alone = bf.build_examples(first)
    together = bf.build_examples(sentences)
    split_alone = next(name for name, rows in alone.items() if rows)
    assert split_alone in FUSION_SPLITS and alone[split_alone][0] in together[split_alone]
    quote = {"If you are cold, turn up the heat in the kitchen.": (bf.HELDOUT_KIND, "fortunes", "1", "a:1")}
    assert [len(rows) for rows in bf.build_examples(quote).values()] == [0, 0, 0, 1]


def test_a_source_is_kept_once():
    origin = ("docs", "python", "3", "json")
    sentences = {"The file is opened lazily, but the header is read at once.": origin,
                 "The file is opened lazily; the header is read at once.": origin}
    assert sum(len(rows) for rows in bf.build_examples(sentences).values()) == 1


def _built_with():
    """(version, platform) that built the shipped files, as the README records them."""
    match = re.search(r"Python (\S+) on\s+`(\w+)`", _readme())
    return match.group(1), match.group(2)


def _build(out):
    subprocess.run([sys.executable, BUILDER, "--out", str(out)],
                   cwd=REPO_ROOT, check=True, capture_output=True, timeout=600)


def _packages_installed():
    """True when every Debian package of the shipped build is installed at the recorded version."""
    for package, version in _package_versions().items():
        if package == "python":
            continue
        try:
            if fs.package_version(package) != version:
                return False
        except (RuntimeError, OSError):
            return False
    return True


@pytest.mark.large
def test_rebuild_is_deterministic_and_reproduces_shipped_files(tmp_path):
    """With the recorded package versions and interpreter, a rebuild is byte-identical to the shipped files.
    Docstrings change between Python versions, so elsewhere the check is that two rebuilds are identical.
    CI has no Debian prose packages: there, the test is skipped."""
    if not _packages_installed():
        pytest.skip("the Debian packages in tf_bert_seqgen/data/fusion/README.md are not installed")
    version, platform = _built_with()
    here = ".".join(map(str, sys.version_info[:3]))
    names = sorted(f"{s}{suffix}" for s in ALL_SPLITS for suffix in (".tsv", ".origin.tsv")) + ["README.md"]
    _build(tmp_path / "fusion")
    assert sorted(os.listdir(tmp_path / "fusion")) == sorted(names)
    if (version, platform) == (here, sys.platform):
        expected_dir = FUSION_DIR
    else:
        expected_dir = tmp_path / "again"
        _build(expected_dir)
    match, mismatch, errors = filecmp.cmpfiles(expected_dir, tmp_path / "fusion", names, shallow=False)
    assert mismatch == [] and errors == [], "rebuild differs: run python tools/build_fusion.py"

"""Readers of the offline English prose that tools/build_fusion.py turns into fusion pairs.

Each reader yields (entry, text) items: `entry` names where the text sits inside its package (a file and
an entry number, a headword, a synset offset), `text` is a piece of prose (a paragraph, a quotation, an
example sentence) in which build_fusion.py looks for sentences. The readers only parse file formats;
what counts as a clean sentence is decided in build_fusion.py, for all sources alike.

The packages are Debian's (bookworm); install them with the line in INSTALL below.
"""

from __future__ import annotations

import gzip
import os
import re
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser

FORTUNE_DIR = "/usr/share/games/fortunes"
DICTD_DIR = "/usr/share/dictd"
WORDNET_DIR = "/usr/share/wordnet"

# Fortune files left out: not prose (ascii-art), not English (translate-me), verse (songs-poems), deliberate
# nonsense (zippy), jokes that trade on ethnic or gender stereotypes (ethnic, men-women).
FORTUNE_SKIP = {"ascii-art", "translate-me", "songs-poems", "zippy", "ethnic", "men-women"}
_ATTRIBUTION = re.compile(r"^\s*--")  # "\t\t-- Mark Twain": the attribution closes a fortune


def package_version(package: str) -> str:
    """The installed version of a Debian package (dpkg's own record); raises when it is not installed."""
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout:
        raise RuntimeError(f"Debian package {package} is not installed: apt-get install -y {package}")
    return result.stdout


def package_files(package: str) -> list[str]:
    """The files a Debian package installed, sorted."""
    result = subprocess.run(["dpkg-query", "-L", package], capture_output=True, text=True, check=True)
    return sorted(path for path in result.stdout.split("\n") if os.path.isfile(path))


# -- fortunes ---------------------------------------------------------------------------------------


def fortune_paragraphs(text: str) -> Iterator[str]:
    """The prose paragraphs of one fortune: the attribution dropped, each line's indentation removed.

    A paragraph of two or more lines that all open with a capital letter is verse (or a list, or a
    dialogue), where joining the lines would make no sentence: it is skipped.
    """
    lines = []
    for line in text.split("\n"):
        if _ATTRIBUTION.match(line):
            break
        lines.append(line.strip())
    for block in re.split(r"\n(?:\s*\n)+", "\n".join(lines).strip()):
        rows = [row for row in block.split("\n") if row]
        if len(rows) >= 2 and all(row[:1].isupper() or not row[:1].isalpha() for row in rows):
            continue
        if rows:
            yield " ".join(" ".join(rows).split())


def fortune_entries(path: str) -> Iterator[tuple[str, str]]:
    """(f"{file}:{number}", paragraph) for each fortune of a strfile text file (entries end with '%')."""
    with open(path, encoding="utf-8", errors="replace") as f:
        entries = f.read().split("\n%\n")
    name = os.path.basename(path)
    for number, entry in enumerate(entries, 1):
        for paragraph in fortune_paragraphs(entry):
            yield f"{name}:{number}", paragraph


def fortunes(package: str) -> Iterator[tuple[str, str]]:
    """Paragraphs of every English fortune file a package installs (the strfile texts, not .dat/.u8)."""
    for path in package_files(package):
        name = os.path.basename(path)
        if os.path.dirname(path) == FORTUNE_DIR and "." not in name and name not in FORTUNE_SKIP:
            yield from fortune_entries(path)


# -- WordNet ----------------------------------------------------------------------------------------

_EXAMPLE = re.compile(r'"([^"]+)"')


def wordnet_examples(path: str) -> Iterator[tuple[str, str]]:
    """(f"{file}:{offset}", example) for the quoted example sentences in the glosses of a WordNet data file.

    A gloss reads `| definition; "example one"; "example two"`. Examples are written without a final
    period and often in lower case; each is returned as a sentence: first letter capitalised, one period
    added (nothing else changes).
    """
    name = os.path.basename(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  ") or "|" not in line:  # the license header lines start with two spaces
                continue
            offset, gloss = line.split(" ", 1)[0], line.split("|", 1)[1]
            for example in _EXAMPLE.findall(gloss):
                example = " ".join(example.split()).rstrip()
                if example and example[-1] not in ".!?":
                    yield f"{name}:{offset}", example[0].upper() + example[1:] + "."


def wordnet() -> Iterator[tuple[str, str]]:
    for pos in ("adj", "adv", "noun", "verb"):
        yield from wordnet_examples(os.path.join(WORDNET_DIR, f"data.{pos}"))


# -- dictd dictionaries -----------------------------------------------------------------------------

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _b64_number(text: str) -> int:
    """dictd's index numbers: base 64 digits, most significant first (not RFC 4648 byte encoding)."""
    value = 0
    for char in text:
        value = value * 64 + _B64[char]
    return value


def dictd_entries(name: str) -> Iterator[tuple[str, str]]:
    """(headword, body) of each entry of a dictd database, in index order, skipping its 00-database-* notes."""
    with gzip.open(os.path.join(DICTD_DIR, f"{name}.dict.dz"), "rb") as f:
        data = f.read()
    with open(os.path.join(DICTD_DIR, f"{name}.index"), encoding="utf-8") as f:
        index = [line.rstrip("\n").split("\t") for line in f]
    seen = set()
    for headword, start, length in (row[:3] for row in index if len(row) >= 3):
        start, length = _b64_number(start), _b64_number(length)
        if headword.startswith("00-database") or (start, length) in seen:
            continue
        seen.add((start, length))
        yield headword, data[start:start + length].decode("utf-8", errors="replace")


def dictd_paragraphs(name: str) -> Iterator[tuple[str, str]]:
    """(f"{name}:{headword}", paragraph) for the prose paragraphs of a dictd dictionary (see text_paragraphs)."""
    for headword, body in dictd_entries(name):
        for paragraph in text_paragraphs(body):
            yield f"{name}:{' '.join(headword.split())}", paragraph


# -- plain-text manuals -----------------------------------------------------------------------------


def text_paragraphs(text: str) -> Iterator[str]:
    """Prose paragraphs of a plain-text document: blocks between blank lines whose lines all share one
    indentation (code, tables, lists and headings under a differently indented first line are skipped)."""
    for block in re.split(r"\n(?:[ \t]*\n)+", text.replace("\r", "")):
        rows = [row for row in block.split("\n") if row.strip()]
        if not rows:
            continue
        margins = {len(row) - len(row.lstrip()) for row in rows}
        if len(margins) == 1:
            yield " ".join(" ".join(rows).split())


def text_manual(path: str, name: str) -> Iterator[tuple[str, str]]:
    """(f"{name}:{paragraph number}", paragraph) of a plain-text manual, gzip-compressed or not."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    for number, paragraph in enumerate(text_paragraphs(text), 1):
        yield f"{name}:{number}", paragraph


def manuals(package: str, suffixes: tuple[str, ...] = (".txt.gz", ".text.gz")) -> Iterator[tuple[str, str]]:
    """Paragraphs of the plain-text manuals (by default *.txt.gz, *.text.gz) of a Debian documentation package."""
    for path in package_files(package):
        if path.endswith(suffixes):
            yield from text_manual(path, os.path.basename(path))


def sphinx_sources(package: str) -> Iterator[tuple[str, str]]:
    """Paragraphs of the reStructuredText sources (html/_sources/**/*.rst.txt) of Sphinx documentation,
    named by their path under _sources. Markup (roles, directives, literal blocks) stays in and fails the
    sentence filters: only plain prose sentences get through."""
    for path in package_files(package):
        if "/_sources/" in path and path.endswith(".rst.txt"):
            yield from text_manual(path, path.split("/_sources/", 1)[1])


# -- GCIDE (Webster 1913) ---------------------------------------------------------------------------

_GCIDE_NOTE = re.compile(r"^\s*\[[^\]]*\]\s*$")  # "[1913 Webster]", "[Webster 1913 Suppl.]": source notes
_GCIDE_AUTHOR = re.compile(r"\s--\S.*$")  # "--Milton.", "--Bp. Pearson.": a quotation's author


def gcide_paragraphs(body: str) -> Iterator[str]:
    """Prose of one GCIDE entry: its quotations (blocks indented 8+ spaces) and usage notes ("Note: ..."),
    source notes and authors removed.

    Definitions are left out: they are phrases, not sentences ("One who believes wrongly; one who holds a
    false religion."), and the clause test cannot tell them apart.
    """
    for block in re.split(r"\n(?:[ \t]*\n)+", body):
        rows = [_GCIDE_AUTHOR.sub("", row) for row in block.split("\n") if row.strip() and not _GCIDE_NOTE.match(row)]
        if not rows:
            continue
        quotation = min(len(row) - len(row.lstrip()) for row in rows) >= 8
        if quotation and len(rows) >= 2 and all(row.strip()[:1].isupper() for row in rows):
            continue  # verse: every line opens with a capital (as in fortune_paragraphs)
        text = " ".join(" ".join(rows).split())
        if quotation or text.startswith("Note: "):
            yield re.sub(r"[{}]", "", text.removeprefix("Note: "))  # {Affected}: cross-reference markup


def gcide() -> Iterator[tuple[str, str]]:
    for headword, body in dictd_entries("gcide"):
        for paragraph in gcide_paragraphs(body):
            yield f"gcide:{' '.join(headword.split())}", paragraph


# -- HTML manuals -----------------------------------------------------------------------------------


class _ParagraphText(HTMLParser):
    """Collects the text of each paragraph element: <p>, or an element of class "para" (DocBook's
    <div class="para">), markup inside removed, entities decoded."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self._text: list[str] | None = None
        self._tag, self._depth = "", 0

    def handle_starttag(self, tag, attrs):
        if self._text is None and (tag == "p" or ("class", "para") in attrs):
            self._text, self._tag, self._depth = [], tag, 1
        elif self._text is not None and tag == self._tag:
            self._depth += 1

    def handle_endtag(self, tag):
        if self._text is not None and tag == self._tag:
            self._depth -= 1
            if self._depth == 0:
                self.paragraphs.append(" ".join("".join(self._text).split()))
                self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def html_paragraphs(path: str, name: str) -> Iterator[tuple[str, str]]:
    """(f"{name}:{paragraph number}", text) for the <p> paragraphs of an HTML file."""
    parser = _ParagraphText()
    with open(path, encoding="utf-8", errors="replace") as f:
        parser.feed(f.read())
    parser.close()
    for number, paragraph in enumerate(parser.paragraphs, 1):
        if paragraph:
            yield f"{name}:{number}", paragraph


def html_manuals(package: str, under: str) -> Iterator[tuple[str, str]]:
    """Paragraphs of the HTML pages a documentation package installs under the folder `under`, named by
    their path below it."""
    for path in package_files(package):
        if path.startswith(under + "/") and path.endswith(".html"):
            yield from html_paragraphs(path, path[len(under) + 1:])

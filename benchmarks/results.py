"""benchmarks/RESULTS.md: every measured figure, in dated sections, newest first, written by the benchmarks
themselves (`--record`), and the README's headline table, a copy of the newest headline there.

A figure holds only for the CPU and day it was measured on, so it is kept with its CPU line, date and
command, in the benchmark's own words: `record` writes what a run printed, and nobody copies a figure by
hand. Standard library only until a section is written, so that a benchmark's child processes (which
import this through the benchmark's module) load nothing they would not load anyway.

    from common import RECORD_HELP, check_record, recorded   # common re-exports these

    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args()
    check_record(parser, args)
    with recorded("What it measures", args.record):
        ...  # the benchmark's prints

    python benchmarks/results.py --update-readme   # the README's headline from RESULTS.md as it is
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import re
import shlex
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
RECORD_HELP = "also record the printed report as a new dated section at the top of benchmarks/RESULTS.md"
# A table between these lines in RESULTS.md is a headline: the README shows the newest one.
HEADLINE_START, HEADLINE_END = "<!-- headline -->", "<!-- /headline -->"
README_HEADLINE_START = "<!-- headline: written by benchmarks/results.py from the newest headline of benchmarks/RESULTS.md -->"


def check_record(parser, args):
    """Refuses --record with --smoke: a smoke run proves the script runs, its figures measure nothing."""
    if args.record and args.smoke:
        parser.error("--record keeps measured figures; a --smoke run's are not")


def record(title: str, text: str, path: str = RESULTS, *, machine: str | None = None, headline: str | None = None,
           readme: str | None = README, date: str | None = None) -> str:
    """Inserts a dated section with a report at the top of RESULTS.md's sections (newest first), atomically.

    Args:
        title: what was measured, e.g. "Batch inference on Apache Beam"; the heading adds the CPU model and
            the date, as the older sections' headings have them.
        text: the report exactly as the benchmark printed it (`recorded` captures it), kept in a text block.
        path: the results file; it must exist (its introduction stays above the sections).
        machine: the CPU line (`describe_machine`); None takes the report's first line when it is one
            (every benchmark here prints it first), else describes this machine.
        headline: a markdown table of speed against transformers to show in the README: written between
            `HEADLINE_START` and `HEADLINE_END` above the report, and `readme`'s headline is rewritten
            from it (`update_readme`).
        readme: the README whose headline follows the newest one; None leaves it alone.
        date: ISO date of the section; None is today.

    Returns:
        The section as written.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `text` is empty, or `headline` is not a markdown table.
    """
    from avx2_only import is_capped

    from tf_bert_seqgen import cpu
    from tf_bert_seqgen.io_utils import atomic_file

    lines = text.strip("\n").splitlines()
    if machine is None and lines and lines[0].startswith("CPU: "):
        machine, lines = lines[0], lines[1:]
    if not any(line.strip() for line in lines):
        raise ValueError("nothing to record: the report is empty")
    if headline is not None and not headline.strip().startswith("|"):
        raise ValueError(f"a headline is a markdown table (lines starting with '|'), got {headline[:60]!r}")
    if machine is None:
        from common import describe_machine  # here: it imports TensorFlow

        machine = describe_machine(os.cpu_count())
    emulated = ", AVX2-only emulated" if is_capped() else ""
    command = " ".join(shlex.quote(arg) for arg in ["python", *sys.argv])
    parts = [f"## {title}, {cpu.model_name()}{emulated}, {date or datetime.date.today().isoformat()}", "",
             f"`{machine}`", "", f"`{command}`", ""]
    if headline is not None:
        parts += [HEADLINE_START, headline.strip(), HEADLINE_END, ""]
    section = "\n".join(parts + ["```text", *lines, "```", ""]) + "\n"
    with open(path, encoding="utf-8") as f:
        old = f.read()
    first = re.search(r"^## ", old, re.M)
    at = first.start() if first else len(old)
    new = old[:at] + section + old[at:]
    with atomic_file(path) as f:
        f.write(new)
    if headline is not None and readme is not None:
        update_readme(readme, new)
    return section


@contextlib.contextmanager
def recorded(title: str, enabled: bool = True, **options):
    """Prints as usual; with `enabled`, what was printed to sys.stdout inside is recorded under `title`
    (`record`'s options) once the block ends without an error, so a failed run records nothing.

        with recorded("Batch inference on Apache Beam", args.record):
            ...  # the benchmark's prints

    It yields `record`'s options as a dict: a block that computes its headline sets `options["headline"]`.
    Output that child processes write to the terminal themselves is not captured: print their results
    from this process.
    """
    if not enabled:
        yield dict(options)
        return
    buffer, stdout = io.StringIO(), sys.stdout

    class Tee(io.TextIOBase):
        def write(self, chunk):
            buffer.write(chunk)
            return stdout.write(chunk)

        def flush(self):
            stdout.flush()

    with contextlib.redirect_stdout(Tee()):
        yield options
    path = options.get("path", RESULTS)
    record(title, buffer.getvalue(), **options)
    print(f"recorded in {path}")


def newest_headline(results_text: str) -> tuple[str, str]:
    """(heading, table) of the first headline in RESULTS.md's text: the newest, sections being newest first."""
    heading, inside, table = None, False, []
    for line in results_text.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.strip() == HEADLINE_START:
            inside = True
        elif line.strip() == HEADLINE_END and inside:
            return heading, "\n".join(table)
        elif inside:
            table.append(line)
    raise ValueError(f"no headline ({HEADLINE_START} ... {HEADLINE_END}) in the results")


def readme_headline(results_text: str) -> str:
    """The README's headline block for RESULTS.md's text: the newest headline table, naming its section."""
    heading, table = newest_headline(results_text)
    return "\n".join([README_HEADLINE_START, "",
                      f"From [`benchmarks/RESULTS.md`](benchmarks/RESULTS.md), its newest section with this table "
                      f"(*{heading}*):", "", table, "", HEADLINE_END])


def update_readme(readme: str = README, results_text: str | None = None):
    """Rewrites `readme`'s headline block (from `README_HEADLINE_START` to `HEADLINE_END`) from RESULTS.md."""
    from tf_bert_seqgen.io_utils import atomic_file

    if results_text is None:
        with open(RESULTS, encoding="utf-8") as f:
            results_text = f.read()
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    block = re.compile(re.escape(README_HEADLINE_START) + r".*?" + re.escape(HEADLINE_END), re.S)
    if not block.search(text):
        raise ValueError(f"{readme} has no headline block ({README_HEADLINE_START} ... {HEADLINE_END})")
    with atomic_file(readme) as f:
        f.write(block.sub(lambda _: readme_headline(results_text), text, count=1))


if __name__ == "__main__":
    if sys.argv[1:] != ["--update-readme"]:
        sys.exit("usage: python benchmarks/results.py --update-readme")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    update_readme()

"""benchmarks/RESULTS.md: dated sections, newest first, that the benchmarks write themselves (`--record`),
and the README's headline table, a copy of the newest headline there."""

import argparse
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import results as recording  # noqa: E402

RECORDING_BENCHMARKS = ("batch_benchmark.py", "training_benchmark.py", "export_benchmark.py",
                        "unsure_source_benchmark.py", "generation_benchmark.py", "serving_benchmark.py",
                        "product_forms.py", "storage_quality.py")
DATE = re.compile(r"(\d{4}-\d{2}-\d{2})$")
INTRO = "# Benchmark results\n\nSome words.\n\n"
OLD_SECTION = "## Old run, Some CPU, 2026-01-01\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
README_TEXT = f"# x\n\n{recording.README_HEADLINE_START}\nstale\n{recording.HEADLINE_END}\n\nafter\n"
TABLE = "| ms per token | ours | transformers |\n|---|---|---|\n| greedy | 1.0 | 2.0 |"


def sections(text: str) -> list[str]:
    return [line[3:] for line in text.splitlines() if line.startswith("## ")]


def test_results_are_dated_sections_newest_first():
    headings = sections(Path(recording.RESULTS).read_text(encoding="utf-8"))
    assert len(headings) >= 7
    dates = []
    for heading in headings:
        match = DATE.search(heading)
        assert match, f"RESULTS.md section without a date at the end of its heading: {heading!r}"
        dates.append(match.group(1))
    assert dates == sorted(dates, reverse=True), f"sections are not newest first: {dates}"


def test_readme_headline_is_the_newest_results_headline():
    """The README's table is generated: `python benchmarks/results.py --update-readme` rewrites it."""
    results = Path(recording.RESULTS).read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(recording.README_HEADLINE_START)
    end = readme.index(recording.HEADLINE_END, start) + len(recording.HEADLINE_END)
    assert readme[start:end] == recording.readme_headline(results)
    heading, table = recording.newest_headline(results)
    start = results.index(f"\n## {heading}\n")
    assert recording.HEADLINE_START not in results[:start].splitlines(), "a newer section has a headline"
    assert start < results.index(table) < results.index("\n## ", start + 1), "the table is the section's own"
    assert table.startswith("| ms per token") and "transformers" in table.splitlines()[0]


@pytest.fixture
def files(tmp_path):
    results, readme = tmp_path / "RESULTS.md", tmp_path / "README.md"
    results.write_text(INTRO + OLD_SECTION, encoding="utf-8")
    readme.write_text(README_TEXT, encoding="utf-8")
    return results, readme


def test_record_inserts_a_dated_section_above_the_older_ones(files):
    results, readme = files
    report = "CPU: Test CPU, 2 cores; TensorFlow 2.21.0, graph-mode products on oneDNN; 2 threads\nrow 1  3.5 ms\n"
    section = recording.record("Something measured", report, str(results), readme=str(readme), date="2030-01-02")
    text = results.read_text(encoding="utf-8")
    assert text.startswith(INTRO) and text.endswith(OLD_SECTION), "the introduction and older sections are kept"
    assert text == INTRO + section + OLD_SECTION
    assert sections(text)[0].startswith("Something measured, ") and sections(text)[0].endswith(", 2030-01-02")
    assert "`CPU: Test CPU, 2 cores; TensorFlow 2.21.0, graph-mode products on oneDNN; 2 threads`" in section
    assert "```text\nrow 1  3.5 ms\n```" in section  # the report as printed, its CPU line moved to the heading
    assert readme.read_text(encoding="utf-8") == README_TEXT, "no headline given: the README is left alone"


def test_record_with_a_headline_rewrites_the_readme_copy(files):
    results, readme = files
    recording.record("Serving", "CPU: Test CPU\nrows\n", str(results), headline=TABLE, readme=str(readme),
                  date="2030-01-03")
    heading, table = recording.newest_headline(results.read_text(encoding="utf-8"))
    assert table == TABLE and heading.endswith("2030-01-03")
    text = readme.read_text(encoding="utf-8")
    assert "stale" not in text and TABLE in text and heading in text and text.endswith("\n\nafter\n")
    # A later section without a headline does not move the README's table.
    recording.record("Batch", "CPU: Test CPU\nrows\n", str(results), readme=str(readme), date="2030-01-04")
    assert recording.newest_headline(results.read_text(encoding="utf-8"))[0] == heading


def test_recorded_records_what_was_printed_and_nothing_after_an_error(files, capsys):
    results, _ = files
    with recording.recorded("Printed", True, path=str(results), readme=None, date="2030-01-05"):
        print("CPU: Test CPU")
        print("figure 7.25")
    assert "figure 7.25" in capsys.readouterr().out, "the report is still printed"
    text = results.read_text(encoding="utf-8")
    assert sections(text)[0].startswith("Printed, ") and "```text\nfigure 7.25\n```" in text
    with pytest.raises(RuntimeError), recording.recorded("Failed", True, path=str(results), readme=None):
        print("half a report")
        raise RuntimeError("the benchmark failed")
    assert results.read_text(encoding="utf-8") == text, "a failed run records nothing"
    with recording.recorded("Not asked", False, path=str(results)):
        print("not recorded")
    assert results.read_text(encoding="utf-8") == text


def test_recorded_takes_a_headline_computed_inside(files):
    results, readme = files
    with recording.recorded("Headlined", True, path=str(results), readme=str(readme), date="2030-01-06") as options:
        print("CPU: Test CPU")
        print("figure 3.5")
        options["headline"] = "| ms per token | ours |\n|---|---|\n| greedy | 3.5 |"
    assert "| greedy | 3.5 |" in readme.read_text(encoding="utf-8")
    assert recording.newest_headline(results.read_text(encoding="utf-8"))[0].startswith("Headlined, ")


def test_record_refuses_what_is_no_result(files):
    results, readme = files
    with pytest.raises(ValueError, match="empty"):
        recording.record("Nothing", "CPU: Test CPU\n\n", str(results), readme=None)
    with pytest.raises(ValueError, match="markdown table"):
        recording.record("Bad headline", "CPU: x\nrow\n", str(results), headline="ms per token 3", readme=None)
    with pytest.raises(FileNotFoundError):
        recording.record("Nowhere", "CPU: x\nrow\n", str(results.parent / "missing.md"), readme=None)
    assert results.read_text(encoding="utf-8") == INTRO + OLD_SECTION
    with pytest.raises(ValueError, match="no headline"):
        recording.newest_headline(INTRO + OLD_SECTION)


def test_record_is_refused_for_smoke_runs():
    parser = argparse.ArgumentParser(prog="bench")
    with pytest.raises(SystemExit) as exit_info:
        recording.check_record(parser, argparse.Namespace(record=True, smoke=True))
    assert exit_info.value.code == 2
    recording.check_record(parser, argparse.Namespace(record=True, smoke=False))
    recording.check_record(parser, argparse.Namespace(record=False, smoke=True))


@pytest.mark.parametrize("script", RECORDING_BENCHMARKS)
def test_the_benchmarks_record_their_printed_report(script):
    source = (ROOT / "benchmarks" / script).read_text(encoding="utf-8")
    assert 'add_argument("--record", action="store_true", help=RECORD_HELP)' in source
    assert "check_record(parser, args)" in source
    assert re.search(r"with recorded\(\"[^\"]+\", args\.record\)( as options)?:", source), \
        f"{script} does not record its report"

"""The README's `standalone` blocks: each runs alone in a fresh directory (see tests/test_readme.py).

A file of its own, so that the test workers (which take whole files) run these beside the README's chain."""

import pytest
from test_readme import README, blocks, run_blocks, standalone

STANDALONE = [b for b in blocks(README.read_text(encoding="utf-8")) if standalone(b)]


def test_the_slow_shell_examples_are_standalone():
    # The quick start, fine-tuning from the CLI and the Beam batch command: without the flag they would
    # lengthen the chain again.
    sources = "\n".join(b["source"] for b in STANDALONE)
    for command in ('tf-bert-seqgen generate "', "tf-bert-seqgen finetune", "tf-bert-seqgen batch"):
        assert command in sources, command


@pytest.mark.large
@pytest.mark.parametrize("block", STANDALONE, ids=[f"line{b['line']}" for b in STANDALONE])
def test_standalone_example_runs_in_a_fresh_directory(block, tmp_path):
    run_blocks([block], tmp_path)

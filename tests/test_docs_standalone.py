"""The documentation's `standalone` blocks: each runs alone in a fresh directory (see tests/test_docs.py).

A file of its own, so that the test workers (which take whole files) run these beside the docs' chain."""

import pytest
from test_docs import all_blocks, run_blocks, standalone, where

STANDALONE = [b for b in all_blocks() if standalone(b)]


def test_the_slow_shell_examples_are_standalone():
    # The default model's commands, fine-tuning from the CLI, the Beam batch command and the README's
    # export: without the flag they would lengthen the chain again.
    sources = "\n".join(b["source"] for b in STANDALONE)
    for command in ('tf-bert-seqgen generate "', "tf-bert-seqgen finetune", "tf-bert-seqgen batch",
                    "tf-bert-seqgen export saved_models/fusion/5"):
        assert command in sources, command


@pytest.mark.large
@pytest.mark.parametrize("block", STANDALONE, ids=[where(b).replace("/", "_") for b in STANDALONE])
def test_standalone_example_runs_in_a_fresh_directory(block, tmp_path):
    run_blocks([block], tmp_path)

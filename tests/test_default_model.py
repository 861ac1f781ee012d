"""The shipped default model (saved_models/fusion/<latest>): what the README's main command runs.

Its quality is checked where a user meets it: the SavedModel's default signature (cased text, spaced as
written) on the held-out kind of prose (quotations, a kind no training, dev or test pair comes from),
against the targets as written."""

import functools
import json
import os

import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops

from tf_bert_seqgen.cli import default_model_dir
from tf_bert_seqgen.data import load_fusion_split
from tf_bert_seqgen.export import EXPORT_INFO_FILE, read_export_info
from tf_bert_seqgen.metrics import novel_word_rate, sari


def _generate(model_dir, texts, batch_size=64):
    served = tf.saved_model.load(model_dir).signatures["serving_default"]
    return [t.decode("utf-8") for start in range(0, len(texts), batch_size)
            for t in served(text=tf.constant(texts[start:start + batch_size]))["generated_text"].numpy()]


@functools.cache
def _shipped_on(split: str) -> tuple[list[str], list[str], list[str]]:
    """(sources, targets, the shipped export's outputs) of every third pair of `split`: decoded once for the
    tests of this file (which share a worker)."""
    pairs = load_fusion_split(split)[::3]
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    return sources, targets, _generate(default_model_dir(), sources, 32)


@pytest.mark.large
def test_default_model_fuses_held_out_prose_better_than_copying_and_invents_few_words():
    model_dir = default_model_dir()
    assert os.path.basename(os.path.dirname(model_dir)) == "fusion"
    # Every third held-out pair (346 of 1,038): the figures of the whole split within 0.3 point (fusion/5:
    # SARI on cased words 71.8 against 71.5, copying 59.6 both, novel words 1.45% against 1.49%) at a third
    # of its decoding time; benchmarks/warm_start/run.py scores the whole split.
    sources, targets, outputs = _shipped_on("heldout")
    # Scored as written: case-sensitive, words split on whitespace ("bull - dog" is not "bull-dog").
    model = sari(sources, outputs, targets, lowercase=False, tokenize="none")
    copy = sari(sources, sources, targets, lowercase=False, tokenize="none")  # return the source unchanged
    assert model >= copy + 5, (model, copy)  # fusion/5: 71.8 against 59.6
    # Words in neither source nor target (issue 18's bound: 2%): fusion/5 writes 1.45% here, mostly a connective
    # the target does not use ("If" where it has "When"); fusion/4, without min_added_token_probability, 5.6%.
    assert novel_word_rate(sources, outputs, targets) <= 0.02
    # The threshold keeps the source where unsure, not everywhere: fusion/5 rewrites 177 of these 346.
    assert sum(o != s for o, s in zip(outputs, sources, strict=True)) >= len(sources) // 3
    # Written as a person writes: every output opens with a capital letter, as every target does.
    assert all(o[:1].isupper() for o in outputs if o)


@pytest.mark.large
def test_the_default_model_exported_as_int8_writes_what_it_writes(tmp_path):
    """`tf-bert-seqgen export saved_models/fusion/5 --out DIR --xla --weights-dtype int8`: on a third of the test
    and held-out pairs, the int8 export writes the shipped export's text for at least 95% of sources, and
    SARI moves by at most 0.5 (`benchmarks/storage_quality.py` scores the whole splits)."""
    from tf_bert_seqgen import cli

    model_dir = default_model_dir()
    int8_dir = str(tmp_path / "int8")
    cli.main(["export", model_dir, "--out", int8_dir, "--xla", "--weights-dtype", "int8"])
    shipped, int8 = read_export_info(model_dir), read_export_info(int8_dir)
    assert int8["generation"] == shipped["generation"] and int8["truecase"] == shipped["truecase"]
    assert (int8["weights_dtype"], int8["jit_compile"]) == ("int8", True)
    for split in ("test", "heldout"):
        sources, targets, reference = _shipped_on(split)
        outputs = _generate(int8_dir, sources, 32)
        same = sum(a == b for a, b in zip(outputs, reference, strict=True))
        assert same >= 0.95 * len(sources), (split, same, len(sources))
        scores = [sari(sources, o, targets, lowercase=False, tokenize="none") for o in (reference, outputs)]
        assert abs(scores[0] - scores[1]) <= 0.5, (split, scores)


def test_default_model_is_the_documented_export():
    with open(os.path.join(default_model_dir(), EXPORT_INFO_FILE), encoding="utf-8") as f:
        info = json.load(f)
    assert info["truecase"] is True and info["weights_dtype"] == "float16"
    assert info["generation"]["copy_from_source"] is True and info["generation"]["extra_token_ids"]
    assert info["generation"]["min_added_token_probability"] == 0.6  # chosen on dev (warm_start/results.md)

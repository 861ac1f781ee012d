"""The shipped default model (saved_models/fusion/<latest>): what the README's main command runs.

Its quality is checked where a user meets it: the SavedModel's default signature (cased text, spaced as
written) on the held-out kind of prose (quotations, a kind no training, dev or test pair comes from),
against the targets as written."""

import json
import os

import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops

from tf_bert_seqgen.cli import default_model_dir
from tf_bert_seqgen.data import load_fusion_split
from tf_bert_seqgen.export import EXPORT_INFO_FILE
from tf_bert_seqgen.metrics import novel_word_rate, sari


def _generate(model_dir, texts, batch_size=64):
    served = tf.saved_model.load(model_dir).signatures["serving_default"]
    return [t.decode("utf-8") for start in range(0, len(texts), batch_size)
            for t in served(text=tf.constant(texts[start:start + batch_size]))["generated_text"].numpy()]


def test_default_model_fuses_held_out_prose_better_than_copying_and_invents_few_words():
    model_dir = default_model_dir()
    assert os.path.basename(os.path.dirname(model_dir)) == "fusion"
    # Every third held-out pair (346 of 1,038): the figures of the whole split within 0.1 point (fusion/4:
    # SARI on cased words 78.7 against 78.6, copying 59.6 both, novel words 5.6% against 5.7%) at a third of
    # its beam-4 decoding time; benchmarks/warm_start/run.py scores the whole split.
    pairs = load_fusion_split("heldout")[::3]
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    outputs = _generate(model_dir, sources)
    # Scored as written: case-sensitive, words split on whitespace ("bull - dog" is not "bull-dog").
    model = sari(sources, outputs, targets, lowercase=False, tokenize="none")
    copy = sari(sources, sources, targets, lowercase=False, tokenize="none")  # return the source unchanged
    assert model >= copy + 5, (model, copy)  # fusion/4: 78.7 against 59.6
    # Words in neither source nor target: fusion/4 writes 5.6% here, mostly a connective the target does not use
    # ("If" where it has "When") and a sentence's first word replaced by "The"; issue 18 asks for 2%.
    assert novel_word_rate(sources, outputs, targets) <= 0.06
    # Written as a person writes: every output opens with a capital letter, as every target does.
    assert all(o[:1].isupper() for o in outputs if o)


def test_default_model_is_the_documented_export():
    with open(os.path.join(default_model_dir(), EXPORT_INFO_FILE), encoding="utf-8") as f:
        info = json.load(f)
    assert info["truecase"] is True and info["weights_dtype"] == "float16"
    assert info["generation"]["copy_from_source"] is True and info["generation"]["extra_token_ids"]

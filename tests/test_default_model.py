"""The shipped default model (saved_models/fusion/<latest>): what the README's main command runs."""

import json
import os

from tf_bert_seqgen import cli
from tf_bert_seqgen.cli import default_model_dir
from tf_bert_seqgen.data import FUSION_DIR, load_fusion_split
from tf_bert_seqgen.metrics import compute_metrics
from tf_bert_seqgen.tokenizers import load_tokenizer
from tf_bert_seqgen.training import EXPORT_TOKENIZER_DIR, as_tokenizer_writes


def test_default_model_fuses_held_out_pairs_better_than_copying(capsys):
    model_dir = default_model_dir()
    assert os.path.basename(os.path.dirname(model_dir)) == "fusion"
    cli.main(["evaluate", "--data", os.path.join(FUSION_DIR, "test.tsv")])
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == model_dir and report["references"] == "tokenizer"
    pairs = load_fusion_split("test")
    assert report["examples"] == len(pairs)
    # The baseline every fusion model must beat: return the two input sentences unchanged.
    tokenizer = load_tokenizer(os.path.join(model_dir, EXPORT_TOKENIZER_DIR))
    sources = as_tokenizer_writes(tokenizer, [s for s, _ in pairs])
    references = as_tokenizer_writes(tokenizer, [t for _, t in pairs])
    copy = compute_metrics(sources, sources, references)
    assert report["sari"] > copy["sari"] + 3, (report, copy)
    assert report["exact_match"] > 0.2 > copy["exact_match"]

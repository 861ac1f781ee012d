"""What keeping the source where unsure costs: the shipped default SavedModel (beam 4, copy-restricted,
`min_added_token_probability` 0.6) against the same weights exported without the threshold.

    python benchmarks/unsure_source_benchmark.py           # 16 texts at batch 1, 64 at batch 8, best of 3
    python benchmarks/unsure_source_benchmark.py --smoke   # 2 texts, one repeat (CI)
    python benchmarks/unsure_source_benchmark.py --record  # also a new section of benchmarks/RESULTS.md

Both exports are served as production loads them (`serving_default`, graph mode) on held-out pairs'
sources; the threshold-free one is loaded twice, before and after, so that the spread between two loads
of one export is printed beside the difference. Printed: ms per text, the CPU model and flags.
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
from common import describe_machine  # noqa: E402
from results import RECORD_HELP, check_record, recorded  # noqa: E402

from tf_bert_seqgen import export, training  # noqa: E402
from tf_bert_seqgen.cli.sources import default_model_dir  # noqa: E402
from tf_bert_seqgen.data import load_fusion_split  # noqa: E402


def export_without_threshold(model_dir: str, out_dir: str) -> str:
    """The default model's weights and its whole decoding, `min_added_token_probability` 0."""
    info = export.read_export_info(model_dir)
    spec = f"model:{model_dir}"
    return export.export_saved_model(training.build_model(spec), training.load_init_tokenizer(spec), out_dir,
                                     weights_dtype=info["weights_dtype"], truecase=info["truecase"],
                                     max_input_length=info["max_input_length"],
                                     **{**info["generation"], "min_added_token_probability": 0.0})


def ms_per_text(model_dir: str, texts: list[str], batch: int, repeats: int) -> float:
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    serve(text=tf.constant(texts[:batch]))  # the first call's one-off work is not timed
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(texts), batch):
            serve(text=tf.constant(texts[i:i + batch]))
        best = min(best, (time.perf_counter() - start) / len(texts))
    return 1000 * best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="2 texts, one repeat (CI)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    check_record(parser, args)
    with recorded("Serving with and without min_added_token_probability", args.record):
        run(args)


def run(args):
    repeats = 1 if args.smoke else args.repeats
    sources = [s for s, _ in load_fusion_split("heldout")]
    model_dir = default_model_dir()
    threshold = export.read_export_info(model_dir)["generation"]["min_added_token_probability"]
    print(describe_machine(os.cpu_count()))
    print(f"{model_dir}: min_added_token_probability {threshold}, against the same weights without it")
    with tempfile.TemporaryDirectory() as tmp:
        plain = export_without_threshold(model_dir, os.path.join(tmp, "1"))
        runs = [("without, first load", plain), (f"with {threshold} (shipped)", model_dir),
                ("without, second load", plain)]
        for batch, count in ((1, 2 if args.smoke else 16), (8, 2 if args.smoke else 64)):
            for name, directory in runs:
                print(f"batch {batch:>2}  {name:<24} {ms_per_text(directory, sources[:count], batch, repeats):7.0f} "
                      f"ms per text", flush=True)


if __name__ == "__main__":
    main()

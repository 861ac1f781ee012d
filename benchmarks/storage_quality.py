"""What int8 and bfloat16 weights cost in quality: the shipped default model re-exported with
`--xla --weights-dtype int8` (and bfloat16), against the shipped export itself, on the fusion test split and
the held-out kind of prose.

    python benchmarks/storage_quality.py            # both splits, whole
    python benchmarks/storage_quality.py --smoke    # 16 pairs of each (CI)

Prints, per split and storage: the share of inputs whose output text is the shipped export's, character for
character; SARI as written (case-sensitive, whitespace words) of both; the export's size and ms per text
(batches of 32 after each export's warm-up, with its own decoding: beam 4, copy restriction, truecasing).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import describe_machine  # noqa: E402
from results import RECORD_HELP, check_record, recorded  # noqa: E402  (standard library only)

from tf_bert_seqgen.cli import default_model_dir  # noqa: E402
from tf_bert_seqgen.data import load_fusion_split  # noqa: E402
from tf_bert_seqgen.export import export_saved_model, load_export  # noqa: E402
from tf_bert_seqgen.export.warmup import replay  # noqa: E402
from tf_bert_seqgen.metrics import sari  # noqa: E402
from tf_bert_seqgen.text_generators import SavedModelTexts, generate_in_order  # noqa: E402

BATCH = 32


def generate(directory: str, texts: list[str]) -> tuple[list[str], float]:
    """The export's serving_default outputs for `texts` in batches, and its ms per text (after its warm-up
    records: an XLA export's programs are compiled by then)."""
    generator = SavedModelTexts(directory)
    replay(generator.loaded, directory)
    start = time.perf_counter()
    outputs = list(generate_in_order(generator, texts, BATCH))
    return outputs, 1000 * (time.perf_counter() - start) / len(texts)


def size_mb(directory: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(directory) for f in files) / 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="16 pairs of each split (CI)")
    parser.add_argument("--model", default=None, help="an export (default: the shipped default model)")
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    check_record(parser, args)
    with recorded("int8 and bfloat16 storage of the shipped default model: size, agreement, SARI", args.record):
        run(args)


def run(args):
    shipped = args.model or default_model_dir()
    splits = {name: load_fusion_split(name)[:16 if args.smoke else None] for name in ("test", "heldout")}
    print(describe_machine(os.cpu_count()))
    print(f"shipped export: {shipped} ({size_mb(shipped):.0f} MB)")
    with tempfile.TemporaryDirectory() as root:
        model, tokenizer, options = load_export(shipped)
        exports = {"shipped": shipped}
        for dtype in ("int8", "bfloat16"):
            exports[dtype] = os.path.join(root, dtype)
            start = time.perf_counter()
            export_saved_model(model, tokenizer, exports[dtype], jit_compile=True, weights_dtype=dtype, **options)
            print(f"re-exported as {dtype} (XLA) in {time.perf_counter() - start:.0f} s, "
                  f"{size_mb(exports[dtype]):.0f} MB", flush=True)
        print(f"\n{'split':<9}{'storage':<10}{'pairs':>6}{'same text':>11}{'SARI':>7}{'shipped SARI':>14}{'ms/text':>9}")
        for split, pairs in splits.items():
            sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
            reference, reference_ms = generate(shipped, sources)
            reference_sari = sari(sources, reference, targets, lowercase=False, tokenize="none")
            print(f"{split:<9}{'shipped':<10}{len(pairs):6d}{'':>11}{reference_sari:7.1f}{reference_sari:14.1f}"
                  f"{reference_ms:9.0f}", flush=True)
            for dtype in ("int8", "bfloat16"):
                outputs, ms = generate(exports[dtype], sources)
                same = sum(a == b for a, b in zip(outputs, reference, strict=True)) / len(pairs)
                score = sari(sources, outputs, targets, lowercase=False, tokenize="none")
                print(f"{split:<9}{dtype:<10}{len(pairs):6d}{100 * same:10.1f}%{score:7.1f}{reference_sari:14.1f}"
                      f"{ms:9.0f}", flush=True)


if __name__ == "__main__":
    main()

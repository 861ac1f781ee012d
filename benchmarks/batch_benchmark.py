"""Batch inference on Apache Beam against a plain loop, on the same texts, in one run.

    python benchmarks/batch_benchmark.py            # 512 fusion sources, the shipped default model
    python benchmarks/batch_benchmark.py --smoke    # 24 sources, a minute or two (CI)
    python benchmarks/batch_benchmark.py --record   # also a new section of benchmarks/RESULTS.md

Three ways through the same texts, each with the exported SavedModel (default: the newest version of
saved_models/fusion, beam search 4) and at most 32 texts per model call:
- plain loop: a fresh process with only tensorflow + tensorflow_text loads the model, calls it once on one
  text (the first call traces the graph), then calls `serving_default` on the texts in file order, 32 at
  a time, and again sorted by length (as GenerateText batches them);
- Beam, 1 and 2 workers: `ReadTexts | GenerateText | WriteJsonl`, what `tf-bert-seqgen batch` runs, on
  DirectRunner in multi-processing mode (each worker a process with its own copy of the model).
Each row gives the wall time from start to the last output written (process start, imports and model
load included), texts/s over that time, and the time spent inside the model calls (for Beam, summed over
workers from RunInference's own metrics): the part that more workers divide, against the fixed cost
(start, load, Beam's own work) that they do not.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from results import RECORD_HELP, check_record, recorded  # noqa: E402  (standard library only)

BATCH = 32


def plain_loop(model_dir: str, texts_file: str) -> dict:
    """The baseline, in a fresh process: load, then `serving_default` over the texts 32 at a time, in file
    order and sorted by length. Imports nothing of this project's package."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer ops

    with open(texts_file, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f]
    start = time.perf_counter()
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    figures = {"load_s": time.perf_counter() - start}
    start = time.perf_counter()
    serve(text=tf.constant(texts[:1]))  # the first call traces the graph; a Beam worker's first batch pays it
    figures["first_call_s"] = time.perf_counter() - start
    for name, order in (("in_order_s", texts), ("sorted_s", sorted(texts, key=len))):
        start = time.perf_counter()
        for i in range(0, len(order), BATCH):
            serve(text=tf.constant(order[i:i + BATCH]))["generated_text"].numpy()
        figures[name] = time.perf_counter() - start
    return figures


def run_plain_loop(model_dir: str, texts_file: str) -> dict:
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import batch_benchmark as b; "
            "print(json.dumps(b.plain_loop(sys.argv[2], sys.argv[3])))")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(os.path.abspath(__file__)), model_dir,
                          texts_file], capture_output=True, text=True, check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    return {**figures, "wall_s": time.perf_counter() - start}


def run_beam(model_dir: str, texts_file: str, workers: int, output: str) -> dict:
    """What `tf-bert-seqgen batch` runs, on DirectRunner with `workers` processes."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from tf_bert_seqgen import batch_inference as beam_inference

    logging.getLogger("apache_beam").setLevel(logging.ERROR)  # its notes, as `tf-bert-seqgen batch` does
    options = PipelineOptions([f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing",
                               "--default_sdk_harness_log_level=ERROR"])
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=options)
    texts, _ = pipeline | beam_inference.ReadTexts(texts_file)
    generated, _ = texts | beam_inference.GenerateText(model_dir, max_batch_size=BATCH)
    _ = generated | beam_inference.WriteJsonl(output)
    result = pipeline.run()
    result.wait_until_finish()
    wall = time.perf_counter() - start
    metrics = result.metrics().query(beam.metrics.MetricsFilter().with_namespace("RunInference"))
    sums = {}
    for distribution in metrics["distributions"]:
        name = distribution.key.metric.name
        sums[name] = sums.get(name, 0) + distribution.committed.sum
    done = beam_inference.text_counters(result).get("texts_done", 0)
    return {"wall_s": wall, "model_s": sums.get("inference_batch_latency_micro_secs", 0) / 1e6,
            "load_s": sums.get("load_model_latency_milli_secs", 0) / 1e3, "done": done,
            "batches": sum(d.committed.count for d in metrics["distributions"]
                           if d.key.metric.name == "inference_request_batch_size")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="24 texts (CI)")
    parser.add_argument("--model", help="exported SavedModel (default: the shipped default model)")
    parser.add_argument("--texts", type=int, default=512, help="fusion train sources to run")
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    check_record(parser, args)
    with recorded("Batch inference on Apache Beam against a plain loop", args.record):
        run(args)


def run(args):
    """The three ways over the same texts, and the report."""
    from common import describe_machine

    from tf_bert_seqgen.cli.sources import default_model_dir
    from tf_bert_seqgen.data import load_fusion_split

    model_dir = args.model or default_model_dir()
    count = 24 if args.smoke else args.texts
    texts = [source for source, _ in load_fusion_split("train")][:count]
    print(describe_machine(os.cpu_count()), flush=True)
    print(f"model {model_dir}; {len(texts)} fusion train sources, {sum(map(len, texts)) / len(texts):.0f} "
          f"characters on average; at most {BATCH} texts per model call", flush=True)

    with tempfile.TemporaryDirectory() as work:
        texts_file = os.path.join(work, "texts.txt")
        with open(texts_file, "w", encoding="utf-8") as f:
            f.writelines(text + "\n" for text in texts)
        plain = run_plain_loop(model_dir, texts_file)
        print(f"plain loop done in {plain['wall_s']:.0f} s", flush=True)
        beam_runs = {}
        for workers in (1, 2):
            beam_runs[workers] = run_beam(model_dir, texts_file, workers, os.path.join(work, f"out{workers}", "r"))
            if beam_runs[workers]["done"] != len(texts):
                raise RuntimeError(f"Beam with {workers} workers generated {beam_runs[workers]['done']} of "
                                   f"{len(texts)} texts")
            print(f"Beam with {workers} worker(s) done in {beam_runs[workers]['wall_s']:.0f} s", flush=True)

    n = len(texts)
    print(f"\n{'way':<34}{'wall s':>8}{'texts/s':>9}{'in model s':>12}{'model texts/s':>15}")
    fixed = plain["wall_s"] - plain["in_order_s"] - plain["sorted_s"]
    for name, loop in (("plain loop, file order", "in_order_s"), ("plain loop, sorted by length", "sorted_s")):
        wall = fixed + plain[loop]  # one process ran both loops: each row gets the start-up once
        print(f"{name:<34}{wall:8.1f}{n / wall:9.2f}{plain[loop]:12.1f}{n / plain[loop]:15.2f}")
    for workers, run in beam_runs.items():
        name = f"Beam DirectRunner, {workers} worker{'s' if workers > 1 else ''}"
        print(f"{name:<34}{run['wall_s']:8.1f}{n / run['wall_s']:9.2f}{run['model_s']:12.1f}"
              f"{n / run['model_s']:15.2f}")
    print(f"\nplain loop: {fixed:.1f} s to start, load ({plain['load_s']:.1f} s) and trace the first call "
          f"({plain['first_call_s']:.1f} s); Beam: "
          + ", ".join(f"{w} worker(s) {r['batches']} model calls, {r['load_s']:.1f} s loading (summed)"
                      for w, r in beam_runs.items()))
    print("in model s: inside the signature calls (Beam: summed over workers, from RunInference's metrics, with "
          "each worker's first call, which traces the graph); model texts/s: what one process sustains once started")


if __name__ == "__main__":
    main()

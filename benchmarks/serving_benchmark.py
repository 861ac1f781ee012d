"""Serving speed of the exported SavedModel, measured the way production runs it.

    python benchmarks/serving_benchmark.py            # full-size shared model (24 x 1024, vocab 50358)
    python benchmarks/serving_benchmark.py --smoke    # tiny model, 2 programs per XLA export (CI; 12 min on 2 cores)

The parent process exports the model (random weights) for greedy and beam 4, each as the default graph-mode
export, as the XLA variant (`--xla`) and as XLA with bfloat16 and int8 weights (`--weights-dtype`; `--modes`
picks a subset). Each export is then measured in fresh processes that
import only tensorflow and tensorflow_text (plus the serving protos to replay the warm-up records, as
the model server does), through its signatures:
- start: load, warm-up replay (as TF Serving does at load) and ready time, then the first call of 1, 3, 6, 12
  and 32 texts, each beside its second (steady) call; without warm-up, and with it at a first start (an
  empty persistent XLA cache, `TF_XLA_FLAGS=--tf_xla_persistent_cache_directory`) and a second (the cache
  the first filled);
- ms per generated token at batch 1 (and 8 for greedy): T(n) - T(1) over n - 1 through
  `generate_with_options`, against the memory-bandwidth bound of one decode step;
- per-request latency p50 / p90 / p99 with 1, 4, 8 and 16 client threads sending one text each, in the
  steady state (the slowest first use of each row count a batch joins them into reported beside it)
  (greedy exports, `LATENCY_TOKENS` new tokens per request);
- throughput in texts/s and generated tokens/s at batch 1, 8, 32 and 64 (greedy, `THROUGHPUT_TOKENS`);
- the peak resident memory of the serving process before and after one request of 1024 texts.
`transformers`' `generate` on the same weights and the same token ids is the anchor, measured in this
process. Every export forces each row to its full length (min_length), so all sides do the same steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from results import RECORD_HELP, check_record, recorded  # noqa: E402  (standard library only)

SCENARIOS = [("greedy b1", "greedy", 1), ("beam4 b1", "beam4", 1), ("greedy b8", "greedy", 8)]
# mode -> (jit_compile, weights_dtype)
MODES = {"graph": (False, "float32"), "xla": (True, "float32"), "xla-bfloat16": (True, "bfloat16"),
         "xla-int8": (True, "int8")}
CLIENTS = [1, 4, 8, 16]
BATCHES = [1, 8, 32, 64]
LATENCY_TOKENS = 8
THROUGHPUT_TOKENS = 16
RSS_BATCH = 1024  # one request this large runs in max_batch_size slices; its peak memory is reported
FIRST_CALLS = [1, 3, 6, 12, 32]  # texts per call after a start: several row buckets and source widths
STARTS = ("no warm-up", "first start", "second start")


# --- the client: a fresh process with only tensorflow + tensorflow_text -----------------------------

def client(directory: str, texts: list[str], settings: dict) -> dict:
    """Measures one export; returns figures as a dict. Imports nothing of this project's package."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer ops
    from common import BandwidthProbe

    tf.config.threading.set_intra_op_parallelism_threads(settings["threads"])
    figures = {}
    start = time.perf_counter()
    loaded = tf.saved_model.load(directory)
    figures["load_s"] = time.perf_counter() - start
    if settings["warmup"]:
        start = time.perf_counter()
        figures["warmup_records_s"] = replay_warmup(loaded, directory)
        figures["warmup_s"] = time.perf_counter() - start
    serve, options = loaded.signatures["serving_default"], loaded.signatures["generate_with_options"]
    if settings["cold_only"]:
        call = lambda n: timed(lambda: serve(text=tf.constant(texts[:n]))["generated_text"].numpy())  # noqa: E731
        figures["first_calls"] = {n: [call(n), call(n)] for n in FIRST_CALLS if n <= len(texts)}
        return figures

    def generate(batch, new_tokens):
        options(text=tf.constant(texts[:batch]), max_new_tokens=tf.constant(new_tokens),
                length_penalty=tf.constant(1.0))["generated_text"].numpy()

    probe = BandwidthProbe(settings["probe_gb"])
    figures["per_token"] = {}
    for batch in settings["per_token_batches"]:
        figures["per_token"][batch] = per_token_ms(lambda n, b=batch: generate(b, n), settings["new_tokens"],
                                                   settings["repeats"], probe)
    if settings["serving_loads"]:
        def one_text(rows):  # `rows` copies of one text: what joined concurrent calls of it decode
            options(text=tf.constant(texts[:1] * rows), max_new_tokens=tf.constant(settings["latency_tokens"]),
                    length_penalty=tf.constant(1.0))["generated_text"].numpy()

        figures["latency"] = {c: latency(one_text, c, settings["requests"]) for c in CLIENTS}
        figures["throughput"] = {}
        for batch in BATCHES:
            generate(batch, settings["throughput_tokens"])  # a new input width traces once
            best = min(timed(lambda b=batch: generate(b, settings["throughput_tokens"]))
                       for _ in range(settings["repeats"]))
            figures["throughput"][batch] = batch / best
    if settings.get("rss_batch"):
        figures["rss_mb_before"] = peak_rss_mb()
        texts_many = (texts * (settings["rss_batch"] // len(texts) + 1))[:settings["rss_batch"]]
        start = time.perf_counter()
        serve(text=tf.constant(texts_many))["generated_text"].numpy()
        figures["rss_seconds"] = time.perf_counter() - start
        figures["rss_mb_after"] = peak_rss_mb()
    return figures


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replay_warmup(loaded, directory) -> list[float]:
    """What TF Serving does at load: run every PredictionLog record of assets.extra once. Returns the seconds
    of each."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(directory, "assets.extra", "tf_serving_warmup_requests")
    seconds = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        inputs = {name: tf.constant(tf.make_ndarray(value)) for name, value in request.inputs.items()}
        seconds.append(timed(lambda: loaded.signatures[request.model_spec.signature_name](**inputs)))  # noqa: B023
    return seconds


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_token_ms(run, new_tokens: int, repeats: int, probe) -> tuple[float, float]:
    """(ms per decode step, best bandwidth read between repeats): (T(n) - T(1)) / (n - 1), each T the best
    of `repeats`, the two lengths alternating so that load from elsewhere hits both alike."""
    run(1), run(new_tokens)
    best = {1: float("inf"), new_tokens: float("inf")}
    bandwidth = probe.read()
    for _ in range(repeats):
        for n in best:
            best[n] = min(best[n], timed(lambda n=n: run(n)))
        bandwidth = max(bandwidth, probe.read())
    step_ms = 1000 * (best[new_tokens] - best[1]) / (new_tokens - 1)
    return (step_ms if step_ms > 0 else float("nan")), bandwidth


def latency(request, clients: int, requests_per_client: int) -> dict:
    """`clients` threads each send `requests_per_client` one-text requests back to back; latency
    percentiles in ms and requests per second over the whole run: the steady state. Before it, one
    request of 1, 2, 4, ... `clients` copies of the text (`request(rows)`), the row counts the export's
    batching joins these calls into: the XLA variant compiles each new one (once per process), and the
    slowest of them is reported beside the steady state."""
    import numpy as np

    rows = [2 ** i for i in range(clients.bit_length()) if 2 ** i < clients] + [clients]
    first = max(timed(lambda r=r: request(r)) for r in rows)
    times, wall = _concurrent(lambda: request(1), clients, requests_per_client)
    p50, p90, p99 = np.percentile(np.array(times) * 1000, [50, 90, 99])
    return {"p50": p50, "p90": p90, "p99": p99, "per_s": len(times) / wall, "count": len(times),
            "first_use_max": 1000 * first}


def _concurrent(request, clients: int, requests_per_client: int) -> tuple[list[float], float]:
    """(seconds of each request, wall seconds) of `clients` threads sending requests back to back."""
    times, lock = [], threading.Lock()

    def worker():
        for _ in range(requests_per_client):
            took = timed(request)
            with lock:
                times.append(took)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times, time.perf_counter() - start


def run_client(directory: str, texts: list[str], settings: dict, cache: str | None = None) -> dict:
    """`client` in a fresh interpreter (given TF's persistent XLA cache `cache`, if any); checks that it loaded
    none of this project's package or torch."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import serving_benchmark as b; "
            "out = b.client(sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])); "
            "mods = sorted(m for m in sys.modules if m.split('.')[0] in ('tf_bert_seqgen', 'torch', 'transformers')); "
            "print('RESULT ' + json.dumps({'figures': out, 'modules': mods}))")
    environment = dict(os.environ)
    if cache:
        environment["TF_XLA_FLAGS"] = f"{environment.get('TF_XLA_FLAGS', '')} --tf_xla_persistent_cache_directory={cache}"
    done = subprocess.run([sys.executable, "-c", code, os.path.dirname(os.path.abspath(__file__)), directory,
                           json.dumps(texts), json.dumps(settings)], capture_output=True, text=True, env=environment)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"client failed on {directory}:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    if result["modules"]:
        raise RuntimeError(f"the serving client loaded {result['modules']}: production has only tensorflow")
    return result["figures"]


# --- the parent: export, anchor, report ---------------------------------------------------------------

def wordpiece_vocabulary(size: int, texts: list[str]) -> list[str]:
    """A WordPiece vocabulary of exactly `size` entries: the special tokens, the words of `texts`, then
    fillers, so that every id a random model generates detokenizes."""
    special = ["<pad>", "</s>", "<s>", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w for t in texts for w in t.lower().replace(".", " . ").replace(",", " , ").split()})
    vocabulary = (special + words)[:size]
    return vocabulary + [f"filler{i}" for i in range(size - len(vocabulary))]


def transformers_anchor(model, texts, tokenizer, settings, probe):
    """transformers' generate on the same weights and token ids: ms per token and texts per second."""
    import numpy as np
    import torch
    from transformers import EncoderDecoderModel

    torch.set_num_threads(settings["threads"])
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        hf = EncoderDecoderModel.from_pretrained(directory).eval()

    def generate(batch, beams, new_tokens):
        inputs = tokenizer(texts[:batch])
        with torch.no_grad():
            hf.generate(input_ids=torch.tensor(np.asarray(inputs["input_ids"]), dtype=torch.long),
                        attention_mask=torch.tensor(np.asarray(inputs["attention_mask"]), dtype=torch.long),
                        max_new_tokens=new_tokens, min_length=new_tokens + 1, num_beams=beams, do_sample=False)

    figures = {"per_token": {}, "throughput": {}}
    for name, kind, batch in SCENARIOS:
        beams = 4 if kind == "beam4" else 1
        figures["per_token"][name] = per_token_ms(lambda n, b=batch, k=beams: generate(b, k, n),
                                                  settings["new_tokens"], settings["repeats"], probe)[0]
    for batch in BATCHES:
        generate(batch, 1, settings["throughput_tokens"])
        best = min(timed(lambda b=batch: generate(b, 1, settings["throughput_tokens"]))
                   for _ in range(settings["repeats"]))
        figures["throughput"][batch] = batch / best
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model, few repeats (CI)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--model", choices=["full", "base"], default="full",
                        help="full: 24 x 1024, vocab 50358 (the released models); base: 12 x 768, vocab 32000")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--skip-rss", action="store_true",
                        help=f"leave out the {RSS_BATCH}-text memory request (about 7 minutes per greedy export)")
    parser.add_argument("--row-buckets", help="XLA exports: the row buckets, e.g. 1,4,16,32 (default powers of 2)")
    parser.add_argument("--width-buckets", help="XLA exports: the source width buckets, e.g. 16,64,128")
    parser.add_argument("--starts-only", action="store_true",
                        help="greedy exports' starts and first calls only (no per-token, latency, throughput, "
                             "transformers): to compare shape buckets")
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes takes a comma-separated subset of {', '.join(MODES)}")
    check_record(parser, args)
    with recorded("Serving the exports: starts, first calls, latency, throughput", args.record):
        run(args)


def run(args):
    modes = args.modes.split(",")
    import numpy as np
    import tensorflow as tf
    from common import BandwidthProbe, bound_ms, decoder_step_bytes, describe_machine

    from tf_bert_seqgen import (
        BertForSeqGenerationConfig,
        EncoderDecoder,
        EncoderDecoderConfig,
        WordPieceTokenizer,
    )
    from tf_bert_seqgen.data import load_fusion_split
    from tf_bert_seqgen.export import export_saved_model, read_export_info

    tf.get_logger().setLevel("ERROR")
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if args.smoke:
        config = BertForSeqGenerationConfig(vocab_size=600, hidden_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=128)
        args.repeats, args.new_tokens = 1, 4
        # Two programs per XLA export, not 24: each start of each XLA export compiles (or loads) them all,
        # which made the smoke run take 15 minutes; the shape logic is the same with any buckets.
        args.row_buckets, args.width_buckets = args.row_buckets or "1,32", args.width_buckets or "128"
    elif args.model == "base":
        config = BertForSeqGenerationConfig(vocab_size=32000, hidden_size=768, num_hidden_layers=12,
                                            num_attention_heads=12, intermediate_size=3072)
    else:
        config = BertForSeqGenerationConfig()
    settings = dict(threads=args.threads, repeats=args.repeats, new_tokens=args.new_tokens,
                    latency_tokens=min(LATENCY_TOKENS, args.new_tokens),
                    throughput_tokens=min(THROUGHPUT_TOKENS, args.new_tokens), requests=1 if args.smoke else 4,
                    probe_gb=0.05 if args.smoke else 1.0)
    # Real English sources (the fusion data), 64 of them for the largest batch.
    texts = [source for source, _ in load_fusion_split("train")][:max(BATCHES)]
    tokenizer = WordPieceTokenizer(wordpiece_vocabulary(config.vocab_size, texts), max_length=128)
    tf.keras.utils.set_random_seed(0)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=True))
    step_bytes = {mode: decoder_step_bytes(config, MODES[mode][1]) for mode in modes}
    print(describe_machine(args.threads))
    width = np.asarray(tokenizer(texts)["input_ids"]).shape[1]
    print(f"model: {config.num_hidden_layers} layers, hidden {config.hidden_size}, vocab {config.vocab_size}, "
          f"shared, {model.count_params():,} parameters; sources: fusion train texts, padded width "
          f"{width}; a decode step reads " + ", ".join(f"{step_bytes[m] / 1e9:.2f} GB ({m})" for m in modes))

    buckets = {name: [int(n) for n in value.split(",")]
               for name, value in (("row_buckets", args.row_buckets), ("width_buckets", args.width_buckets)) if value}
    figures = {}
    with tempfile.TemporaryDirectory() as root:
        for kind, beams in (("greedy", 1),) if args.starts_only else (("greedy", 1), ("beam4", 4)):
            for mode in modes:
                jit, dtype = MODES[mode]
                directory = os.path.join(root, f"{kind}_{mode}")
                start = time.perf_counter()
                export_saved_model(model, tokenizer, directory, jit_compile=jit, num_beams=beams,
                                   weights_dtype=dtype, max_new_tokens=args.new_tokens, min_length=args.new_tokens + 1,
                                   **(buckets if jit else {}))
                if jit:
                    info = read_export_info(directory)
                    print(f"{mode}: row buckets {info['row_buckets']}, width buckets {info['width_buckets']}")
                print(f"exported {kind} {mode} in {time.perf_counter() - start:.0f} s", flush=True)
                cache = os.path.join(root, f"{kind}_{mode}_xla_cache")
                cold = {start: run_client(directory, texts, {**settings, "warmup": start != "no warm-up",
                                                             "cold_only": True},
                                          cache=None if start == "no warm-up" else cache)
                        for start in STARTS}
                if args.starts_only:
                    figures[kind, mode] = {"cold": cold, "size_mb": directory_mb(directory)}
                    continue
                full = run_client(directory, texts, cache=cache, settings={
                    **settings, "warmup": True, "cold_only": False, "serving_loads": kind == "greedy",
                    "rss_batch": RSS_BATCH if kind == "greedy" and not args.skip_rss else 0,
                    "per_token_batches": [1, 8] if kind == "greedy" else [1]})
                figures[kind, mode] = {"cold": cold, "size_mb": directory_mb(directory), **full}
                print(f"measured {kind} {mode}", flush=True)
    if args.starts_only:
        report_starts(figures)
        return
    probe = BandwidthProbe(settings["probe_gb"])
    anchor = transformers_anchor(model, texts, tokenizer, settings, probe)
    report(figures, anchor, settings, step_bytes, bound_ms, modes)


def report_starts(figures):
    modes = sorted({mode for _, mode in figures})
    print("\nexport size, MB: " + ", ".join(f"{mode} {figures['greedy', mode]['size_mb']:.0f}" for mode in modes))
    print("\nstart, s (fresh process: load, warm-up replay, ready = both; then the first call of n texts / its "
          "second call; first and second start share TF's persistent XLA cache; per record: the warm-up's "
          "mean over its records)")
    calls = [n for n in FIRST_CALLS if str(n) in next(iter(figures.values()))["cold"]["first start"]["first_calls"]]
    print(f"{'export':<20}{'start':<14}{'load':>6}{'warm-up':>9}{'ready':>7}{'records':>8}{'per record':>11}"
          + "".join(f"{f'n={n}':>13}" for n in calls))
    for (kind, mode), f in figures.items():
        for start in STARTS:
            c = f["cold"][start]
            warm, records = c.get("warmup_s", 0.0), c.get("warmup_records_s", [])
            per_record = f"{sum(records) / len(records):11.2f}" if records else f"{'':>11}"
            print(f"{kind + ' ' + mode:<20}{start:<14}{c['load_s']:6.1f}{warm:9.1f}{c['load_s'] + warm:7.1f}"
                  f"{len(records):8d}{per_record}"
                  + "".join(f"{c['first_calls'][str(n)][0]:6.2f}/{c['first_calls'][str(n)][1]:<6.2f}" for n in calls))


def directory_mb(directory: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(directory) for f in files) / 1e6


def report(figures, anchor, settings, step_bytes, bound_ms, modes):
    print("\nms per generated token (exported SavedModel; transformers' generate on the same weights); "
          "xla/ours: float32 XLA's ms over this mode's; bound: this mode's bytes per step over the bandwidth")
    print(f"{'scenario':<11}{'mode':<14}{'ms/tok':>8}{'torch':>8}{'torch/ours':>11}{'xla/ours':>9}{'ours/bound':>11}"
          f"{'GB/s':>7}")
    for name, kind, batch in SCENARIOS:
        torch_ms = anchor["per_token"][name]
        xla = figures[kind, "xla"]["per_token"][str(batch)][0] if "xla" in modes else float("nan")
        for mode in modes:
            ms, bandwidth = figures[kind, mode]["per_token"][str(batch)]
            print(f"{name:<11}{mode:<14}{ms:8.1f}{torch_ms:8.1f}{torch_ms / ms:11.2f}{xla / ms:9.2f}"
                  f"{ms / bound_ms(step_bytes[mode], bandwidth):11.2f}{bandwidth / 1e9:7.1f}")
    report_starts(figures)
    print(f"\nlatency per request, ms (greedy, one text, {settings['latency_tokens']} new tokens), by client threads")
    print(f"{'export':<14}{'clients':>8}{'p50':>9}{'p90':>9}{'p99':>9}{'p99/p50':>9}{'requests/s':>12}"
          f"{'first-use max':>17}")
    for mode in modes:
        for clients, row in figures["greedy", mode]["latency"].items():
            print(f"{mode:<14}{clients:>8}{row['p50']:9.0f}{row['p90']:9.0f}{row['p99']:9.0f}"
                  f"{row['p99'] / row['p50']:9.2f}{row['per_s']:12.2f}{row['first_use_max']:17.0f}")
    tokens = settings["throughput_tokens"]
    print(f"\nthroughput (greedy, {tokens} new tokens per text): texts/s (generated tokens/s)")
    print(f"{'batch':>5}" + "".join(f"{mode:>18}" for mode in modes) + f"{'transformers':>18}"
          + "".join(f"{mode + '/torch':>16}" for mode in modes))
    cell = lambda rate: f"{rate:7.2f} ({rate * tokens:6.0f})"  # noqa: E731
    for batch in BATCHES:
        rates = [figures["greedy", m]["throughput"][str(batch)] for m in modes]
        torch_rate = anchor["throughput"][batch]
        print(f"{batch:>5}" + "".join(f"{cell(rate):>18}" for rate in rates) + f"{cell(torch_rate):>18}"
              + "".join(f"{rate / torch_rate:16.2f}" for rate in rates))
    if "rss_mb_after" not in figures["greedy", modes[0]]:
        return
    print(f"\npeak RSS of the serving process (greedy), before and after one request of {RSS_BATCH} texts")
    for mode in modes:
        f = figures["greedy", mode]
        print(f"{mode:<14} {f['rss_mb_before']:8.0f} MB -> {f['rss_mb_after']:8.0f} MB "
              f"({f['rss_seconds']:.0f} s for the request)")


if __name__ == "__main__":
    main()

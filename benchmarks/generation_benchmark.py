"""Generation speed: our TF graph mode, our XLA mode and `transformers` (PyTorch), same weights, same threads.

    python benchmarks/generation_benchmark.py            # full-size shared model (24 x 1024, vocab 50358)
    python benchmarks/generation_benchmark.py --smoke    # tiny model, seconds (CI)

Prints ms per generated token for greedy batch 1, beam 4 batch 1 and greedy batch 8 (32 new tokens from a
128-token source), the ratios to `transformers`, and the memory-bandwidth bound: bytes of weights one
decoder step must read, divided by the machine's measured read bandwidth.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")  # retracing per max_length is expected here

from tf_bert_seqgen import BertForSeqGenerationConfig, EncoderDecoder, EncoderDecoderConfig  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BandwidthProbe, bound_ms, decoder_step_bytes, describe_machine  # noqa: E402

SCENARIOS = [("greedy b1", 1, 1), ("beam4 b1", 1, 4), ("greedy b8", 8, 1)]


def per_token_ms(run, new_tokens: int, repeats: int, probe: BandwidthProbe) -> tuple[float, float]:
    """Per decode step, the encoder and first step taken out: (T(n) - T(1)) / (n - 1), each T the best of
    `repeats`. The two lengths alternate, so a burst of load from elsewhere hits both alike. Returns
    (ms per step, best memory bandwidth read between the repeats)."""
    run(1), run(new_tokens)  # trace / compile / warm caches
    best = {1: float("inf"), new_tokens: float("inf")}
    bandwidth = probe.read()
    for _ in range(repeats):
        for n in best:
            start = time.perf_counter()
            run(n)
            best[n] = min(best[n], time.perf_counter() - start)
        bandwidth = max(bandwidth, probe.read())
    step_ms = 1000 * (best[new_tokens] - best[1]) / (new_tokens - 1)
    if step_ms <= 0:  # noise larger than the decode itself (the smoke model, or a burst of load)
        print(f"timing noise: {new_tokens} tokens took no longer than 1; reported as nan", file=sys.stderr)
        step_ms = float("nan")
    return step_ms, bandwidth


def ours(model, ids, beams, jit):
    def run(new_tokens):
        # min_length forces every row to the full length, so each mode does the same number of steps.
        model.generate(ids, max_new_tokens=new_tokens, min_length=new_tokens + 1, num_beams=beams,
                       jit_compile=jit).numpy()
    return run


def reference(hf, ids, beams):
    import torch

    input_ids = torch.tensor(ids, dtype=torch.long)

    def run(new_tokens):
        with torch.no_grad():
            hf.generate(input_ids=input_ids, max_new_tokens=new_tokens, min_length=new_tokens + 1,
                        num_beams=beams, do_sample=False)
    return run


def build(config: BertForSeqGenerationConfig, seed: int):
    """Our shared model and the `transformers` model with the same random weights."""
    tf.keras.utils.set_random_seed(seed)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=True))
    hf = None
    try:
        from transformers import EncoderDecoderModel
    except ImportError:
        print("transformers not installed: reference column skipped", file=sys.stderr)
        return model, hf
    with tempfile.TemporaryDirectory() as directory:
        model.save_pretrained(directory)
        hf = EncoderDecoderModel.from_pretrained(directory).eval()
    return model, hf


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny model, few repeats (CI)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--source-length", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    args = parser.parse_args(argv)

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if args.smoke:
        config = BertForSeqGenerationConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=128)
        args.repeats, args.source_length, args.new_tokens = 1, 16, 4
    else:
        config = BertForSeqGenerationConfig()
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass

    probe = BandwidthProbe(0.05 if args.smoke else 1.0)
    model, hf = build(config, seed=0)
    step_bytes = decoder_step_bytes(config)
    print(describe_machine(args.threads))
    print(f"model: {config.num_hidden_layers} layers, hidden {config.hidden_size}, vocab {config.vocab_size}, "
          f"shared, {model.count_params():,} parameters; threads {args.threads}")
    print(f"a decoder step reads {step_bytes / 1e9:.2f} GB of weights; the bound of a mode is that over the "
          "best memory read bandwidth measured between its repeats (GB/s columns)")
    rng = np.random.default_rng(0)
    print(f"\n{'scenario':<11} {'graph ms/tok':>12} {'xla ms/tok':>11} {'torch ms/tok':>12} "
          f"{'torch/graph':>11} {'torch/xla':>9} {'graph/bound':>11} {'xla/bound':>9} {'GB/s':>11}")
    for name, batch, beams in SCENARIOS:
        ids = rng.integers(5, config.vocab_size, size=(batch, args.source_length)).astype(np.int32)
        graph, graph_bandwidth = per_token_ms(ours(model, ids, beams, False), args.new_tokens, args.repeats, probe)
        xla, xla_bandwidth = per_token_ms(ours(model, ids, beams, True), args.new_tokens, args.repeats, probe)
        torch_ms = (per_token_ms(reference(hf, ids, beams), args.new_tokens, args.repeats, probe)[0] if hf
                    else float("nan"))
        print(f"{name:<11} {graph:12.1f} {xla:11.1f} {torch_ms:12.1f} {torch_ms / graph:11.2f} "
              f"{torch_ms / xla:9.2f} {graph / bound_ms(step_bytes, graph_bandwidth):11.2f} "
              f"{xla / bound_ms(step_bytes, xla_bandwidth):9.2f} "
              f"{graph_bandwidth / 1e9:5.1f}/{xla_bandwidth / 1e9:<5.1f}")
    print("\nratios > 1 in torch/graph and torch/xla mean we are faster; x/bound is how far above the "
          "memory-bandwidth bound each mode runs (1.00 = at the bound; the bound is a batch-1 greedy step's).")
    bfloat16_timings(model, config, args, rng, probe, step_bytes)


def bfloat16_timings(model, config, args, rng, probe, step_bytes):
    """Greedy batch 1 with bfloat16 weights (half the bytes per step), both modes, against the fp32
    bound, and its agreement with fp32 over 8 sources."""
    half = model.cast("bfloat16")
    ids = rng.integers(5, config.vocab_size, size=(1, args.source_length)).astype(np.int32)
    figures = []
    for jit in (False, True):
        ms, bandwidth = per_token_ms(ours(half, ids, 1, jit), args.new_tokens, args.repeats, probe)
        figures.append(f"{'XLA' if jit else 'graph'} {ms:.1f} ms/tok = {ms / bound_ms(step_bytes, bandwidth):.2f} "
                       f"x the fp32 bound ({bandwidth / 1e9:.1f} GB/s)")
    sources = rng.integers(5, config.vocab_size, size=(8, args.source_length)).astype(np.int32)
    full = model.generate(sources, max_new_tokens=args.new_tokens).numpy()[:, 1:]
    low = half.generate(sources, max_new_tokens=args.new_tokens).numpy()[:, 1:]
    # Tokens equal up to the first disagreement per row: after it, the prefixes differ anyway.
    agree = sum(int(np.argmin(np.append(a == b, False))) for a, b in zip(full, low, strict=True))
    print(f"\nbfloat16 weights, greedy b1: {'; '.join(figures)}; identical prefix with fp32: "
          f"{agree}/{full.size} tokens ({100 * agree / full.size:.0f}%)")


if __name__ == "__main__":
    main()

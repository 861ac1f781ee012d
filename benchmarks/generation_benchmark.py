"""Generation speed: our TF graph mode, our XLA mode and `transformers` (PyTorch), same weights, same threads.

    python benchmarks/generation_benchmark.py            # full-size shared model (24 x 1024, vocab 50358)
    python benchmarks/generation_benchmark.py --smoke    # tiny model, seconds (CI)

Prints ms per generated token for greedy batch 1, beam 4 batch 1 and greedy batch 8 (32 new tokens from a
128-token source): graph mode and XLA with float32 weights, XLA with bfloat16 and int8 weights (the product
forms an export would measure, `tf_bert_seqgen.tuning`), and `transformers`; the ratios, and each format's
memory-bandwidth bound: the bytes of weights one decoder step reads in that format, divided by the
machine's measured read bandwidth. Last, how often the bfloat16 and int8 weights decode the float32 tokens.
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

from tf_bert_seqgen import (  # noqa: E402
    BertForSeqGenerationConfig,
    EncoderDecoder,
    EncoderDecoderConfig,
    tuning,  # noqa: E402
)
from tf_bert_seqgen.export import weights  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BandwidthProbe, bound_ms, decoder_step_bytes, describe_machine  # noqa: E402
from results import RECORD_HELP, check_record, recorded  # noqa: E402  (standard library only)

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
    parser.add_argument("--model", choices=["full", "base"], default="full",
                        help="full: 24 x 1024, vocab 50358 (the released models); base: 12 x 768, vocab 32000")
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    check_record(parser, args)
    with recorded("Decoding speed of each weight storage against transformers", args.record) as options:
        options["headline"] = run(args)


def run(args):
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if args.smoke:
        config = BertForSeqGenerationConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=128)
        args.repeats, args.source_length, args.new_tokens = 1, 16, 4
    elif args.model == "base":
        config = BertForSeqGenerationConfig(vocab_size=32000, hidden_size=768, num_hidden_layers=12,
                                            num_attention_heads=12, intermediate_size=3072)
    else:
        config = BertForSeqGenerationConfig()
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass

    probe = BandwidthProbe(0.05 if args.smoke else 1.0)
    model, hf = build(config, seed=0)
    print(describe_machine(args.threads))
    print(f"model: {config.num_hidden_layers} layers, hidden {config.hidden_size}, vocab {config.vocab_size}, "
          f"shared, {model.count_params():,} parameters; threads {args.threads}")
    print("a decoder step reads " + ", ".join(f"{decoder_step_bytes(config, dtype) / 1e9:.2f} GB in {dtype}"
                                              for dtype in WEIGHT_FORMATS)
          + "; the bound of a run is that over the best memory read bandwidth measured between its repeats")
    stored = stored_models(model, config, args)
    rng = np.random.default_rng(0)
    print(f"\n{'scenario':<11}{'weights':<10}{'mode':<7}{'ms/tok':>8}{'torch/ours':>12}{'fp32 XLA/ours':>15}"
          f"{'ours/bound':>12}{'GB/s':>7}")
    headline = [HEADLINE]
    for name, batch, beams in SCENARIOS:
        ids = rng.integers(5, config.vocab_size, size=(batch, args.source_length)).astype(np.int32)
        torch_ms = (per_token_ms(reference(hf, ids, beams), args.new_tokens, args.repeats, probe)[0] if hf
                    else float("nan"))
        runs = [("float32", "graph", model, False), ("float32", "XLA", model, True)]
        runs += [(dtype, "XLA", copy, True) for dtype, copy in stored.items()]
        fp32_xla, found = None, {}
        for dtype, mode, ours_model, jit in runs:
            ms, bandwidth = per_token_ms(ours(ours_model, ids, beams, jit), args.new_tokens, args.repeats, probe)
            fp32_xla = ms if (dtype, mode) == ("float32", "XLA") else fp32_xla
            found[dtype, mode] = ms
            versus = f"{fp32_xla / ms:15.2f}" if fp32_xla and mode == "XLA" else f"{'':>15}"
            print(f"{name:<11}{dtype:<10}{mode:<7}{ms:8.1f}{torch_ms / ms:12.2f}{versus}"
                  f"{ms / bound_ms(decoder_step_bytes(config, dtype), bandwidth):12.2f}{bandwidth / 1e9:7.1f}",
                  flush=True)
        print(f"{name:<11}{'float32':<10}{'torch':<7}{torch_ms:8.1f}")
        headline.append(headline_row(name, found, torch_ms))
    print("\ntorch/ours > 1: we are faster than transformers; fp32 XLA/ours: the gain over float32 weights under "
          "XLA; ours/bound: how far above its own format's memory-bandwidth bound a run is (1.00 = at it).")
    agreement(model, stored, config, args, rng)
    return "\n".join(headline)


HEADLINE = ("| ms per token | graph | XLA | XLA bfloat16 | XLA int8 | transformers | transformers / XLA "
            "| transformers / XLA int8 |\n|---|---|---|---|---|---|---|---|")


def headline_row(scenario: str, found: dict, torch_ms: float) -> str:
    """The README headline's row of one scenario, from {(weights, mode): ms per token}."""
    xla, int8 = found["float32", "XLA"], found["int8", "XLA"]
    cells = [found["float32", "graph"], xla, found["bfloat16", "XLA"], int8, torch_ms]
    return (f"| {scenario} | " + " | ".join(f"{ms:.1f}" for ms in cells)
            + f" | {torch_ms / xla:.2f} | {torch_ms / int8:.2f} |")


WEIGHT_FORMATS = ("float32", "bfloat16", "int8")


def stored_models(model, config, args) -> dict:
    """{dtype: a copy of `model` whose matrices are stored in dtype, with the product forms measured here for
    the scenarios' row counts} for bfloat16 and int8: what an XLA export with `weights_dtype` serves."""
    rows = sorted({batch * beams for _, batch, beams in SCENARIOS})
    copies = {}
    for dtype in ("bfloat16", "int8"):
        start = time.perf_counter()
        forms, _ = tuning.measure_forms(config, dtype, rows, encoder_rows=args.source_length)
        copies[dtype] = weights.store(model, dtype, jit_compile=True, forms=forms).model
        print(f"{dtype} product forms measured in {time.perf_counter() - start:.0f} s: {forms.to_dict()}", flush=True)
    return copies


def agreement(model, stored, config, args, rng):
    """How many tokens bfloat16 and int8 weights decode as float32 does (greedy, XLA, 8 sources)."""
    sources = rng.integers(5, config.vocab_size, size=(8, args.source_length)).astype(np.int32)
    full = model.generate(sources, max_new_tokens=args.new_tokens, jit_compile=True).numpy()[:, 1:]
    for dtype, copy in stored.items():
        low = copy.generate(sources, max_new_tokens=args.new_tokens, jit_compile=True).numpy()[:, 1:]
        # Tokens equal up to the first disagreement per row: after it, the prefixes differ anyway.
        agree = sum(int(np.argmin(np.append(a == b, False))) for a, b in zip(full, low, strict=True))
        print(f"{dtype} weights, greedy: identical prefix with float32: {agree}/{full.size} tokens "
              f"({100 * agree / full.size:.0f}%)")


if __name__ == "__main__":
    main()

"""Run a benchmark with the instructions an AVX2-only CPU gives it, on a CPU that has more (AVX-512).

    python benchmarks/avx2_only.py benchmarks/serving_benchmark.py --skip-rss
    python benchmarks/avx2_only.py benchmarks/generation_benchmark.py

This project's machines change CPU kind between sessions, and the AVX2-only kind is the one where graph
mode fell behind transformers (issue 14). This wrapper caps every library a benchmark runs on to the
kernels that kind gets, then runs the script (arguments passed through) with those settings in its
environment, which the serving benchmark's client processes inherit:
- TensorFlow graph mode: Eigen, as TensorFlow picks on CPUs without AVX512-VNNI / BF16 / AMX
  (`TF_ENABLE_ONEDNN_OPTS=0`). TensorFlow's wheel compiles Eigen for AVX, so these are the very
  instructions an AVX2-only CPU runs.
- XLA: code generated for AVX2 at most (`--xla_cpu_max_isa=AVX2`: ymm registers, no zmm).
- PyTorch (the transformers anchor): ATen's AVX2 kernels, MKL and oneDNN capped at AVX2.
What it cannot give: an AVX2-only CPU's cores, caches and memory bandwidth. Figures from it are labelled
so (`common.describe_machine`); they show whether our forms hold on AVX2 instructions, not a given CPU.
"""

from __future__ import annotations

import os
import sys

XLA_FLAG = "--xla_cpu_max_isa=AVX2"

ENVIRONMENT = {
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def capped_environment(environ) -> dict:
    """`environ` with the AVX2 caps added (an XLA_FLAGS already set keeps its other flags)."""
    xla_flags = " ".join(flag for flag in environ.get("XLA_FLAGS", "").split()
                         if not flag.startswith("--xla_cpu_max_isa"))
    return {**environ, **ENVIRONMENT, "XLA_FLAGS": f"{xla_flags} {XLA_FLAG}".strip()}


def is_capped(environ=os.environ) -> bool:
    """Whether this process runs under the caps (read by the benchmarks' CPU line)."""
    return XLA_FLAG in environ.get("XLA_FLAGS", "").split() and environ.get("TF_ENABLE_ONEDNN_OPTS") == "0"


def main(argv: list[str]) -> None:
    if not argv or not argv[0].endswith(".py"):
        sys.exit("usage: python benchmarks/avx2_only.py BENCHMARK.py [its arguments]")
    if not os.path.isfile(argv[0]):
        sys.exit(f"avx2_only: no such script: {argv[0]}")
    os.execve(sys.executable, [sys.executable, *argv], capped_environment(os.environ))


if __name__ == "__main__":
    main(sys.argv[1:])

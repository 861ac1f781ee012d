"""How fast each way of writing `x @ W^T` streams the weights, on the CPU at hand: the choice behind
`tf_bert_seqgen.layers.times_transposed`.

    python benchmarks/product_forms.py                          # the CPU's own TensorFlow backend
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/product_forms.py  # Eigen, what AVX2-only CPUs run
    python benchmarks/product_forms.py --smoke                  # seconds (CI)

A decode step is a chain of matrix products with a few rows each, too large for the caches, so each form
is timed over a chain of distinct matrices (a decoder layer's feed-forward shapes, 4096 x 1024 and 1024 x
4096) at 1, 4, 8, 32 and 128 rows, in graph mode and under XLA. Figures: ms per chain and the bandwidth
they imply (GB/s, higher is better). TensorFlow runs graph-mode products on oneDNN on CPUs with
AVX512-VNNI / BF16 / AMX and on Eigen elsewhere; TF_ENABLE_ONEDNN_OPTS=0 shows the Eigen side on any CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tensorflow as tf  # noqa: E402
from common import describe_machine  # noqa: E402
from results import RECORD_HELP, check_record, recorded  # noqa: E402  (standard library only)

# Weights stored [out, in] (the package's layout), except the last form, Keras' [in, out].
FORMS = {
    "x @ W^T": lambda x, w: tf.matmul(x, w, transpose_b=True),
    "batched x @ W^T": lambda x, w: tf.matmul(x[None], w, transpose_b=True)[0],
    "(W @ x^T)^T": lambda x, w: tf.transpose(tf.matmul(w, x, transpose_b=True)),
    # A decode step's graph form (layers._transposed): the identity product turns the small result.
    "I @ (W @ x^T)^T (ours, graph)": lambda x, w: tf.matmul(tf.eye(tf.shape(x)[0]), tf.matmul(w, x, transpose_b=True),
                                                          transpose_b=True),
    "broadcast matvec (ours, XLA)": lambda x, w: tf.linalg.matvec(w[None], x[:, None, :])[:, 0],
    "x @ W, W [in, out]": lambda x, w: tf.matmul(x, w),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="small matrices, one repeat (CI)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--matrices", type=int, default=48, help="matrices in the chain (48 = 0.8 GB)")
    parser.add_argument("--record", action="store_true", help=RECORD_HELP)
    args = parser.parse_args(argv)
    check_record(parser, args)
    with recorded("Matrix product forms under graph mode and XLA", args.record):
        run(args)


def run(args):
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    size, count, repeats, rows = (1024, 4, 1, [1, 4]) if args.smoke else (4096, args.matrices, 4, [1, 4, 8, 32, 128])
    shapes = [(size, 1024) if i % 2 == 0 else (1024, size) for i in range(count)]
    weights = [tf.Variable(tf.random.normal(shape, stddev=0.03)) for shape in shapes]
    keras_layout = [tf.Variable(tf.transpose(w)) for w in weights]
    gigabytes = sum(a * b for a, b in shapes) * 4 / 1e9
    print(describe_machine(args.threads))
    print(f"a chain of {count} matrices, {gigabytes:.2f} GB; ms per chain (GB/s)")
    for jit in (False, True):
        for name, form in FORMS.items():
            chain_weights = keras_layout if "[in, out]" in name else weights

            def chain(x, form=form, chain_weights=chain_weights):
                for w in chain_weights:
                    x = form(x, w)
                return x

            run = tf.function(chain, jit_compile=jit)
            cells = []
            for r in rows:
                if not jit and "broadcast" in name and r > 8:
                    cells.append(f"{r:>4}: {'(slow)':>15}")  # one weight read per row in graph mode
                    continue
                x = tf.random.normal([r, 1024])
                run(x).numpy()
                best = min(timed(lambda x=x, run=run: run(x).numpy()) for _ in range(repeats))
                cells.append(f"{r:>4}: {1000 * best:6.1f} ({gigabytes / best:5.1f})")
            print(f"{'XLA' if jit else 'graph':<6}{name:<32}" + "".join(cells), flush=True)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()

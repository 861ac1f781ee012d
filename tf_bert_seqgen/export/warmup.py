"""The TF Serving warm-up file: PredictionLog records the server replays at load, so that no request after
them traces a function or compiles a program.

A graph-mode export runs any shape: one request per signature instantiates every function. An XLA export
compiles one program per (row bucket, source width bucket) (`module.shape_buckets`), and every text
signature and `generate_ids` run the same programs, whose decoding options are inputs, not part of them.
Its records: one `serving_default` request (which instantiates that signature's function), then a request
of each row count for each width through `generate_with_options_per_text` with one new token: the same
program as a full-length request, compiled as much, run in a fraction of the time (replaying 32-row
requests to full length was most of a warm-up's time); then `score` and `encode`. (Not
`generate_with_options`: TF Serving's --enable_batching refuses its scalar inputs, and a warm-up request
that fails fails the model's load; nor `generate_ids`, whose [b, s] ids its batching concatenates only at
one common s.) Replayed with TF's persistent XLA cache (`TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=DIR`,
`warm_cache`), a second start loads those programs instead of compiling them.
"""

from __future__ import annotations

import os
import subprocess
import sys

import tensorflow as tf

from tf_bert_seqgen.export.files import WARMUP_FILE
from tf_bert_seqgen.export.rows import bucket_for

WARMUP_TEXTS = ["This is a warm-up request.", ""]


def width_texts(module) -> list[str]:
    """For each source width bucket of `module` (an XLA export's), the shortest warm-up text whose tokens
    fill it: a word is at least one token, so prefixes of enough words reach every bucket."""
    limit = module.max_input_length
    words = WARMUP_TEXTS[0].split() * limit

    def width(count):
        tokens = int(module.tokenizer.tokenize(tf.constant([" ".join(words[:count])])).row_lengths()[0])
        return int(bucket_for(max(min(tokens, limit), 1), module.width_buckets))

    found = {}
    for count in range(1, len(words) + 1):
        found.setdefault(width(count), " ".join(words[:count]))
        if limit in found:
            break
    return [found[w] for w in sorted(found)]


def warmup_requests(module) -> list[tuple[str, dict]]:
    """(signature, inputs) of each record, in replay order (module docstring)."""
    text = WARMUP_TEXTS[0]
    if module.jit_compile:
        texts = width_texts(module)
        requests = [("serving_default", {"text": texts[:1]})]
        requests += [_one_token([width_text] * rows, module) for width_text in texts for rows in module.row_buckets]
    else:
        requests = [("serving_default", {"text": WARMUP_TEXTS}), _one_token([text], module)]  # "" skips the model
    return requests + [("score", {"source_text": [text], "target_text": [text]}), ("encode", {"text": [text]})]


def _one_token(texts: list[str], module) -> tuple[str, dict]:
    """A `generate_with_options_per_text` request of `texts` that decodes one new token each."""
    return ("generate_with_options_per_text", {"text": texts, "max_new_tokens": [1] * len(texts),
                                               "length_penalty": [float(module.config.length_penalty)] * len(texts)})


def write_warmup_requests(export_dir: str, module):
    """Writes `WARMUP_FILE`: `warmup_requests` as PredictionLog records."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in warmup_requests(module):
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature))
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def read_warmup_requests(export_dir: str) -> list[tuple[str, dict]]:
    """The records of an export's warm-up file as (signature, {input name: numpy value}), in file order."""
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP_FILE)).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        requests.append((request.model_spec.signature_name,
                         {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}))
    return requests


def replay(loaded, export_dir: str):
    """Calls `loaded` (`tf.saved_model.load(export_dir)`) with each warm-up record, as TF Serving does at load."""
    for signature, inputs in read_warmup_requests(export_dir):
        loaded.signatures[signature](**{name: tf.constant(value) for name, value in inputs.items()})


CACHE_FLAG = "--tf_xla_persistent_cache_directory"

_REPLAY_IN_A_FRESH_PROCESS = """
import sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops
from tf_bert_seqgen.export.warmup import replay
replay(tf.saved_model.load(sys.argv[1]), sys.argv[1])
"""


def with_cache_flag(environment: dict, cache_dir: str) -> dict:
    """`environment` whose TF_XLA_FLAGS also name `cache_dir` as TF's persistent XLA cache (read at the
    process's first XLA compilation: set before TensorFlow starts)."""
    flags = [f for f in environment.get("TF_XLA_FLAGS", "").split() if not f.startswith(CACHE_FLAG)]
    return {**environment, "TF_XLA_FLAGS": " ".join([*flags, f"{CACHE_FLAG}={os.path.abspath(cache_dir)}"])}


def warm_cache(export_dir: str, cache_dir: str) -> int:
    """Compiles an XLA export's programs into TF's persistent XLA cache `cache_dir`, ahead of serving: its
    warm-up records replayed in a fresh process with the cache flag. A server (or `tf.saved_model.load`)
    started later with the same flag loads them instead of compiling. Returns the cache's file count."""
    os.makedirs(cache_dir, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", _REPLAY_IN_A_FRESH_PROCESS, export_dir], capture_output=True,
                          text=True, env=with_cache_flag(dict(os.environ), cache_dir))
    if done.returncode != 0:
        raise RuntimeError(f"replaying {export_dir}'s warm-up records failed: {done.stderr.strip()[-2000:]}")
    return len(os.listdir(cache_dir))

"""The TF Serving warm-up file: PredictionLog records the server replays at load, so that the first real
request finds its functions traced (and, in an XLA export, compiled)."""

from __future__ import annotations

import os

import tensorflow as tf

from tf_bert_seqgen import generation
from tf_bert_seqgen.export.files import WARMUP_FILE

WARMUP_TEXTS = ["This is a warm-up request.", ""]


def warmup_texts(module) -> list[list[str]]:
    """The texts of each warm-up request to the default signature. Graph mode runs any shape: one request
    (with an empty text, which skips the model). The XLA variant compiles once per source width bucket
    (`generation.bucket_length`) and row bucket, 10-15 s each for the full-size model: one more request of
    one text for each width bucket, so that a single text of any length finds its program compiled. Joined
    calls of 2, 4, ... rows compile at their first use (row buckets times width buckets would be dozens)."""
    if not module.jit_compile:
        return [WARMUP_TEXTS]
    limit = module.max_input_length
    words = WARMUP_TEXTS[0].split() * limit  # a word is at least one token: enough words for any bucket

    def tokens(count):
        return int(module.tokenizer.tokenize(tf.constant([" ".join(words[:count])])).row_lengths()[0])

    def bucket(count):
        return generation.bucket_length(max(min(tokens(count), limit), 1), limit)

    covered, requests = {bucket(len(WARMUP_TEXTS[0].split()))}, [WARMUP_TEXTS]
    for count in range(1, len(words) + 1):  # the shortest text of each width bucket
        width = bucket(count)
        if width not in covered:
            covered.add(width)
            requests.append([" ".join(words[:count])])
        if limit in covered:
            return requests
    return requests


def write_warmup_requests(export_dir: str, module):
    """Writes `WARMUP_FILE`: the default signature's requests (`warmup_texts`), then one `score` request."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    requests = [("serving_default", {"text": tf.constant(texts)}) for texts in warmup_texts(module)]
    requests.append(("score", {"source_text": tf.constant(WARMUP_TEXTS[:1]),
                               "target_text": tf.constant(WARMUP_TEXTS[:1])}))
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature))
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())

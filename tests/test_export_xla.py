"""XLA exports: the same strings, a warm-up that compiles every program (a second start none), int8 and
bfloat16 storage with their product forms. (Beside test_export.py so that the two run on both workers.)"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from test_export import (
    MATRICES,
    TEXTS,
    _batch_ops,
    _check_ops,
    _expected,
    _model,
    _replay,
    _rounded,
    _warmup_requests,
    make_tokenizer,
)

from tf_bert_seqgen.export import export_saved_model, load_model, read_export_info
from tf_bert_seqgen.export import saved_model as saved_model_module
from tf_bert_seqgen.products import Form, ProductForms


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("spm"))


@pytest.fixture(scope="module")
def xla_exported(tmp_path_factory, tokenizer):
    model = _model(tokenizer, True, seed=5)
    directory = str(tmp_path_factory.mktemp("xla") / "1")
    export_saved_model(model, tokenizer, directory, jit_compile=True, max_new_tokens=8, max_batch_size=4,
                       batch_timeout_micros=None, row_buckets=[1, 4], width_buckets=[16, 48])
    return model, directory


def test_xla_variant_gives_the_same_strings(xla_exported, tokenizer):
    model, directory = xla_exported
    loaded = tf.saved_model.load(directory)
    texts = [TEXTS[0], TEXTS[1], TEXTS[4]]  # 3 rows, decoded as 4: the copy of the first is dropped
    out = loaded.signatures["serving_default"](text=tf.constant(texts))["generated_text"].numpy()
    assert [s.decode() for s in out] == _expected(model, tokenizer, texts, max_new_tokens=8)
    ids = tokenizer(texts[:2])  # generate_ids pads its [b, s] ids to the same width buckets
    out = loaded.signatures["generate_ids"](input_ids=tf.constant(ids["input_ids"], tf.int32),
                                            attention_mask=tf.constant(ids["attention_mask"], tf.int32))
    np.testing.assert_array_equal(out["output_ids"].numpy(),
                                  model.generate(ids["input_ids"], ids["attention_mask"], max_new_tokens=8).numpy())
    assert _batch_ops(directory) == set(), "batch_timeout_micros=None: calls are not batched"
    # XLA compiles per (row bucket, source width bucket): after one serving_default request, the warm-up
    # holds a one-token request of each row bucket (1 and 4 = max_batch_size) for each width bucket (16 and
    # 48 = this tokenizer's max_length).
    requests = _warmup_requests(directory)
    assert requests[0][0] == "serving_default" and len(requests[0][1]["text"]) == 1
    per_text = [inputs for signature, inputs in requests if signature == "generate_with_options_per_text"]
    shapes = [(len(inputs["text"]), max(len(tokenizer.encode(t.decode())) for t in inputs["text"]))
              for inputs in per_text]
    assert sorted((rows, 16 if w <= 16 else 48) for rows, w in shapes) == [
        (rows, width) for rows in (1, 4) for width in (16, 48)], shapes
    assert all(list(inputs["max_new_tokens"]) == [1] * len(inputs["text"]) for inputs in per_text)
    info = read_export_info(directory)
    assert (info["row_buckets"], info["width_buckets"]) == ([1, 4], [16, 48])
    assert [signature for signature, _ in requests[1 + len(shapes):]] == ["score", "encode"]
    _replay(directory, requests)


COUNT_PROGRAMS = r"""
import json, os, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
directory, cache, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
loaded = tf.saved_model.load(directory)
counts = [len(os.listdir(cache))]
from tensorflow_serving.apis import prediction_log_pb2
for record in tf.data.TFRecordDataset(os.path.join(directory, "assets.extra", "tf_serving_warmup_requests")):
    request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
    loaded.signatures[request.model_spec.signature_name](
        **{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
counts.append(len(os.listdir(cache)))
for count in (1, 2, 3, 4):  # every row count max_batch_size allows, for texts of every width
    for text in texts:
        loaded.signatures["serving_default"](text=tf.constant([text] * count))
    loaded.signatures["generate_with_options"](text=tf.constant(texts[:count]), max_new_tokens=tf.constant(5),
                                               length_penalty=tf.constant(1.0))
counts.append(len(os.listdir(cache)))
print(json.dumps(counts))
"""


def test_after_the_warmup_no_request_compiles_and_a_second_start_compiles_nothing(xla_exported, tmp_path):
    """TF's persistent XLA cache as the witness: each program XLA compiles adds an entry. After the warm-up
    records, requests of every row count and source width add none; a second process given the same cache
    (`warm_cache` filled it ahead) finds every program there, so its warm-up adds none either."""
    from tf_bert_seqgen.export.warmup import warm_cache, with_cache_flag

    _, directory = xla_exported
    cache = str(tmp_path / "cache")
    filled = warm_cache(directory, cache)
    assert filled >= 4  # 2 row buckets x 2 width buckets, at least
    texts = ["cat", "The cat sat on the mat. " * 3, "Sentence fusion joins two sentences. " * 30]
    out = subprocess.run([sys.executable, "-c", COUNT_PROGRAMS, directory, cache, json.dumps(texts)],
                         capture_output=True, text=True, timeout=600,
                         env=with_cache_flag({**os.environ, "PYTHONPATH": ""}, cache))
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [filled] * 3


# Blocks of 5 rows of 32 inputs (7 for two rows): the loops over blocks and their remainders all run.
SMALL_FORMS = ProductForms(((1, Form("blocks", 5 * 32)), (2, Form("row_blocks", 7 * 32)), (4, Form("dequantized"))),
                           encoder=Form("blocks", 5 * 32))
@pytest.mark.parametrize("dtype", ["int8", pytest.param("bfloat16", marks=pytest.mark.large)])  # bfloat16: CI's large tier
def test_streamed_storage_serves_what_its_rounded_weights_generate(tmp_path, tokenizer, dtype):
    """The XLA export with int8 / bfloat16 matrices writes, for 1, 2 and 3 texts (row buckets 1, 2, 4, each
    its own form), the strings a float32 model with the same rounded weights generates; it is a quarter /
    half the float32 export's size and comes back as that rounded model. (bfloat16 serves one row here:
    its products in every form are test_storage's.)"""
    model = _model(tokenizer, True, seed=7)
    directory = str(tmp_path / dtype)
    export_saved_model(model, tokenizer, directory, jit_compile=True, weights_dtype=dtype, max_new_tokens=8,
                       max_batch_size=4 if dtype == "int8" else 1, product_forms=SMALL_FORMS,
                       batch_timeout_micros=None)
    rounded = _rounded(model, dtype)
    serve = tf.saved_model.load(directory).signatures["serving_default"]
    calls = (TEXTS[:1], TEXTS[:2], [TEXTS[0], TEXTS[1], TEXTS[4]]) if dtype == "int8" else ([TEXTS[4]],)
    for texts in calls:
        out = [t.decode() for t in serve(text=tf.constant(texts))["generated_text"].numpy()]
        assert out == _expected(rounded, tokenizer, texts, max_new_tokens=8)
    info = read_export_info(directory)
    assert info["weights_dtype"] == dtype and ProductForms.from_dict(info["product_forms"]) == SMALL_FORMS
    _check_ops(directory)
    # Biases, LayerNorms and position embeddings stay float32; int8 adds one float32 scale per row.
    variables = os.path.join(directory, "variables")
    size = sum(os.path.getsize(os.path.join(variables, f)) for f in os.listdir(variables))
    matrices = [w for w in model.weights if w.path.endswith(MATRICES)]
    matrix_bytes = sum(int(np.prod(w.shape)) for w in matrices) * (1 if dtype == "int8" else 2)
    scale_bytes = sum(4 * w.shape[0] for w in matrices) if dtype == "int8" else 0
    small_bytes = 4 * (model.count_params() - sum(int(np.prod(w.shape)) for w in matrices))
    assert size <= matrix_bytes + scale_bytes + small_bytes + 50_000
    recovered = load_model(directory)
    for mine, theirs in zip(recovered.weights, rounded.weights, strict=True):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-8, err_msg=theirs.path)


def test_int8_in_graph_mode_follows_the_measurement(tmp_path, tokenizer, monkeypatch):
    """Graph mode must widen int8 weights at every step: the export measures it against float32 on the CPU
    at hand and refuses it when slower, naming the figures and --xla; where it is not slower it is served."""
    model = _model(tokenizer, True, seed=8)
    measured = {"int8": 9.0, "float32": 4.0}
    monkeypatch.setattr(saved_model_module.tuning, "graph_mode_ms", lambda config, dtype: measured[dtype])
    with pytest.raises(ValueError, match=r"slower than float32 on this CPU .*9\.0 ms against 4\.0 ms.*--xla"):
        export_saved_model(model, tokenizer, str(tmp_path / "refused"), weights_dtype="int8", max_new_tokens=6)
    assert not os.path.exists(tmp_path / "refused")
    measured["int8"] = 3.0
    export_saved_model(model, tokenizer, str(tmp_path / "graph"), weights_dtype="int8", max_new_tokens=6,
                       batch_timeout_micros=None)
    serve = tf.saved_model.load(str(tmp_path / "graph")).signatures["serving_default"]
    out = [t.decode() for t in serve(text=tf.constant(TEXTS[:2]))["generated_text"].numpy()]
    assert out == _expected(_rounded(model, "int8"), tokenizer, TEXTS[:2], max_new_tokens=6)
    assert read_export_info(str(tmp_path / "graph"))["graph_mode_ms"] == {"int8": 3.0, "float32": 4.0}



"""The exported SavedModel: strings in, strings out, in a process that has only tensorflow + tensorflow_text."""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from tf_bert_seqgen import BertForSeqGenerationConfig, EncoderDecoder, EncoderDecoderConfig
from tf_bert_seqgen.export import (
    EXPORT_INFO_FILE,
    EXPORT_TOKENIZER_DIR,
    WARMUP_FILE,
    bucket_rows,
    export_saved_model,
    load_export,
    load_model,
    next_version_dir,
    row_buckets,
    shape_buckets,
)
from tf_bert_seqgen.products import ProductForms
from tf_bert_seqgen.storage import quantize_int8
from tf_bert_seqgen.tokenizers import TF_SERVING_SAFE_OPS, BertForSeqGenerationTokenizer

CORPUS = """The cat sat on the mat. The dog chased the cat, but the cat escaped.
Sentence fusion joins two sentences into one. However, it must keep the meaning.
If the file is missing, the loader raises an error. When the queue is full, the call blocks.
Results are cached because computing them is slow. The server stops unless a request arrives.
"""
TEXTS = ["The cat sat on the mat.", "If the file is missing, the loader raises an error. It stops.",
         "", "   ", "Sentence fusion joins two sentences. " * 30]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("spm"))


def make_tokenizer(directory):
    """A SentencePiece tokenizer trained on CORPUS in `directory` (a pathlib.Path)."""
    (directory / "corpus.txt").write_text(CORPUS * 30, encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(directory / "corpus.txt"), model_prefix=str(directory / "spiece"), vocab_size=120,
        hard_vocab_limit=False, model_type="unigram", pad_id=0, eos_id=1, bos_id=2, unk_id=3, minloglevel=2)
    return BertForSeqGenerationTokenizer(str(directory / "spiece.model"), max_length=48)


def _model(tokenizer, share, seed):
    tf.keras.utils.set_random_seed(seed)
    config = BertForSeqGenerationConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=48, max_position_embeddings=64)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=share))
    # A strong eos bias for some rows makes outputs of different lengths.
    model.decoder.lm_head.bias.assign(np.random.default_rng(seed).normal(0, 2, tokenizer.vocab_size))
    return model


def _expected(model, tokenizer, texts, **options):
    """What `model.generate` gives for each text; "" for a text without tokens (the export's rule)."""
    inputs = tokenizer(texts)
    ids = model.generate(inputs["input_ids"], inputs["attention_mask"], **options).numpy()
    generated = tokenizer.detokenize(ids[:, 1:], skip_special_tokens=True).numpy()
    return [t.decode() if tokens.any() else "" for t, tokens in zip(generated, inputs["attention_mask"], strict=True)]


FRESH_PROCESS = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the SentencePiece ops
texts = json.loads(sys.argv[1])
outputs = []
for directory in sys.argv[2:]:
    loaded = tf.saved_model.load(directory)
    out = loaded.signatures["serving_default"](text=tf.constant(texts))["generated_text"].numpy()
    outputs.append([t.decode() for t in out])
mods = sorted(m for m in sys.modules if m.split(".")[0] in ("tf_bert_seqgen", "transformers", "torch"))
print(json.dumps({"outputs": outputs, "modules": mods}))
"""


# Two exports serve the whole file (each export traces five signatures: most of this file's time).
# `exported`: weights shared, beam search with GNMT's length penalty. `sliced`: separate weights, greedy,
# requests larger than 2 rows run in slices.
EXPORTED = dict(max_new_tokens=10, num_beams=3, length_penalty=0.6, length_penalty_style="gnmt")
SLICED = dict(max_new_tokens=12, max_batch_size=2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tokenizer):
    model = _model(tokenizer, share=True, seed=3)
    directory = str(tmp_path_factory.mktemp("export") / "fusion" / "1")
    # The model's decoding defaults (a preset's, a checkpoint's) reach the export; an option given wins.
    model.generation_defaults = {**EXPORTED, "max_new_tokens": 5}
    export_saved_model(model, tokenizer, directory, max_new_tokens=EXPORTED["max_new_tokens"])
    return model, directory


@pytest.fixture(scope="module")
def sliced(tmp_path_factory, tokenizer):
    model = _model(tokenizer, share=False, seed=4)
    directory = str(tmp_path_factory.mktemp("sliced") / "1")
    export_saved_model(model, tokenizer, directory, **SLICED)
    return model, directory


def test_fresh_process_gets_the_same_strings(exported, sliced, tokenizer):
    """Both exports, loaded by a process that has only tensorflow and tensorflow_text."""
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS, json.dumps(TEXTS), exported[1], sliced[1]],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["modules"] == [], "the loading process must not need our package or torch"
    sliced_options = {k: v for k, v in SLICED.items() if k != "max_batch_size"}
    assert result["outputs"] == [_expected(exported[0], tokenizer, TEXTS, **EXPORTED),
                                 _expected(sliced[0], tokenizer, TEXTS, **sliced_options)]


def test_texts_without_tokens_give_empty_strings_and_leave_the_rest_unchanged(exported, tokenizer):
    model, directory = exported
    serve = tf.saved_model.load(directory).signatures["serving_default"]
    texts = ["The cat sat on the mat.", "", " \t\n ", "If the file is missing, the loader raises an error."]
    # The model itself decodes something from an all-pad source: the export must not.
    assert _expected(model, tokenizer, [""], **EXPORTED) == [""]
    assert model.generate(np.zeros([1, 4], np.int32), np.zeros([1, 4], np.int32),
                          **EXPORTED).numpy()[0, 1] != 1, "pick a model that decodes from nothing"
    mixed = [t.decode() for t in serve(text=tf.constant(texts))["generated_text"].numpy()]
    alone = [t.decode() for t in serve(text=tf.constant([texts[0], texts[3]]))["generated_text"].numpy()]
    assert mixed == [alone[0], "", "", alone[1]] and alone[0] and alone[1]
    assert [t.decode() for t in serve(text=tf.constant(["", "  "]))["generated_text"].numpy()] == ["", ""]
    assert serve(text=tf.constant([], tf.string))["generated_text"].shape == (0,)


def test_large_batches_run_in_slices_with_the_same_results(sliced, tokenizer, tmp_path):
    model, directory = sliced
    options = {k: v for k, v in SLICED.items() if k != "max_batch_size"}
    loaded = tf.saved_model.load(directory)
    texts = [t for t in CORPUS.splitlines() if t] + ["", "The cat sat."]  # 6 texts: 3 slices, one empty
    out = [t.decode() for t in loaded.signatures["serving_default"](text=tf.constant(texts))["generated_text"].numpy()]
    assert out == _expected(model, tokenizer, texts, **options)
    ids = tokenizer(texts[:5])
    out_ids = loaded.signatures["generate_ids"](input_ids=tf.constant(ids["input_ids"]),
                                                attention_mask=tf.constant(ids["attention_mask"]))["output_ids"]
    np.testing.assert_array_equal(out_ids.numpy(), model.generate(ids["input_ids"], ids["attention_mask"],
                                                                  **options).numpy())
    scored = loaded.signatures["score"](source_text=tf.constant(texts[:5]), target_text=tf.constant(texts[1:6]))
    assert scored["log_likelihood"].shape == (5,) and scored["num_tokens"].shape == (5,)
    for i in range(5):  # each row equals the same pair scored alone
        alone = loaded.signatures["score"](source_text=tf.constant(texts[i:i + 1]),
                                           target_text=tf.constant(texts[i + 1:i + 2]))
        # Padded to other widths, the sums run in another order: equal to float32 rounding.
        np.testing.assert_allclose(alone["log_likelihood"].numpy()[0], scored["log_likelihood"].numpy()[i],
                                   rtol=1e-4)
        assert alone["num_tokens"].numpy()[0] == scored["num_tokens"].numpy()[i]
    encoded = loaded.signatures["encode"](text=tf.constant(texts[:5]))
    assert encoded["encoder_hidden_states"].shape[0] == 5
    with open(os.path.join(directory, "assets.extra", "tf_bert_seqgen.json"), encoding="utf-8") as f:
        assert json.load(f)["max_batch_size"] == 2
    with pytest.raises(ValueError, match="max_batch_size"):
        export_saved_model(model, tokenizer, str(tmp_path / "bad"), max_batch_size=0)
    with pytest.raises(ValueError, match="batch_timeout_micros must be >= 0"):
        export_saved_model(model, tokenizer, str(tmp_path / "bad"), batch_timeout_micros=-1)
    assert not os.path.exists(tmp_path / "bad")


def _batch_ops(directory):
    """(shared_name, max_batch_size, batch_timeout_micros) of each BatchFunction node in the SavedModel."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    nodes = [node for meta in proto.meta_graphs for function in meta.graph_def.library.function
             for node in function.node_def if node.op == "BatchFunction"]
    return {(n.attr["shared_name"].s.decode(), n.attr["max_batch_size"].i, n.attr["batch_timeout_micros"].i)
            for n in nodes}


def test_concurrent_calls_are_batched_and_each_gets_its_own_strings(exported, sliced, tokenizer):
    """Threads call two exports loaded side by side, all at once: one text or a whole sliced batch per call,
    through `serving_default` or `generate_with_options` with other options. Every call gets back the rows
    of its own texts, as a lone call gives them, however the batch op joined and split the calls (rows of
    several option sets in one batch decode apart). Each export has its own batch queue."""
    import threading

    (exported_op,), (sliced_op,) = _batch_ops(exported[1]), _batch_ops(sliced[1])
    assert exported_op[1:] == (32, 1000) and sliced_op[1:] == (2, 1000)
    assert exported_op[0] != sliced_op[0], "two exports must not share a batch queue"
    texts = [t for t in CORPUS.splitlines() if t] + ["", "The cat sat."]
    sliced_options = {k: v for k, v in SLICED.items() if k != "max_batch_size"}
    exported_loaded = tf.saved_model.load(exported[1])
    with_options = exported_loaded.signatures["generate_with_options"]
    served = {
        "exported": (exported_loaded.signatures["serving_default"],
                     _expected(exported[0], tokenizer, texts, **EXPORTED)),
        "shorter": (lambda text: with_options(text=text, max_new_tokens=tf.constant(3), length_penalty=tf.constant(0.6)),
                    _expected(exported[0], tokenizer, texts, **{**EXPORTED, "max_new_tokens": 3})),
        "sliced": (tf.saved_model.load(sliced[1]).signatures["serving_default"],
                   _expected(sliced[0], tokenizer, texts, **sliced_options))}
    assert served["shorter"][1] != served["exported"][1], "options that change the output"
    calls = [(name, [i]) for name in served for i in range(len(texts))] + [("sliced", list(range(len(texts))))]
    results, barrier = {}, threading.Barrier(len(calls))

    def call(key):
        name, rows = calls[key]
        barrier.wait()  # all at once, so that calls meet in the batch queues
        out = served[name][0](text=tf.constant([texts[i] for i in rows]))["generated_text"].numpy()
        results[key] = [t.decode() for t in out]

    threads = [threading.Thread(target=call, args=(key,)) for key in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == len(calls)
    for key, (name, rows) in enumerate(calls):
        assert results[key] == [served[name][1][i] for i in rows], (name, rows)


def test_tf_hub_load_and_keras_layer_call_the_default_signature(exported):
    import tensorflow_hub as hub
    import tf_keras

    _, directory = exported
    texts = tf.constant(["The cat sat on the mat.", "", "The dog chased the cat."])
    expected = tf.saved_model.load(directory).signatures["serving_default"](text=texts)["generated_text"].numpy()
    np.testing.assert_array_equal(hub.load(directory)(texts).numpy(), expected)
    inputs = tf_keras.Input(shape=(), dtype=tf.string)
    keras_model = tf_keras.Model(inputs, hub.KerasLayer(directory)(inputs))
    np.testing.assert_array_equal(keras_model(texts).numpy(), expected)
    np.testing.assert_array_equal(keras_model.predict(texts, batch_size=2, verbose=0), expected)


def test_bfloat16_warns_where_the_cpu_emulates_it(monkeypatch, tokenizer):
    from tf_bert_seqgen import cpu

    model = _model(tokenizer, share=True, seed=0)
    monkeypatch.setattr(cpu, "has_native_bfloat16", lambda: False)
    with pytest.warns(RuntimeWarning, match="bfloat16 is emulated on this CPU"):
        model.cast("bfloat16")
    monkeypatch.setattr(cpu, "has_native_bfloat16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.cast("bfloat16")


def _op_types(directory):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    ops = set()
    for meta in proto.meta_graphs:
        ops |= {node.op for node in meta.graph_def.node}
        for function in meta.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return ops


def test_only_core_and_serving_safe_ops(exported):
    _, directory = exported
    _check_ops(directory)
    assert not any(op.startswith("Xla") for op in _op_types(directory)), "the default export must not need XLA"


def _check_ops(directory):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    functions = {f.signature.name for m in proto.meta_graphs for f in m.graph_def.library.function}
    core = set(dir(tf.raw_ops))
    unknown = sorted(op for op in _op_types(directory) if op not in core and op not in TF_SERVING_SAFE_OPS
                     and op not in functions)
    assert unknown == []
    assert "SentencepieceTokenizeOp" in _op_types(directory)


def test_signatures_and_bad_requests(exported, tokenizer):
    model, directory = exported
    loaded = tf.saved_model.load(directory)
    assert set(loaded.signatures) == {"serving_default", "generate_with_options", "generate_with_options_per_text",
                                      "generate_ids", "score", "encode"}
    serve = loaded.signatures["serving_default"]
    for batch in (["only one"], ["", "x"], [""], ["  \t "], ["word " * 2000], ["a b c"] * 256):
        out = serve(text=tf.constant(batch))["generated_text"]
        assert out.shape == (len(batch),)
    # The long input is truncated to max_input_length: the result equals that of its first 48 tokens.
    long_text = "Sentence fusion joins two sentences. " * 40
    truncated = tokenizer.detokenize(tokenizer.tokenize(tf.constant([long_text])))
    assert serve(text=tf.constant([long_text]))["generated_text"].numpy()[0] == \
        serve(text=truncated)["generated_text"].numpy()[0]
    with pytest.raises(tf.errors.InvalidArgumentError, match="not valid UTF-8"):
        serve(text=tf.constant([b"caf\xe9 ok", b"fine"]))

    options = loaded.signatures["generate_with_options"]
    short = options(text=tf.constant(TEXTS[:2]), max_new_tokens=tf.constant(3),
                    length_penalty=tf.constant(1.0))["generated_text"].numpy()
    assert [s.decode() for s in short] == _expected(model, tokenizer, TEXTS[:2],
                                                    **{**EXPORTED, "max_new_tokens": 3, "length_penalty": 1.0})
    # Each text its own options, in one request: each decodes as it would alone.
    per_text = loaded.signatures["generate_with_options_per_text"]
    mixed = per_text(text=tf.constant(TEXTS[:3]), max_new_tokens=tf.constant([3, 5, 3]),
                     length_penalty=tf.constant([1.0, 1.0, 0.6]))["generated_text"].numpy()
    assert [s.decode() for s in mixed] == [
        _expected(model, tokenizer, [text], **{**EXPORTED, "max_new_tokens": n, "length_penalty": p})[0]
        for text, n, p in zip(TEXTS[:3], [3, 5, 3], [1.0, 1.0, 0.6], strict=True)]
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_new_tokens needs one value per text"):
        per_text(text=tf.constant(TEXTS[:2]), max_new_tokens=tf.constant([3]), length_penalty=tf.constant([1.0, 1.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="length_penalty needs one value per text"):
        per_text(text=tf.constant(TEXTS[:2]), max_new_tokens=tf.constant([3, 3]), length_penalty=tf.constant([1.0]))
    ids = tokenizer(TEXTS[:2])
    out_ids = loaded.signatures["generate_ids"](input_ids=tf.constant(ids["input_ids"]),
                                                attention_mask=tf.constant(ids["attention_mask"]))["output_ids"]
    np.testing.assert_array_equal(out_ids.numpy(), model.generate(ids["input_ids"], ids["attention_mask"],
                                                                  **EXPORTED).numpy())
    encoded = loaded.signatures["encode"](text=tf.constant(TEXTS[:2]))
    mask = encoded["attention_mask"].numpy()
    np.testing.assert_allclose(encoded["encoder_hidden_states"].numpy()[:, :mask.shape[1]][mask == 1],
                               model.encoder(ids["input_ids"], ids["attention_mask"]).numpy()[ids["attention_mask"] == 1],
                               atol=1e-5)


def test_score_is_the_log_likelihood_of_the_target(exported, tokenizer):
    model, directory = exported
    loaded = tf.saved_model.load(directory)
    source, target = ["The cat sat on the mat."], ["The dog chased the cat."]
    scored = loaded.signatures["score"](source_text=tf.constant(source), target_text=tf.constant(target))
    src, tgt = tokenizer(source), tokenizer.encode(target[0]) + [1]
    logits = model({"input_ids": src["input_ids"], "attention_mask": src["attention_mask"],
                    "decoder_input_ids": np.array([[2] + tgt[:-1]])}).numpy()[0]
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    expected = sum(log_probs[i, t] for i, t in enumerate(tgt))
    assert scored["num_tokens"].numpy()[0] == len(tgt)
    assert abs(scored["log_likelihood"].numpy()[0] - expected) < 1e-3


def _warmup_requests(directory):
    """[(signature, {input: numpy value})] of the export's warm-up records, in order."""
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(os.path.join(directory, WARMUP_FILE)).as_numpy_iterator():
        request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
        requests.append((request.model_spec.signature_name,
                         {k: tf.make_ndarray(v) for k, v in request.inputs.items()}))
    return requests


def _replay(directory, requests):
    loaded = tf.saved_model.load(directory)
    for signature, inputs in requests:
        outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        assert all(v.shape[0] == len(next(iter(inputs.values()))) for v in outputs.values())


def test_warmup_file_parses_and_runs(exported):
    _, directory = exported
    requests = _warmup_requests(directory)
    # Graph mode runs any shape: one request to each signature TF Serving's batching accepts.
    assert [signature for signature, _ in requests] == ["serving_default", "generate_with_options_per_text",
                                                        "score", "encode"]
    assert requests[1][1]["max_new_tokens"].dtype == np.int32 and list(requests[1][1]["max_new_tokens"]) == [1]
    _replay(directory, requests)


def test_saved_model_cli_show_and_run(exported):
    _, directory = exported
    cli = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    shown = subprocess.run(cli + ["show", "--dir", directory, "--all"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "generated_text" in shown.stdout and "signature_def['score']" in shown.stdout
    # saved_model_cli's process has no tensorflow_text: it must be told where the ops are, as TF Serving is.
    ran = subprocess.run(
        [sys.executable, "-c", "import sys, tensorflow_text; from tensorflow.python.tools import saved_model_cli;"
         "sys.argv = sys.argv[1:]; saved_model_cli.main()", "saved_model_cli", "run", "--dir", directory,
         "--tag_set", "serve", "--signature_def", "serving_default", "--input_exprs", "text=['The cat sat.']"],
        capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "generated_text" in ran.stdout


def test_shared_weights_are_stored_once(exported, sliced):
    sizes = {}
    for share, (model, directory) in ((True, exported), (False, sliced)):
        variables = os.path.join(directory, "variables")
        sizes[share] = sum(os.path.getsize(os.path.join(variables, f)) for f in os.listdir(variables))
        expected_floats = model.count_params()
        assert expected_floats * 4 <= sizes[share] <= expected_floats * 4 * 1.1 + 200_000
    assert exported[0].count_params() < sliced[0].count_params()  # the same configuration, weights tied once
    assert sizes[True] < sizes[False]


def _half_casts_of_decode(directory):
    """Cast ops from float16 in the decode functions of a SavedModel: (in their bodies, in their loop bodies)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    library = {f.signature.name: f for m in proto.meta_graphs for f in m.graph_def.library.function}
    half = tf.float16.as_datatype_enum

    def casts(function):
        return sum(node.op == "Cast" and node.attr["SrcT"].type == half for node in function.node_def)

    decodes = [f for name, f in library.items() if "decode" in name]
    bodies = [library[node.attr["body"].func.name] for f in decodes for node in f.node_def
              if node.op in ("While", "StatelessWhile")]
    return sum(map(casts, decodes)), sum(map(casts, bodies))


def test_float16_weights_halve_the_export_and_score_as_float32(exported, tmp_path, tokenizer):
    model, float32_dir = exported
    directory = str(tmp_path / "float16")
    export_saved_model(model, tokenizer, directory, weights_dtype="float16", **EXPORTED)
    sizes, scores = {}, {}
    source, target = tf.constant(["The cat sat on the mat."]), tf.constant(["The dog chased the cat."])
    for dtype, path in (("float32", float32_dir), ("float16", directory)):
        variables = os.path.join(path, "variables")
        sizes[dtype] = sum(os.path.getsize(os.path.join(variables, f)) for f in os.listdir(variables))
        scores[dtype] = tf.saved_model.load(path).signatures["score"](
            source_text=source, target_text=target)["log_likelihood"].numpy()[0]
    # Everything but the biases, LayerNorms and position embeddings is stored in half the bytes.
    small = sum(int(np.prod(w.shape)) for w in model.weights
                if not w.path.endswith(("kernel", "word_embeddings/embeddings")))
    assert sizes["float16"] <= (model.count_params() - small) * 2 + small * 4 + 200_000
    assert sizes["float16"] < 0.6 * sizes["float32"]
    assert abs(scores["float16"] - scores["float32"]) < 0.05 * abs(scores["float32"])
    assert scores["float16"] != scores["float32"]  # the weights really were rounded
    # The cast back to float32 happens once per model call, before the decode loop, never in a step.
    in_decode, in_steps = _half_casts_of_decode(directory)
    assert in_decode > 0 and in_steps == 0
    # The model comes back from the export (to fine-tune further) with float16's rounding.
    recovered = load_model(directory)
    for mine, theirs in zip(recovered.weights, model.weights, strict=True):
        expected = theirs.numpy()
        if theirs.path.endswith(("kernel", "word_embeddings/embeddings")):
            expected = expected.astype(np.float16).astype(np.float32)
        assert mine.dtype == "float32"
        np.testing.assert_array_equal(mine.numpy(), expected, err_msg=theirs.path)
    with pytest.raises(ValueError, match="float16.* is for graph-mode exports"):
        export_saved_model(model, tokenizer, str(tmp_path / "xla"), weights_dtype="float16", jit_compile=True)


def test_export_is_atomic_and_never_overwrites(exported, tokenizer, monkeypatch):
    model, target = exported
    versions = os.path.dirname(target)
    before = sorted(os.listdir(target))
    with pytest.raises(FileExistsError):
        export_saved_model(model, tokenizer, target, max_new_tokens=4)
    assert sorted(os.listdir(target)) == before
    assert next_version_dir(versions) == os.path.join(versions, "2")

    from tf_bert_seqgen.export import saved_model

    def broken(directory):
        raise RuntimeError("verification failed")

    monkeypatch.setattr(saved_model, "_verify", broken)
    with pytest.raises(RuntimeError, match="verification failed"):
        export_saved_model(model, tokenizer, os.path.join(versions, "2"), max_new_tokens=4)
    assert sorted(os.listdir(versions)) == ["1"]  # nothing of the failed export is left, not even a temporary


@pytest.mark.parametrize("count, limit, expected", [
    (1, 32, [0]), (2, 32, [0, 1]), (3, 32, [0, 1, 2, 0]), (5, 32, [0, 1, 2, 3, 4, 0, 0, 0]),
    (8, 32, list(range(8))), (5, 6, [0, 1, 2, 3, 4, 0]), (7, 4, list(range(7)))])
def test_xla_rows_are_padded_to_a_power_of_two_with_copies_of_the_first(count, limit, expected):
    assert bucket_rows(tf.constant(count), row_buckets(limit)).numpy().tolist() == expected


@pytest.mark.parametrize("count, expected", [(1, 1), (2, 4), (4, 4), (5, 16), (17, 32), (40, 40)])
def test_xla_rows_are_padded_to_the_given_buckets(count, expected):
    rows = bucket_rows(tf.constant(count), [1, 4, 16, 32]).numpy().tolist()
    assert rows == list(range(count)) + [0] * (expected - count)


def test_shape_buckets_default_to_powers_of_two_and_refuse_what_cannot_work():
    assert shape_buckets(True, 32, 128) == ([1, 2, 4, 8, 16, 32], [16, 32, 64, 128])
    assert shape_buckets(True, 6, 48, [1, 6], [48]) == ([1, 6], [48])
    assert shape_buckets(False, 32, 128) == ([], [])
    with pytest.raises(ValueError, match="for XLA exports"):
        shape_buckets(False, 32, 128, row_buckets=[1, 32])
    with pytest.raises(ValueError, match="row_buckets must end at 32"):
        shape_buckets(True, 32, 128, row_buckets=[1, 4, 16])
    with pytest.raises(ValueError, match="width_buckets must be ascending"):
        shape_buckets(True, 32, 128, width_buckets=[64, 16, 128])
    with pytest.raises(ValueError, match=r"row_buckets must be ascending integers >= 1, got \[0, 32\]"):
        shape_buckets(True, 32, 128, row_buckets=[0, 32])


def test_load_model_gives_back_the_exported_model(exported, tmp_path):
    """Fine-tuning further starts from an export (the shipped default, say): the same config and weights."""
    import shutil

    model, directory = exported
    recovered = load_model(directory)
    assert recovered.config == model.config
    assert len(recovered.weights) == len(model.weights)
    for mine, theirs in zip(recovered.weights, model.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=theirs.path)
    with pytest.raises(FileNotFoundError, match="not exported by tf_bert_seqgen"):
        load_model(str(tmp_path))
    # A config that does not describe the stored weights is refused, not half-loaded.
    changed = tmp_path / "changed"
    shutil.copytree(directory, changed)
    info = json.loads((changed / EXPORT_INFO_FILE).read_text())
    for stack in ("encoder", "decoder"):
        info["model"][stack]["intermediate_size"] += 8
    (changed / EXPORT_INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="do not fit the model its config describes"):
        load_model(str(changed))


MATRICES = ("kernel", "word_embeddings/embeddings")


def _rounded(model, dtype):
    """A float32 copy of `model` whose matrices hold what a `dtype` export stores, rounded by numpy
    (`quantize_int8`'s values times scales) or by TensorFlow's cast (bfloat16)."""
    copy = EncoderDecoder.from_config(model.get_config())
    for target, source in zip(copy.weights, model.weights, strict=True):
        value = source.numpy()
        if source.path.endswith(MATRICES):
            if dtype == "int8":
                values, scale = quantize_int8(value)
                value = values.astype(np.float32) * scale[:, None]
            else:
                value = tf.cast(tf.cast(value, tf.bfloat16), tf.float32).numpy()
        target.assign(value)
    return copy


def test_an_export_is_written_again_with_its_own_options(exported, tmp_path, tokenizer):
    """Every export carries its tokenizer; `load_export` gives back what it was written with, so that it can
    be exported again (here: as int8 under XLA) and serve the same decoding."""
    model, directory = exported
    assert os.path.isfile(os.path.join(directory, EXPORT_TOKENIZER_DIR, "spiece.model"))
    again_model, again_tokenizer, options = load_export(directory)
    assert again_tokenizer.encode(TEXTS[:2]) == tokenizer.encode(TEXTS[:2])
    assert {k: options[k] for k in ("num_beams", "length_penalty", "length_penalty_style", "max_length")} == {
        "num_beams": 3, "length_penalty": 0.6, "length_penalty_style": "gnmt", "max_length": 11}
    assert options["max_batch_size"] == 32 and options["truecase"] is False
    again = str(tmp_path / "again")
    options["max_batch_size"] = 4  # 3 row buckets to trace, not 6
    export_saved_model(again_model, again_tokenizer, again, jit_compile=True, weights_dtype="int8",
                       product_forms=ProductForms(), **options)
    serve = tf.saved_model.load(again).signatures["serving_default"]
    out = [t.decode() for t in serve(text=tf.constant(TEXTS))["generated_text"].numpy()]
    assert out == _expected(_rounded(model, "int8"), tokenizer, TEXTS, **EXPORTED)

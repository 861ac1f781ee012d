"""Fine-tuning: schedule, input pipeline, fit on a tiny model, two workers, the CLI (resuming an interrupted
run: tests/test_training_speed.py)."""

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import load_file, save_file

from tf_bert_seqgen import EncoderDecoder, cli, training
from tf_bert_seqgen.losses import sequence_cross_entropy
from tf_bert_seqgen.metrics import compute_metrics
from tf_bert_seqgen.tokenizers import load_tokenizer

PAIRS = [
    ("the cat sat. it was warm.", "the cat sat because it was warm."),
    ("it rains. we stay in.", "if it rains, we stay in."),
    ("the dog ran home. it came back.", "the dog ran home, but it came back."),
    ("the file is open. read it.", "when the file is open, read it."),
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _vocabulary():
    words = sorted({w for pair in PAIRS for text in pair for w in re.findall(r"\w+|[^\w\s]", text)})
    return SPECIALS + words + ["extra", "words", "longer", "sentence", "here"]


def _write_bert_weights(path, config):
    """Random weights under BERT's (HF BertModel) names, so `share:` / `bert:` can warm-start from them."""
    rng = np.random.default_rng(0)
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]

    def normal(*shape):
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)

    tensors = {"embeddings.word_embeddings.weight": normal(v, h),
               "embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], h),
               "embeddings.token_type_embeddings.weight": normal(2, h),
               "embeddings.LayerNorm.weight": np.ones(h, np.float32), "embeddings.LayerNorm.bias": normal(h)}
    for n in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{n}."
        shapes = {"attention.self.query": (h, h), "attention.self.key": (h, h), "attention.self.value": (h, h),
                  "attention.output.dense": (h, h), "intermediate.dense": (i, h), "output.dense": (h, i)}
        for name, shape in shapes.items():
            tensors[prefix + name + ".weight"], tensors[prefix + name + ".bias"] = normal(*shape), normal(shape[0])
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors[prefix + name + ".weight"], tensors[prefix + name + ".bias"] = 1 + normal(h), normal(h)
    save_file(tensors, str(path))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny BERT directory (config.json, vocab.txt, random model.safetensors under BERT's names) for
    `random:<dir>`, `share:<dir>` and `bert:<dir>`, plus data files."""
    root = tmp_path_factory.mktemp("tiny")
    vocab = _vocabulary()
    (root / "vocab.txt").write_text("".join(t + "\n" for t in vocab))
    config = {"model_type": "bert", "vocab_size": len(vocab), "hidden_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "intermediate_size": 128, "max_position_embeddings": 64,
              "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "type_vocab_size": 2}
    (root / "config.json").write_text(json.dumps(config))
    _write_bert_weights(root / "model.safetensors", config)
    (root / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS))
    (root / "dev.jsonl").write_text("".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in PAIRS[:2]))
    return root


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    return load_tokenizer(str(tiny_dir))


def _config(**overrides):
    # Graph mode: what these tests check does not depend on XLA (tests/test_training_speed.py covers it),
    # and a short run would spend most of its time compiling.
    values = dict(steps=40, batch_size=4, learning_rate=0.5, warmup_steps=10, steps_per_checkpoint=20,
                  clipnorm=1.0, eval_every=0, verbose=0, generation={"num_beams": 1, "max_new_tokens": 16},
                  xla=False)
    values.update(overrides)
    return training.TrainingConfig(**values)


# --- schedule, loss, optimizer ----------------------------------------------------------------------------

def test_schedule_matches_hand_computed_values():
    schedule = training.WarmupRsqrtDecay(scale=0.05, hidden_size=1024, warmup_steps=40000)
    # lr = 0.05 / sqrt(1024) * min(step / 40000**1.5, 1 / sqrt(step)); step = iterations + 1.
    expected = {0: 0.05 / 32 * 1 / 8e6,  # warm-up: 40000**1.5 = 8e6
                19999: 0.05 / 32 * 20000 / 8e6,  # half-way up: 3.90625e-6
                39999: 0.05 / 32 / 200,  # the peak, 7.8125e-6
                159999: 0.05 / 32 / 400}  # rsqrt decay: a quarter of the way at 4x the steps -> half
    for iterations, value in expected.items():
        np.testing.assert_allclose(float(schedule(iterations)), value, rtol=1e-6)
    assert schedule.peak == pytest.approx(7.8125e-6)
    copy = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert isinstance(copy, training.WarmupRsqrtDecay) and copy.get_config() == schedule.get_config()
    with pytest.raises(ValueError):
        training.WarmupRsqrtDecay(warmup_steps=0)


def test_optimizers_and_loss():
    adam = training.make_optimizer(0.05, 64, 10)
    assert isinstance(adam, keras.optimizers.Adam) and adam.beta_2 == 0.997 and adam.get_config()["clipnorm"] == 1.0
    adamw = training.make_optimizer(0.05, 64, 10, optimizer="adamw", weight_decay=0.1, clipnorm=None)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.1
    assert isinstance(keras.optimizers.deserialize(keras.optimizers.serialize(adamw)), training.AdamW)
    # Clipping acts on the summed gradient: a gradient of norm 10 leaves SGD-like Adam's first step
    # unchanged in direction and, with global clipping, scales every tensor by the same factor.
    for clip in ({"clipnorm": 1.0}, {"global_clipnorm": 1.0}):
        optimizer = training.make_optimizer(**clip)
        grads = [tf.constant([6.0, 8.0]), tf.constant([0.0])]
        clipped = [g for g, _ in optimizer._all_reduce_sum_gradients(list(zip(grads, ["a", "b"], strict=True)))]
        np.testing.assert_allclose(clipped[0].numpy(), [0.6, 0.8], rtol=1e-6)
    with pytest.raises(ValueError):
        training.make_optimizer(optimizer="sgd")
    labels = tf.constant([[5, 6, 3, 0], [7, 3, 0, 0]])
    logits = tf.random.stateless_normal([2, 4, 11], seed=[1, 2])
    for smoothing in (0.0, 0.1):
        loss = training.SequenceCrossEntropy(pad_token_id=0, label_smoothing=smoothing)
        np.testing.assert_allclose(float(loss(labels, logits)),
                                   float(sequence_cross_entropy(labels, logits, 0, smoothing)), rtol=1e-6)
    # Pad positions do not count: changing their logits changes nothing.
    noisy = tf.where(tf.constant([[False, False, False, True], [False, False, True, True]])[..., None], logits * 5.0, logits)
    assert float(loss(labels, noisy)) == pytest.approx(float(loss(labels, logits)))


# --- input pipeline ---------------------------------------------------------------------------------------

def test_dataset_shapes_eos_and_bucketing(tiny_dir, tokenizer):
    long_pair = (" ".join(["longer sentence here"] * 5), " ".join(["extra words"] * 6))
    pairs = PAIRS + [long_pair] * 3
    ds = training.make_dataset(pairs, tokenizer, batch_size=2, bucket_boundaries=[12], max_target_length=10,
                               eos_token_id=3, pad_token_id=0)
    seen = 0
    for features, labels in ds:
        ids, mask = features["input_ids"].numpy(), features["attention_mask"].numpy()
        labels = labels.numpy()
        np.testing.assert_array_equal(features["labels"].numpy(), labels)
        assert ids.dtype == labels.dtype == mask.dtype == np.int32
        np.testing.assert_array_equal(mask, (ids != 0).astype(np.int32))
        # Every target ends with eos (truncated ones too), then padding only.
        lengths = (labels != 0).sum(axis=1)
        assert all(row[n - 1] == 3 and not row[n:].any() for row, n in zip(labels, lengths, strict=True))
        assert labels.shape[1] <= 10
        # Buckets: short pairs (< 12 tokens) and long ones never share a batch.
        width = max(ids.shape[1], labels.shape[1])
        assert width < 12 or (mask.sum(axis=1) >= 11).all()
        seen += len(labels)
    assert seen == len(pairs)
    source_ids = tokenizer.encode(PAIRS[0][0])
    first = next(iter(training.make_dataset(PAIRS[:1], tokenizer, 1, bucket=False, eos_token_id=3)))
    assert first[0]["input_ids"].numpy()[0].tolist() == source_ids
    assert first[1].numpy()[0].tolist() == tokenizer.encode(PAIRS[0][1]) + [3]
    # Files: .tsv and .jsonl read as the same pairs; anything else is refused with the path in the message.
    assert training.read_pairs(str(tiny_dir / "train.tsv")) == PAIRS
    assert training.read_pairs(str(tiny_dir / "dev.jsonl")) == PAIRS[:2]
    (tiny_dir / "bad.tsv").write_text("no tab here\n")
    with pytest.raises(ValueError, match="bad.tsv:1"):
        training.read_pairs(str(tiny_dir / "bad.tsv"))


def test_shuffled_repeated_stream_is_a_function_of_the_seed(tokenizer):
    def stream(seed):
        ds = training.make_dataset(PAIRS, tokenizer, 2, shuffle=True, repeat=True, seed=seed, bucket=False)
        return [b[1].numpy().tolist() for b in ds.take(6)]

    assert stream(1) == stream(1)
    assert stream(1) != stream(2)


# --- model initialisation -----------------------------------------------------------------------------------

def test_init_specs_warm_start_from_the_checkpoint(tiny_dir, tokenizer):
    bert = load_file(str(tiny_dir / "model.safetensors"))
    words = bert["embeddings.word_embeddings.weight"]
    query = bert["encoder.layer.1.attention.self.query.weight"]  # [out, in] in PyTorch and in our kernels
    share = training.build_model(f"share:{tiny_dir}", dropout=0.3)  # BERTSHARE
    two = training.build_model(f"bert:{tiny_dir}")  # BERT2BERT
    rnd = training.build_model(f"random:{tiny_dir}")  # RND2RND
    assert share.config.share and not two.config.share and not rnd.config.share
    assert share.config.encoder.hidden_dropout_prob == share.config.decoder.attention_probs_dropout_prob == 0.3
    assert share.decoder.embeddings is share.encoder.embeddings
    for model in (share, two):
        for stack in (model.encoder, model.decoder):
            np.testing.assert_array_equal(stack.embeddings.word_embeddings.embeddings.numpy(), words)
            np.testing.assert_array_equal(stack.transformer_layers[1].self_attention.query.kernel.numpy(), query)
    assert not np.allclose(rnd.encoder.embeddings.word_embeddings.embeddings.numpy(), words)
    assert share.config.decoder.eos_token_id == tokenizer.eos_token_id == 3  # [SEP]
    assert share.config.start_token_id == tokenizer.bos_token_id == 2  # [CLS]
    with pytest.raises(ValueError, match="directory"):
        training.parse_init("share")


def test_init_spec_with_cross_attention_from_self_attention(tiny_dir):
    bert = load_file(str(tiny_dir / "model.safetensors"))
    two = training.build_model(f"bert:{tiny_dir}", dropout=0.2, cross_attention="self_attention")
    assert two.config.decoder.hidden_dropout_prob == 0.2
    for i, layer in enumerate(two.decoder.transformer_layers):
        np.testing.assert_array_equal(layer.cross_attention.value.kernel.numpy(),
                                      bert[f"encoder.layer.{i}.attention.self.value.weight"])
    with pytest.raises(ValueError, match="applies to init bert: or share:"):
        training.build_model(f"random:{tiny_dir}", cross_attention="self_attention")


# --- training ------------------------------------------------------------------------------------------------

def test_finetune_memorises_pairs_and_reports_metrics(tiny_dir, tokenizer, tmp_path):
    """Under MirroredStrategy (one CPU replica here): the model and optimizer are built in its scope, dev
    generation runs on a plain copy."""
    out = tmp_path / "run"
    model, history = training.finetune(f"random:{tiny_dir}", tokenizer, PAIRS, str(out),
                                       _config(steps=60, learning_rate=0.2), eval_data=str(tiny_dir / "dev.jsonl"),
                                       strategy=tf.distribute.MirroredStrategy(["/cpu:0"]), export=False)
    assert isinstance(model.distribute_strategy, tf.distribute.MirroredStrategy)
    assert history["step"] == [20, 40, 60]
    losses = history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    assert history["val_loss"][-1] < history["val_loss"][0]
    # Greedy decoding reproduces the memorised targets.
    results = training.evaluate_generation(model, tokenizer, PAIRS, max_new_tokens=16)
    assert results["predictions"] == [t for _, t in PAIRS], results["predictions"]
    assert results["exact_match"] == 1.0 and results["sari"] > 90
    assert history["val_exact_match"][-1] == 1.0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["exact_match"] == 1.0 and set(metrics) >= {"rouge1", "rouge2", "rougeL", "bleu", "sari"}
    saved = EncoderDecoder.from_pretrained(str(out / "model"))
    np.testing.assert_array_equal(training.weights_digest(saved), training.weights_digest(model))
    # TensorBoard logs when tensorboard is installed (the fine-tuning extra), a warning otherwise.
    assert (out / "logs" / "train").is_dir() == (importlib.util.find_spec("tensorboard") is not None)
    assert len(json.loads((out / "history.json").read_text())) == 3


def test_frozen_word_embeddings_stay_as_warm_started(tiny_dir, tokenizer, tmp_path):
    start = load_file(str(tiny_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    model, history = training.finetune(f"share:{tiny_dir}", tokenizer, PAIRS, str(tmp_path / "run"),
                                       _config(freeze_word_embeddings=True), export=False)
    table = model.decoder.embeddings.word_embeddings
    assert model.encoder.embeddings.word_embeddings is table  # shared: one table, frozen once
    assert all(w is not table.embeddings for w in model.trainable_weights)
    np.testing.assert_array_equal(table.embeddings.numpy(), start)
    # Everything else trained: the frozen run still learns.
    assert history["loss"][-1] < history["loss"][0]
    layer_norm = model.decoder.embeddings.layer_norm.gamma.numpy()
    assert not np.allclose(layer_norm, load_file(str(tiny_dir / "model.safetensors"))["embeddings.LayerNorm.weight"])


def test_inserted_token_ids_are_what_targets_add(tokenizer):
    pairs = [("it rains. we stay in.", "if it rains, we stay in."),
             ("the cat sat. it was warm.", "the cat sat, but it was warm."),
             ("the dog ran home. it came back.", "the dog ran home, but it came back.")]
    ids = dict(zip(["if", ",", "but"], tokenizer.encode(["if", ",", "but"]), strict=True))
    # "," is added in all three pairs, "but" in two, "if" in one; "." and the copied words are in the sources.
    assert training.inserted_token_ids(tokenizer, pairs, min_count=2) == sorted(ids[","] + ids["but"])
    assert training.inserted_token_ids(tokenizer, pairs, min_count=1) == sorted(ids[","] + ids["but"] + ids["if"])


def test_bare_feature_dicts_and_mixed_precision(tiny_dir, tokenizer):
    # Under XLA (the default compile): bucket widths, so one program for these pairs.
    ds = training.make_dataset(PAIRS, tokenizer, 4, eos_token_id=3, pad_to_bucket=True).map(lambda f, labels: f)
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = training.build_model(f"random:{tiny_dir}")
        model.compile(training.make_optimizer(0.5, 64, 2), label_smoothing=0.1)
        history = model.fit(ds.repeat(), steps_per_epoch=3, epochs=1, verbose=0).history
        features = next(iter(ds))
        assert model.encoder(features["input_ids"], features["attention_mask"]).dtype == tf.bfloat16
        assert all(v.dtype == "float32" for v in model.trainable_variables)
        # Generation (float32 cache) runs on a float32 copy with the same weights.
        copy = training.float32_model(model)
        assert copy.compute_dtype == "float32" and len(training.generate_texts(copy, tokenizer, ["it rains."])) == 1
        np.testing.assert_array_equal(training.weights_digest(copy), training.weights_digest(model))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(history["loss"][0])


# --- two workers ---------------------------------------------------------------------------------------------

def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


# The two-worker test trains with plain SGD (clipping after the all-reduce, as our Adam does): Adam's first
# steps are lr * sign(gradient), which turns float noise in near-zero gradients into full steps, so only SGD
# can show that N replicas make the update one process makes.
class SummedClipSGD(training.optim._ClipSummedGradients, keras.optimizers.SGD):
    pass


def _make_sgd(learning_rate, hidden_size, warmup_steps, optimizer, weight_decay, clipnorm, global_clipnorm,
              epsilon=None, accumulate=1):
    return SummedClipSGD(learning_rate, clipnorm=clipnorm, global_clipnorm=global_clipnorm)


def _sgd_worker(argv):
    """Entry point of the worker processes: the CLI with `_make_sgd`."""
    training.run.make_optimizer = _make_sgd  # where finetune looks it up
    cli.main(argv)


_WORKER = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); import test_training; "
           "test_training._sgd_worker(sys.argv[1:])")


@pytest.mark.large
def test_two_worker_multi_worker_mirrored_strategy(tiny_dir, tokenizer, tmp_path, monkeypatch):
    """Two processes on 127.0.0.1 train together (all-reduce every step), end with identical weights, and
    match one process training on the same global batches (gradients averaged, clipped after the sum)."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    # One example repeated: however the workers shard the data, every batch holds the same examples.
    data = tmp_path / "same.tsv"
    data.write_text(f"{PAIRS[0][0]}\t{PAIRS[0][1]}\n" * 8)
    out = tmp_path / "mw"
    argv = ["finetune", "--init", f"random:{tiny_dir}", "--train", str(data), "--out", str(out), "--steps", "4",
            "--batch-size", "4", "--steps-per-checkpoint", "2", "--learning-rate", "0.5", "--clipnorm", "0.5",
            "--strategy", "multi-worker", "--no-export", "--verbose", "0"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                          os.environ.get("PYTHONPATH", "")])}
    workers = []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            workers.append(subprocess.Popen(
                [sys.executable, "-c", _WORKER, *argv], env={**env, "TF_CONFIG": tf_config},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True))
        deadline = time.monotonic() + 150
        outputs = [worker.communicate(timeout=max(1, deadline - time.monotonic()))[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]
    chief = load_file(str(out / "model" / "model.safetensors"))
    other = load_file(str(out / "worker_1" / "model" / "model.safetensors"))
    assert chief.keys() == other.keys()
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)
    report = json.loads(outputs[0][outputs[0].index("{\n"):])
    assert report["steps"] == 4

    monkeypatch.setattr(training.run, "make_optimizer", _make_sgd)
    _, history = training.finetune(
        f"random:{tiny_dir}", tokenizer, str(data), str(tmp_path / "single"),
        _config(steps=4, batch_size=4, steps_per_checkpoint=2, learning_rate=0.5, clipnorm=0.5), export=False)
    mw_history = json.loads((out / "history.json").read_text())
    np.testing.assert_allclose([r["loss"] for r in mw_history], history["loss"], rtol=1e-5)
    single = load_file(str(tmp_path / "single" / "model" / "model.safetensors"))
    for name, value in single.items():
        np.testing.assert_allclose(chief[name], value, atol=1e-5, err_msg=name)
    assert history["loss"][-1] < history["loss"][0]


# --- command line ---------------------------------------------------------------------------------------------

def test_cli_finetune_then_evaluate_checkpoint_and_savedmodel(tiny_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    cli.main(["finetune", "--init", f"share:{tiny_dir}", "--train", str(tiny_dir / "train.tsv"),
             "--eval", str(tiny_dir / "dev.jsonl"), "--out", str(out), "--steps", "30",
             "--batch-size", "4", "--learning-rate", "0.5", "--warmup", "10", "--steps-per-checkpoint", "15",
             "--max-new-tokens", "16", "--verbose", "0", "--cross-attention", "self_attention", "--no-xla"])
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 30 and report["export"] == str(out / "export" / "1")
    assert report["peak_learning_rate"] == pytest.approx(0.5 / (64 * 10) ** 0.5)
    assert {"loss", "val_loss", "val_sari", "val_exact_match"} <= set(report["final"])
    results = {}
    for name, path in (("checkpoint", out / "model"), ("savedmodel", out / "export" / "1")):
        predictions = tmp_path / f"{name}.txt"
        options = ["--max-new-tokens", "16"] if name == "checkpoint" else []
        cli.main(["evaluate", "--model", str(path), "--data", str(tiny_dir / "train.tsv"),
                 "--predictions", str(predictions), *options])
        results[name] = json.loads(capsys.readouterr().out)
        results[name]["predictions"] = predictions.read_text().splitlines()
        assert results[name]["examples"] == len(PAIRS) and results[name]["references"] == "tokenizer"
    # The export decodes as the checkpoint does (greedy, 16 new tokens, fixed at export time).
    assert results["savedmodel"]["predictions"] == results["checkpoint"]["predictions"]
    # A run can start from the export (`model:<export dir>`): its weights and its tokenizer's files.
    spec = f"model:{out / 'export' / '1'}"
    continued, checkpoint = training.build_model(spec), EncoderDecoder.from_pretrained(str(out / "model"))
    np.testing.assert_array_equal(training.weights_digest(continued), training.weights_digest(checkpoint))
    assert training.load_init_tokenizer(spec).encode("the cat sat.") == load_tokenizer(str(out / "model")).encode(
        "the cat sat.")
    # The checkpoint's report is compute_metrics of its own predictions.
    assert results["checkpoint"]["sari"] == pytest.approx(compute_metrics(
        [s for s, _ in PAIRS], results["checkpoint"]["predictions"], [t for _, t in PAIRS])["sari"])
    with pytest.raises(ValueError, match="init must be bert:<dir>"):  # the library names its argument
        training.parse_init("gpt2:somewhere")
    with pytest.raises(SystemExit) as exit_info:  # the CLI names the flags: one line, exit code 2
        cli.main(["finetune", "--init", f"random:{tiny_dir}", "--train", str(tiny_dir / "train.tsv"),
                 "--out", str(tmp_path / "never"), "--cross-attention", "self_attention"])
    assert exit_info.value.code == 2
    assert "--cross-attention self_attention applies to --init bert: or share:" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()

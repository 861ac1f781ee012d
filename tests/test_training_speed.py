"""Fine-tuning at speed: XLA by default with its graph-mode fallback, gradient accumulation, padding to
buckets, and a resumed run that continues the schedule and the data stream."""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_training import PAIRS, _vocabulary

from tf_bert_seqgen import BertForSeqGenerationConfig, EncoderDecoder, EncoderDecoderConfig, cli, training
from tf_bert_seqgen.tokenizers import load_tokenizer

VOCAB, SOURCE, TARGET = 40, 6, 5


def _model():
    keras.utils.set_random_seed(0)
    config = BertForSeqGenerationConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=24, max_position_embeddings=32, hidden_dropout_prob=0.0,
                                        attention_probs_dropout_prob=0.0)
    return EncoderDecoder.from_config(EncoderDecoderConfig(config, config))


def _batches(examples, batch_size):
    """Random (features, labels) batches without padding: every batch holds batch_size * TARGET target
    tokens, so the mean of per-batch token means is the token mean of their union (the loss of one batch n
    times larger), exactly."""
    rng = np.random.default_rng(1)
    ids = rng.integers(4, VOCAB, (examples, SOURCE)).astype(np.int32)
    labels = rng.integers(4, VOCAB, (examples, TARGET)).astype(np.int32)
    features = {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": labels}
    return tf.data.Dataset.from_tensor_slices((features, labels)).batch(batch_size).repeat()


class SummedClipSGD(training.optim._ClipSummedGradients, keras.optimizers.SGD):
    """SGD with the package's clipping: unlike Adam (whose first steps are lr * sign(gradient)), its update
    is proportional to the gradient, so it shows whether accumulated gradients are averaged and clipped
    as one batch's would be."""


def _train(optimizer, batch_size, batches, strategy, jit_compile=False):
    with strategy.scope():
        model = _model()
        model.compile(optimizer, jit_compile=jit_compile)
    model.fit(_batches(8, batch_size), steps_per_epoch=batches, epochs=1, verbose=0)
    return model


@pytest.mark.parametrize("strategy", [None, "one_device"])
def test_accumulated_batches_make_the_update_of_one_larger_batch(strategy):
    """4 batches of 2, accumulated in pairs, against 2 batches of 4 over the same 8 examples: the same
    weights after two updates. SGD with clipping (active: each tensor's gradient norm exceeds 0.05) shows
    the mean and the clipping of the mean, with and without a distribution strategy (one device: see
    test_accumulation_refuses_mirrored_strategies)."""
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0") if strategy else tf.distribute.get_strategy()

    def sgd(accumulate):
        with strategy.scope():
            return SummedClipSGD(0.5, clipnorm=0.05, gradient_accumulation_steps=accumulate)

    start = training.weights_digest(_model())
    large = _train(sgd(None), 4, 2, strategy)
    small = _train(sgd(2), 2, 4, strategy)
    assert int(large.optimizer.iterations.numpy()) == int(small.optimizer.iterations.numpy()) == 2
    np.testing.assert_allclose(training.weights_digest(small), training.weights_digest(large), atol=2e-6)
    assert np.abs(training.weights_digest(large) - start).max() > 1e-2  # the updates did move the weights
    one = _train(sgd(None), 2, 2, strategy)  # the same two updates from half the examples differ
    assert np.abs(training.weights_digest(one) - training.weights_digest(large)).max() > 1e-3


def test_accumulation_counts_updates_for_the_schedule_and_adam_under_xla():
    """make_optimizer(accumulate=2) under the default compile (XLA): Adam's bias correction and the warm-up
    schedule count updates, not batches, so the weights and the learning rate match batches twice as
    large; Keras' own schedule step (batches) would double the warm-up learning rate."""
    strategy = tf.distribute.get_strategy()
    large = _train(training.make_optimizer(0.5, 16, 10), 4, 3, strategy, jit_compile="auto")
    small = _train(training.make_optimizer(0.5, 16, 10, accumulate=2), 2, 6, strategy, jit_compile="auto")
    assert large.jit_compile and small.jit_compile
    assert int(small.optimizer.iterations.numpy()) == 3
    np.testing.assert_allclose(float(small.optimizer.learning_rate), float(large.optimizer.learning_rate), rtol=1e-6)
    # lr = 0.5 / sqrt(16) * step / 10**1.5 at the 4th update (1-based step 4), in warm-up.
    assert float(small.optimizer.learning_rate) == pytest.approx(0.5 / 4 * 4 / 10 ** 1.5, rel=1e-6)
    np.testing.assert_allclose(training.weights_digest(small), training.weights_digest(large), atol=2e-5)
    schedule = keras.optimizers.deserialize(keras.optimizers.serialize(small.optimizer)).learning_rate
    assert float(schedule) == pytest.approx(float(training.WarmupRsqrtDecay(0.5, 16, 10)(0)))  # a fresh copy
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="accumulate must be an integer >= 1"):
            training.make_optimizer(accumulate=bad)
    with pytest.raises(ValueError, match="accumulate must be an integer >= 1, got 0"):
        training.TrainingConfig(accumulate=0)


def test_accumulation_refuses_mirrored_strategies(tmp_path):
    """Keras' accumulation updates inside a tf.cond, where MirroredStrategy cannot merge_call on CPU: said
    before anything is built."""
    with pytest.raises(ValueError, match="accumulate > 1 does not run under MirroredStrategy"):
        training.finetune(lambda: pytest.fail("built a model"), None, PAIRS, str(tmp_path),
                          training.TrainingConfig(accumulate=2), strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))


def test_xla_by_default_and_graph_mode_where_the_step_does_not_compile():
    """The default compile trains under XLA; a step XLA cannot compile (a NumPy function in the loss) warns
    with the op's name, trains in graph mode, and still trains on the first batch."""
    model = _model()
    model.compile(training.make_optimizer(0.5, 16, 2))
    model.fit(_batches(8, 4), steps_per_epoch=1, epochs=1, verbose=0)
    assert model.jit_compile is True

    def numpy_loss(labels, logits):
        def record(y):
            batches.append(y.copy())
            return np.float32(0.0)

        recorded = tf.reshape(tf.numpy_function(record, [labels], tf.float32), [])
        return training.SequenceCrossEntropy(0)(labels, logits) + recorded

    batches = []
    model = _model()
    model.compile(training.make_optimizer(0.5, 16, 2), loss=numpy_loss)
    traces, train_step = 0, model.train_step

    def counted_train_step(data):
        nonlocal traces
        traces += 1
        return train_step(data)

    model.train_step = counted_train_step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(_batches(8, 4), steps_per_epoch=2, epochs=1, verbose=0)
    messages = [str(w.message) for w in caught if "XLA" in str(w.message)]
    assert len(messages) == 1 and "unsupported operation PyFunc" in messages[0] and "graph mode" in messages[0]
    assert model.jit_compile is False and int(model.optimizer.iterations.numpy()) == 2
    # One trace of the step for the XLA attempt, one for graph mode: fit builds the optimizer before the
    # first trace, so tf.function does not trace again because that trace created variables.
    assert traces == 2, traces
    expected = [labels.numpy() for _, labels in _batches(8, 4).take(2)]
    np.testing.assert_array_equal(np.stack(batches), np.stack(expected))  # the first batch was not skipped
    plain = _model()
    plain.compile(training.make_optimizer(0.5, 16, 2), jit_compile=False)
    assert plain.jit_compile is False


def test_pad_to_bucket_gives_few_shapes_and_the_same_tokens(tmp_path):
    """Batches padded to the bucket widths (source and target each) instead of their longest row."""
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in _vocabulary()))
    tokenizer = load_tokenizer(str(tmp_path))
    long_pair = (" ".join(["longer sentence here"] * 4), "extra words")
    pairs = PAIRS + [long_pair] * 2
    options = dict(batch_size=2, bucket_boundaries=[8, 16], max_source_length=20, max_target_length=12,
                   eos_token_id=3, pad_token_id=0)
    plain = list(training.make_dataset(pairs, tokenizer, **options))
    padded = list(training.make_dataset(pairs, tokenizer, pad_to_bucket=True, **options))
    widths = {(f["input_ids"].shape[1], f["labels"].shape[1]) for f, _ in padded}
    assert widths <= {(s, t) for s in (8, 16, 20) for t in (8, 12)}, widths
    for (f, labels), (g, padded_labels) in zip(plain, padded, strict=True):
        s, t = f["input_ids"].shape[1], labels.shape[1]
        assert g["input_ids"].shape[1] == min(w for w in (8, 16, 20) if w >= s)
        np.testing.assert_array_equal(g["input_ids"][:, :s], f["input_ids"])
        assert not g["input_ids"][:, s:].numpy().any() and not g["attention_mask"][:, s:].numpy().any()
        np.testing.assert_array_equal(padded_labels[:, :t], labels)
        assert not padded_labels[:, t:].numpy().any()


def test_cli_accumulate_and_xla_flags(tmp_path, capsys):
    args = cli.build_parser().parse_args(["finetune", "--init", "random:x", "--train", "t.tsv", "--out", "o",
                                          "--accumulate", "4", "--no-xla"])
    config = cli.train.training_config(args)
    assert config.accumulate == 4 and config.xla is False
    assert cli.train.training_config(cli.build_parser().parse_args(
        ["finetune", "--init", "random:x", "--train", "t.tsv", "--out", "o"])).xla is True
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["finetune", "--init", "random:x", "--train", "t.tsv", "--out", str(tmp_path / "o"),
                  "--accumulate", "0"])
    assert exit_info.value.code == 2
    assert "--accumulate must be an integer >= 1, got 0" in capsys.readouterr().err


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == 2:
            raise KeyboardInterrupt("simulated preemption")


def test_resumed_run_continues_the_schedule_and_the_data_stream(tmp_path):
    """With accumulate=2 (4 batches of 2 per checkpoint), interrupted after the first checkpoint: the
    resumed run starts at update 2 with the schedule's learning rate there, trains on exactly the batches
    the uninterrupted run trains on after that point (the skip counts batches, not updates), so no data
    epoch repeats an example, and ends with the same weights."""
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in _vocabulary()))
    tokenizer = load_tokenizer(str(tmp_path))
    pairs = PAIRS + [(t, s) for s, t in PAIRS]  # 8 distinct examples: a data epoch is 4 batches of 2
    recorded = []

    class Recording(EncoderDecoder):
        def train_step(self, data):
            def record(labels):
                recorded.append(labels.copy())
                return np.int32(0)

            with tf.control_dependencies([tf.numpy_function(record, [data[1]], tf.int32)]):
                return super().train_step(data)

    def init():
        keras.utils.set_random_seed(0)
        config = BertForSeqGenerationConfig(vocab_size=len(_vocabulary()), hidden_size=16, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=24, max_position_embeddings=32,
                                            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                            pad_token_id=0, eos_token_id=3, bos_token_id=2)
        return Recording.from_config(EncoderDecoderConfig(config, config))

    # Lengths 8: one bucket, so a data epoch is one shuffled pass in 4 batches.
    config = training.TrainingConfig(steps=4, batch_size=2, accumulate=2, steps_per_checkpoint=2, warmup_steps=10,
                                     learning_rate=0.5, max_source_length=8, max_target_length=8, xla=False,
                                     eval_every=0, verbose=0)
    straight, _ = training.finetune(init, tokenizer, pairs, str(tmp_path / "straight"), config, export=False)
    straight_batches, recorded[:] = list(recorded), []
    out = str(tmp_path / "interrupted")
    with pytest.raises(KeyboardInterrupt):
        training.finetune(init, tokenizer, pairs, out, config, export=False, callbacks=[_Interrupt()])
    assert not os.path.exists(os.path.join(out, "model")), "an interrupted run must not write its final model"
    first_batches, recorded[:] = list(recorded), []
    state = {}

    class AtStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            state["step"] = int(self.model.optimizer.iterations.numpy())
            state["learning_rate"] = float(self.model.optimizer.learning_rate)

    resumed, history = training.finetune(init, tokenizer, pairs, out, config, export=False, callbacks=[AtStart()])
    assert len(straight_batches) == 8 and len(first_batches) == 4 and len(recorded) == 4
    assert state["step"] == 2 and history["step"] == [2, 4]
    assert state["learning_rate"] == pytest.approx(0.5 / 4 * 3 / 10 ** 1.5, rel=1e-6)  # 1-based step 3, warm-up
    for expected, seen in zip(straight_batches, first_batches + recorded, strict=True):
        np.testing.assert_array_equal(seen, expected)
    for epoch in (first_batches, recorded):  # each data epoch: every example once
        rows = {tuple(row) for batch in epoch for row in batch}
        assert len(rows) == len(pairs), rows
    np.testing.assert_allclose(training.weights_digest(resumed), training.weights_digest(straight), rtol=1e-5,
                               atol=1e-6)

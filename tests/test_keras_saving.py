"""Keras serialization: registered classes, get_config / from_config as Keras defines them, and
`model.save("x.keras")` + `keras.saving.load_model` for shared (BERTSHARE) and unshared models."""

import inspect
import io
import os
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_bert_seqgen import (
    BertForSeqGenerationConfig,
    BertForSeqGenerationDecoder,
    BertForSeqGenerationEncoderModel,
    EncoderDecoder,
    EncoderDecoderConfig,
)
from tf_bert_seqgen import layers as layers_module

SIZES = dict(vocab_size=41, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
             max_position_embeddings=32)
MODEL_CLASSES = [BertForSeqGenerationEncoderModel, BertForSeqGenerationDecoder, EncoderDecoder]
LAYER_CLASSES = [getattr(layers_module, name) for name in
                 ("Dense", "Embeddings", "Attention", "FeedForward", "TransformerLayer", "LMHead")]


def _model(share, seed=0, **options):
    keras.utils.set_random_seed(seed)
    config = BertForSeqGenerationConfig(**SIZES)
    return EncoderDecoder.from_config({**EncoderDecoderConfig(config, config, share=share).to_dict(), **options})


def _inputs():
    ids = np.array([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0]], np.int32)
    mask = (ids != 0).astype(np.int32)
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": np.array([[2, 7, 8], [2, 9, 9]], np.int32)}


def _stored_weights(path):
    """name -> shape of every array in the .keras file's model.weights.h5."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read("model.weights.h5")
    found = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item.shape) if isinstance(item, h5py.Dataset) else None)
    return found


def _parameter_count(share):
    """Parameters of the model for SIZES, counted from BERT's architecture (not from the package)."""
    v, h, i, p, n = (SIZES[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "max_position_embeddings",
                                        "num_hidden_layers"))
    embeddings = v * h + p * h + 2 * h
    attention = 4 * (h * h + h) + 2 * h  # query, key, value, output (weights + biases), LayerNorm
    feed_forward = (h * i + i) + (i * h + h) + 2 * h
    stacks = 1 if share else 2
    return stacks * (embeddings + n * (attention + feed_forward)) + n * attention + v  # + cross-attention, LM bias


@pytest.mark.parametrize("cls", MODEL_CLASSES + LAYER_CLASSES, ids=lambda c: c.__name__)
def test_every_layer_and_model_is_registered(cls):
    assert keras.saving.get_registered_name(cls) == f"tf_bert_seqgen>{cls.__name__}"
    assert keras.saving.get_registered_object(f"tf_bert_seqgen>{cls.__name__}") is cls


def test_from_config_has_keras_signature():
    for cls in MODEL_CLASSES:
        assert list(inspect.signature(cls.from_config).parameters) == ["config", "custom_objects"], cls
        assert inspect.signature(cls.from_config).parameters["custom_objects"].default is None


@pytest.mark.parametrize("share", [True, False], ids=["shared", "unshared"])
def test_save_and_load_model_give_equal_outputs(share, tmp_path):
    model = _model(share, generation_defaults={"num_beams": 2, "max_new_tokens": 4})
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is EncoderDecoder and loaded.config == model.config
    inputs = _inputs()
    expected = model(inputs).numpy()
    # The same architecture with other random weights gives other logits: equality below means loaded weights.
    assert not np.allclose(_model(share, seed=1)(inputs).numpy(), expected, atol=1e-3)
    np.testing.assert_array_equal(loaded(inputs).numpy(), expected)
    assert loaded.generation_defaults == {"num_beams": 2, "max_new_tokens": 4}
    np.testing.assert_array_equal(loaded.generate(inputs["input_ids"], inputs["attention_mask"]).numpy(),
                                  model.generate(inputs["input_ids"], inputs["attention_mask"]).numpy())
    # Sharing survives as structure: the decoder runs the encoder's sub-layers, not copies of them.
    encoder_layer, decoder_layer = loaded.encoder.transformer_layers[0], loaded.decoder.transformer_layers[0]
    assert (decoder_layer.self_attention is encoder_layer.self_attention) == share
    assert (loaded.decoder.embeddings is loaded.encoder.embeddings) == share
    assert (decoder_layer.cross_attention is not None) and loaded.encoder.transformer_layers[0].cross_attention is None


@pytest.mark.parametrize("share", [True, False], ids=["shared", "unshared"])
def test_shared_weights_are_stored_once(share, tmp_path):
    path = str(tmp_path / "model.keras")
    _model(share).save(path)
    stored = _stored_weights(path)
    assert sum(int(np.prod(shape)) for shape in stored.values()) == _parameter_count(share)


def test_load_model_in_a_fresh_process_needs_only_the_package_import(tmp_path):
    model = _model(True)
    path = str(tmp_path / "model.keras")
    model.save(path)
    np.savez(tmp_path / "inputs.npz", **_inputs())
    code = ("import sys, numpy as np, keras, tf_bert_seqgen; m = keras.saving.load_model(sys.argv[1]); "
            "inputs = dict(np.load(sys.argv[2])); np.save(sys.argv[3], m(inputs).numpy())")
    out = subprocess.run([sys.executable, "-c", code, path, str(tmp_path / "inputs.npz"), str(tmp_path / "logits.npy")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "logits.npy"), model(_inputs()).numpy())


def test_dtype_name_and_defaults_travel_in_the_config(tmp_path):
    model = _model(True, name="fusion", generation_defaults={"num_beams": 3})
    half = model.cast("bfloat16")
    config = half.get_config()
    assert keras.dtype_policies.get(config["dtype"]).name == "bfloat16"
    assert config["generation_defaults"] == {"num_beams": 3}
    rebuilt = EncoderDecoder.from_config(model.get_config())
    assert rebuilt.name == "fusion" and rebuilt.config == model.config and rebuilt.dtype_policy.name == "float32"
    path = str(tmp_path / "half.keras")
    half.save(path)
    loaded = keras.saving.load_model(path)
    assert {w.dtype for w in loaded.weights} == {"bfloat16"} and loaded.generation_defaults == {"num_beams": 3}
    np.testing.assert_array_equal(loaded(_inputs()).numpy(), half(_inputs()).numpy())
    # Mixed precision: float32 variables, bfloat16 computation.
    mixed = EncoderDecoder.from_config({**model.config.to_dict(), "dtype": "mixed_bfloat16"})
    again = EncoderDecoder.from_config(mixed.get_config())
    assert again.dtype_policy.name == "mixed_bfloat16" and {w.dtype for w in again.weights} == {"float32"}


def test_existing_config_forms_still_build():
    config = BertForSeqGenerationConfig(**SIZES)
    ours = EncoderDecoderConfig(config, config, share=True, decoder_start_token_id=5)
    for form in (ours, ours.to_dict(), ours.to_hf_dict()):
        assert EncoderDecoder.from_config(form).config == ours
    # An HF config.json's dtype is PyTorch's storage type; it does not make a bfloat16 Keras model.
    assert EncoderDecoder.from_config({**ours.to_hf_dict(), "dtype": "bfloat16"}).dtype_policy.name == "float32"


@pytest.mark.parametrize("cls", LAYER_CLASSES[:5], ids=lambda c: c.__name__)
def test_layers_round_trip_through_keras_serialization(cls):
    model = _model(False)
    layer = {"Dense": model.encoder.transformer_layers[0].feed_forward.intermediate,
             "Embeddings": model.encoder.embeddings,
             "Attention": model.decoder.transformer_layers[0].cross_attention,
             "FeedForward": model.encoder.transformer_layers[1].feed_forward,
             "TransformerLayer": model.decoder.transformer_layers[1]}[cls.__name__]
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"tf_bert_seqgen>{cls.__name__}"
    clone = keras.saving.deserialize_keras_object(serialized)
    assert type(clone) is cls and clone.get_config() == layer.get_config()


def test_standalone_shared_decoder_round_trips(tmp_path):
    model = _model(True)
    path = str(tmp_path / "decoder.keras")
    model.decoder.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.shared_encoder, BertForSeqGenerationEncoderModel)
    assert loaded.transformer_layers[0].self_attention is loaded.shared_encoder.transformer_layers[0].self_attention
    inputs = _inputs()
    hidden = model.encoder(inputs["input_ids"], inputs["attention_mask"])
    np.testing.assert_array_equal(loaded(inputs["decoder_input_ids"], hidden, inputs["attention_mask"]).numpy(),
                                  model.decoder(inputs["decoder_input_ids"], hidden, inputs["attention_mask"]).numpy())


def test_compiled_model_loads_compiled_with_its_optimizer_state(tmp_path):
    model = _model(True)
    # Graph mode: what is saved does not depend on XLA (the default compile, which test_training_speed covers),
    # and compiling the step would take most of this test's time.
    model.compile(keras.optimizers.Adam(1e-3), label_smoothing=0.1, jit_compile=False)
    inputs = _inputs()
    labels = np.array([[7, 8, 1], [9, 1, 0]], np.int32)
    features = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "labels": labels}
    model.fit(tf.data.Dataset.from_tensors(features), epochs=1, verbose=0)
    path = str(tmp_path / "trained.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert int(loaded.optimizer.iterations.numpy()) == 1
    assert loaded.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    saved_state = sorted(v.numpy().tobytes() for v in model.optimizer.variables)
    assert sorted(v.numpy().tobytes() for v in loaded.optimizer.variables) == saved_state
    assert os.path.getsize(path) > 0

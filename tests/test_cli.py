"""The `tf-bert-seqgen` command line on small models the tests build."""

import json
import os
import subprocess
import sys

import hub_modules
import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from tf_bert_seqgen import BertForSeqGenerationConfig, EncoderDecoder, EncoderDecoderConfig, cli
from tf_bert_seqgen.tokenizers import BertForSeqGenerationTokenizer, load_tokenizer

CORPUS = "The cat sat on the mat. The dog ran home, but it came back. If it rains, we stay in.\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Our format: config.json + model.safetensors + spiece.model."""
    root = tmp_path_factory.mktemp("cli")
    (root / "corpus.txt").write_text(CORPUS * 50)
    spm.SentencePieceTrainer.train(input=str(root / "corpus.txt"), model_prefix=str(root / "spiece"),
                                   vocab_size=60, hard_vocab_limit=False, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
                                   minloglevel=2)
    tokenizer = BertForSeqGenerationTokenizer(str(root / "spiece.model"), max_length=32)
    tf.keras.utils.set_random_seed(0)
    config = BertForSeqGenerationConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=24, max_position_embeddings=64)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=True))
    model.save_pretrained(str(root / "model"), tokenizer=tokenizer)
    return str(root / "model")


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code, capsys.readouterr()


def _expected(directory, texts, **options):
    model = EncoderDecoder.from_pretrained(directory)
    tokenizer = load_tokenizer(directory)
    inputs = tokenizer(texts)
    ids = model.generate(inputs["input_ids"], inputs["attention_mask"], **options).numpy()
    return tokenizer.decode(ids[:, 1:], skip_special_tokens=True)


def test_generate_from_checkpoint_arguments_file_and_stdin(checkpoint, tmp_path, capsys, monkeypatch):
    texts = ["The cat sat on the mat.", "If it rains, we stay in."]
    expected = _expected(checkpoint, texts, max_new_tokens=6, num_beams=2)
    cli.main(["generate", "--model", checkpoint, "--max-new-tokens", "6", "--num-beams", "2", *texts])
    assert capsys.readouterr().out.splitlines() == expected
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    cli.main(["generate", "--model", checkpoint, "--max-new-tokens", "6", "--num-beams", "2",
              "--input", str(tmp_path / "in.txt"), "--batch-size", "1"])
    assert capsys.readouterr().out.splitlines() == expected
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(texts) + "\n"))
    cli.main(["generate", "--model", checkpoint, "--max-new-tokens", "6", "--num-beams", "2"])
    assert capsys.readouterr().out.splitlines() == expected


def test_export_then_generate_and_info_on_the_savedmodel(checkpoint, tmp_path, capsys):
    base = tmp_path / "saved_models" / "tiny"
    cli.main(["export", checkpoint, "--out", str(base), "--version", "auto", "--max-new-tokens", "5"])
    assert capsys.readouterr().out.strip() == str(base / "1")
    texts = ["The dog ran home.", ""]
    cli.main(["generate", "--model", str(base / "1"), *texts])
    assert capsys.readouterr().out.splitlines() == _expected(checkpoint, texts, max_new_tokens=5)
    cli.main(["generate", "--model", str(base / "1"), "--max-new-tokens", "2", texts[0]])
    assert capsys.readouterr().out.splitlines() == _expected(checkpoint, texts[:1], max_new_tokens=2)
    cli.main(["info", str(base / "1")])
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "savedmodel" and "score" in info["signatures"]
    assert info["export"]["generation"]["max_length"] == 6
    cli.main(["info", checkpoint])
    assert json.loads(capsys.readouterr().out)["config"]["model_type"] == "encoder-decoder"


def _hub_module(directory, layout):
    spm_model = hub_modules.train_sentencepiece()
    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(spm_model)
    variables = hub_modules.random_variables(layout, processor.GetPieceSize(), seed=1)
    return hub_modules.build_module(str(directory), variables, spm_model=spm_model)


def test_convert_and_export_a_tf_hub_module(tmp_path, capsys):
    module_dir = _hub_module(tmp_path / "module", "coupled")
    cli.main(["convert", str(module_dir), "--out", str(tmp_path / "converted"), "--num-heads", "4"])
    assert capsys.readouterr().out.strip() == str(tmp_path / "converted")
    assert {"config.json", "model.safetensors", "spiece.model"} <= set(os.listdir(tmp_path / "converted"))
    model = EncoderDecoder.from_pretrained(str(tmp_path / "converted"))
    assert model.config.share
    cli.main(["export", str(module_dir), "--out", str(tmp_path / "served"), "--max-new-tokens", "4", "--num-heads", "4"])
    capsys.readouterr()
    out = subprocess.run([sys.executable, "-c", "import sys, tensorflow as tf, tensorflow_text;"
                          "m = tf.saved_model.load(sys.argv[1]);"
                          "print(m.signatures['serving_default'](text=tf.constant(['a b']))['generated_text'].shape)",
                          str(tmp_path / "served")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "(1,)" in out.stdout, out.stderr[-2000:]


@pytest.mark.parametrize("argv, message", [
    (["generate", "--model", "/nonexistent/dir", "x"], "neither a local directory nor a Hugging Face repo"),
    (["info", "/"], "neither a SavedModel"),
    (["export", "/nonexistent", "--out", "/tmp/x"], "nonexistent"),
])
def test_errors_are_one_line_and_exit_2(argv, message, capsys):
    code, captured = _run(argv, capsys)
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in captured.err


def test_console_script_is_installed():
    out = subprocess.run(["tf-bert-seqgen", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "generate" in out.stdout and "export" in out.stdout


def test_kind_of_paths(checkpoint, tmp_path):
    assert cli.kind_of(checkpoint) == "checkpoint"
    assert cli.kind_of("google/roberta2roberta_L-24_bbc") == "hub-name"
    assert cli.kind_of("https://tfhub.dev/google/bertseq2seq/roberta24_bbc/1") == "tfhub"
    np.testing.assert_equal(cli.kind_of(str(_hub_module(tmp_path / "m", "separate"))), "tfhub")

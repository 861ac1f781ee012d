"""The `tf-bert-seqgen` command line on small models the tests build."""

import json
import os
import re
import shutil
import subprocess
import sys

import hub_modules
import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from tf_bert_seqgen import BertForSeqGenerationConfig, EncoderDecoder, EncoderDecoderConfig, cli
from tf_bert_seqgen.export import EXPORT_TOKENIZER_DIR, load_model, read_export_info
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
    assert info["export"]["batch_timeout_micros"] == 1000  # concurrent calls batched by default
    cli.main(["info", checkpoint])
    assert json.loads(capsys.readouterr().out)["config"]["model_type"] == "encoder-decoder"

    # An export is written again in another storage and mode, with the decoding it recorded.
    for flags, problem in [(["--xla", "--row-buckets", "1,4"], "--row-buckets must end at 32"),
                           (["--xla", "--width-buckets", "16,x"], "expected integers separated by commas"),
                           (["--width-buckets", "16"], "for XLA exports (--xla)")]:
        code, captured = _run(["export", str(base / "1"), "--out", str(tmp_path / "refused"), *flags], capsys)
        assert code == 2 and problem in captured.err, captured.err
    assert not (tmp_path / "refused").exists()
    cli.main(["export", str(base / "1"), "--out", str(base), "--version", "auto", "--xla", "--weights-dtype", "int8",
              "--row-buckets", "1,4,32"])
    assert capsys.readouterr().out.strip() == str(base / "2")
    first, second = read_export_info(str(base / "1")), read_export_info(str(base / "2"))
    assert second["generation"] == first["generation"] and second["truecase"] == first["truecase"]
    assert (second["weights_dtype"], second["jit_compile"], second["row_buckets"]) == ("int8", True, [1, 4, 32])
    assert set(second["product_forms"]["decode"]) == {"1", "4"}  # measured; 8 rows and up: float32's form
    cli.main(["generate", "--model", str(base / "2"), *texts])
    int8_model, tokenizer = load_model(str(base / "2")), load_tokenizer(checkpoint)
    inputs = tokenizer(texts[:1])
    ids = int8_model.generate(inputs["input_ids"], inputs["attention_mask"], max_new_tokens=5).numpy()
    assert capsys.readouterr().out.splitlines() == [*tokenizer.decode(ids[:, 1:], skip_special_tokens=True), ""]
    shutil.copytree(base / "1", tmp_path / "old")
    shutil.rmtree(tmp_path / "old" / EXPORT_TOKENIZER_DIR)
    code, captured = _run(["export", str(tmp_path / "old"), "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "holds no tokenizer files" in captured.err


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
    cli.main(["export", str(module_dir), "--out", str(tmp_path / "served"), "--max-new-tokens", "4", "--num-heads", "4",
              "--no-request-batching"])
    capsys.readouterr()
    assert read_export_info(str(tmp_path / "served"))["batch_timeout_micros"] is None
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


# ---------------------------------------------------------------------------------------------- quiet, progress


# An absl / TensorFlow C++ log line: severity letter, date, time, thread id, file:line] (e.g. "I0000 00:00:...").
_NATIVE_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^ ]+:\d+\]")


def _native_log_lines(stderr):
    return [line for line in stderr.splitlines()
            if _NATIVE_LOG_LINE.match(line) or "absl::InitializeLog" in line or "oneDNN" in line
            or "cuda" in line.lower() or "I0000" in line]


def _user_env():
    """The environment of a user who has not set TensorFlow's log level (the test session sets one)."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.mark.large
def test_command_line_is_quiet_unless_verbose(checkpoint, tmp_path):
    plain = subprocess.run([sys.executable, "-c", "import tensorflow as tf; print(tf.constant(1) + 1)"],
                           env=_user_env(), capture_output=True, text=True, timeout=300)
    argv = ["generate", "--model", checkpoint, "--max-new-tokens", "3", "If it rains, we stay in."]
    runs = {"script": (["tf-bert-seqgen"], argv), "module": ([sys.executable, "-m", "tf_bert_seqgen.cli"], argv),
            "verbose": ([sys.executable, "-m", "tf_bert_seqgen.cli"], ["--verbose", *argv])}
    results = {name: subprocess.run(command + args, env=_user_env(), cwd=tmp_path, capture_output=True, text=True,
                                    timeout=300) for name, (command, args) in runs.items()}
    for name, out in results.items():
        assert out.returncode == 0 and len(out.stdout.splitlines()) == 1, (name, out.stderr[-2000:])
    for name in ("script", "module"):
        assert _native_log_lines(results[name].stderr) == [], results[name].stderr
    if not _native_log_lines(plain.stderr):
        pytest.skip("TensorFlow prints no C++ log lines on this machine: nothing for --verbose to show")
    assert _native_log_lines(results["verbose"].stderr), results["verbose"].stderr


FINETUNE = ["finetune", "--init", "random", "--train", "t.tsv", "--out", "run"]


@pytest.mark.parametrize("args, wants", [
    (["generate", "x"], False), (["--verbose", "generate", "x"], True), (["generate", "--verbose", "x"], True),
    (["--debug", "info", "p"], False), (["evaluate", "--data", "d", "--verbose"], True),
    ([*FINETUNE, "--verbose", "0"], False), (["--verbose", *FINETUNE, "--verbose", "0"], True),
])
def test_verbose_flag_is_read_before_tensorflow_and_by_argparse_alike(args, wants):
    from tf_bert_seqgen import _quiet

    assert _quiet.wants_logs(args) is wants
    namespace = cli.build_parser().parse_args(args)
    assert namespace.tensorflow_logs is wants
    if args[-2:] == ["--verbose", "0"]:
        assert namespace.verbose == 0  # finetune's own --verbose: Keras' fit verbosity


def _progress_bars(stderr):
    """The final state of each tqdm bar on stderr ("3/3"), as tqdm draws it with carriage returns."""
    return re.findall(r"(\d+)/(\d+) \[", stderr.replace("\r", "\n"))


def test_generate_input_shows_progress_and_writes_output_atomically(checkpoint, tmp_path, capsys, monkeypatch):
    texts = ["The cat sat on the mat.", "If it rains, we stay in.", "The dog ran home.", "It came back.", "We stay."]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    expected = _expected(checkpoint, texts, max_new_tokens=4)
    base = ["generate", "--model", checkpoint, "--max-new-tokens", "4", "--input", str(tmp_path / "in.txt")]
    cli.main([*base, "--batch-size", "2"])
    captured = capsys.readouterr()
    assert captured.out.splitlines() == expected
    assert ("3", "3") in _progress_bars(captured.err), captured.err  # 5 texts, batches of 2
    cli.main([*base, "--batch-size", "8"])
    captured = capsys.readouterr()
    assert captured.out.splitlines() == expected and _progress_bars(captured.err) == []  # one batch: no bar
    out = tmp_path / "out" / "generated.txt"
    cli.main([*base, "--batch-size", "2", "--output", str(out)])
    assert capsys.readouterr().out.strip() == str(out)
    assert out.read_text(encoding="utf-8").splitlines() == expected
    # A batch that fails leaves the previous file as it was, no temporary file, and one error line.
    from tf_bert_seqgen.text_generators import CheckpointTexts

    calls = []
    original = CheckpointTexts.generate

    def failing(self, texts):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the second batch failed")
        return original(self, texts)

    monkeypatch.setattr(CheckpointTexts, "generate", failing)
    code, captured = _run([*base, "--batch-size", "2", "--output", str(out)], capsys)
    assert code == 2 and captured.out == ""
    errors = [line for line in captured.err.replace("\r", "\n").splitlines() if "error" in line]
    assert errors == ["tf-bert-seqgen generate: error: the second batch failed"], captured.err
    assert out.read_text(encoding="utf-8").splitlines() == expected
    assert os.listdir(out.parent) == ["generated.txt"]


def test_evaluate_shows_progress_with_several_batches(checkpoint, tmp_path, capsys):
    pairs = [("The cat sat on the mat.", "The cat sat."), ("If it rains, we stay in.", "We stay in."),
             ("The dog ran home.", "The dog ran."), ("It came back.", "It came back.")]
    (tmp_path / "data.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    argv = ["evaluate", "--model", checkpoint, "--data", str(tmp_path / "data.tsv"), "--max-new-tokens", "3"]
    cli.main([*argv, "--batch-size", "3", "--predictions", str(tmp_path / "predictions.txt")])
    captured = capsys.readouterr()
    assert json.loads(captured.out)["examples"] == 4
    assert ("2", "2") in _progress_bars(captured.err), captured.err
    assert len((tmp_path / "predictions.txt").read_text().splitlines()) == 4
    cli.main([*argv, "--batch-size", "4"])
    assert _progress_bars(capsys.readouterr().err) == []

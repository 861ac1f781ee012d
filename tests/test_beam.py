"""Batch inference on Apache Beam (`tf_bert_seqgen.batch_inference`, `tf-bert-seqgen batch`) on small SavedModels.

Two pipelines in all (each costs worker start-up): the command line on DirectRunner with 2 worker
processes over the small export the export tests build, and GenerateText in one process over a tiny
SavedModel whose outputs show what each model call held and whose graph refuses one text.
"""

import collections
import glob
import json
import os
import sys

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to
from test_export import exported, tokenizer  # noqa: F401  the small export of the export tests

from tf_bert_seqgen import batch_inference as beam_inference
from tf_bert_seqgen import cli

LONG = "Sentence fusion joins two sentences. " * 30
TXT = [b"The cat sat on the mat.", b"\xff\xfe is not UTF-8", b"",
       b"If the file is missing, the loader raises an error. It stops.", LONG.encode()]
JSONL = ['{"id": "j1", "text": "The dog chased the cat."}', '{"id": "j2", "text": 5}', "not json", "",
         '{"text": "Results are cached."}', '{"id": "j3", "text": "\\ud800 lone surrogate"}']
GOOD = {"a.txt:1": TXT[0].decode(), "a.txt:3": "", "a.txt:4": TXT[3].decode(), "a.txt:5": LONG,
        "j1": "The dog chased the cat.", "b.jsonl:5": "Results are cached."}
# id -> what its error must name
BAD = {"a.txt:2": "ValueError: text is not valid UTF-8", "j2": "TypeError: text must be a string, got int",
       "b.jsonl:3": "JSONDecodeError", "j3": "ValueError: text is not valid UTF-8"}


def _jsonl(pattern):
    return [json.loads(line) for path in sorted(glob.glob(pattern)) for line in open(path, encoding="utf-8")]


@pytest.mark.large
def test_batch_command_on_two_worker_processes(exported, tmp_path, capsys):  # noqa: F811
    _, model_dir = exported
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_bytes(b"\n".join(TXT) + b"\n")
    (tmp_path / "in" / "b.jsonl").write_text("\n".join(JSONL) + "\n", encoding="utf-8")
    prefix = str(tmp_path / "out" / "fused")
    cli.main(["batch", "--model", model_dir, "--input", str(tmp_path / "in" / "*"), "--output", prefix,
              "--max-batch-size", "2", "--direct_num_workers", "2", "--direct_running_mode", "multi_processing"])
    captured = capsys.readouterr()

    generated, errors = _jsonl(f"{prefix}-*-of-*.jsonl"), _jsonl(f"{prefix}-errors-*.jsonl")
    ids = collections.Counter(r["id"] for r in generated + errors)
    assert ids == collections.Counter([*GOOD, *BAD]), "each id exactly once, good or bad"
    assert {r["id"]: r["text"] for r in generated} == GOOD
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    expected = serve(text=tf.constant(list(GOOD.values())))["generated_text"].numpy()
    assert {r["id"]: r["generated_text"] for r in generated} == {k: v.decode() for k, v in zip(GOOD, expected, strict=True)}
    assert all(r.keys() == {"id", "text", "generated_text"} for r in generated)
    for record in errors:
        assert record["error"].startswith(BAD[record["id"]]), record
        assert "text" not in record, "none of these texts is readable"
    # texts_in = done + failed, and every non-blank line is a text or an unreadable line.
    assert "10 records: 6 generated, 4 failed, of which 1 unreadable" in captured.err
    assert captured.out.split() == [f"{prefix}-SSSSS-of-NNNNN.jsonl", f"{prefix}-errors-SSSSS.jsonl"]


@pytest.fixture(scope="module")
def shouting_model(tmp_path_factory):
    """A SavedModel with one text signature, `shout`: each text upper-cased, then "|" and the length of the
    longest text of the call (so an output tells what its call held); a call with "boom" in it fails."""

    class Shout(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def shout(self, text):
            said_boom = tf.reduce_any(tf.strings.regex_full_match(text, ".*boom.*"))
            with tf.control_dependencies([tf.debugging.assert_equal(said_boom, False, message="a text says boom")]):
                longest = tf.strings.as_string(tf.reduce_max(tf.strings.length(text)))
                return {"shouted": tf.strings.join([tf.strings.upper(text), "|", longest])}

    module = Shout()
    path = str(tmp_path_factory.mktemp("shout") / "1")
    tf.saved_model.save(module, path, signatures={"shout": module.shout.get_concrete_function()})
    return path


def test_generate_text_sorts_by_length_shares_the_model_and_fails_only_the_bad_text(shouting_model):
    lengths = [5, 2, 8, 1, 7, 3, 6, 4]
    texts = [(k, "abcdefgh"[:n]) for k, n in enumerate(lengths)] + [(8, "boom! boom"), (9, b"ten chars!")]
    shout = tf.saved_model.load(shouting_model).signatures["shout"]
    by_length = sorted(texts[:8], key=lambda kv: len(kv[1]))
    expected = []
    for pair in zip(by_length[::2], by_length[1::2], strict=True):  # the batches of two that sorting makes
        shouted = shout(text=tf.constant([t for _, t in pair]))["shouted"].numpy()
        expected += [{"id": k, "text": t, "generated_text": s.decode()} for (k, t), s in zip(pair, shouted, strict=True)]
    assert [r["generated_text"].split("|")[1] for r in expected] == ["2", "2", "4", "4", "6", "6", "8", "8"]
    # "boom" fails its batch, whose other text then runs alone.
    alone = shout(text=tf.constant(["ten chars!"]))["shouted"].numpy()[0].decode()
    expected.append({"id": 9, "text": "ten chars!", "generated_text": alone})

    def one_error(errors):
        assert len(errors) == 1 and errors[0]["id"] == 8 and errors[0]["text"] == "boom! boom", errors
        assert errors[0]["error"].startswith("InvalidArgumentError: assertion failed: [a text says boom]"), errors

    with beam.Pipeline() as pipeline:  # one process and one bundle: the batches are the sorted pairs
        generated, errors = (pipeline | beam.Create(texts, reshuffle=False)
                             | beam_inference.GenerateText(shouting_model, "shout", max_batch_size=2,
                                                           large_model=True))
        assert_that(generated, equal_to(expected))
        assert_that(errors, one_error, label="Errors")
    assert beam_inference.text_counters(pipeline.result) == {"texts_in": 10, "texts_done": 9, "texts_failed": 1}


def test_text_signature_is_checked_before_the_pipeline(exported, tmp_path):  # noqa: F811
    _, model_dir = exported
    assert beam_inference.text_signature(model_dir) == ("text", "generated_text")
    with pytest.raises(ValueError, match=r"no signature 'nope'; it has encode, generate_ids, .*serving_default"):
        beam_inference.GenerateText(model_dir, "nope")
    with pytest.raises(ValueError, match=r"'score' .* not a text signature .* takes \['source_text', 'target_text'\]"):
        beam_inference.SavedModelTextHandler(model_dir, "score")
    with pytest.raises(ValueError, match="'encode' .* not a text signature"):  # a string in, floats out
        beam_inference.text_signature(model_dir, "encode")
    with pytest.raises(FileNotFoundError, match="is not a SavedModel"):
        beam_inference.text_signature(str(tmp_path))


def _cli_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    return err


def test_batch_command_errors_are_one_line_and_write_nothing(exported, tmp_path, capsys, monkeypatch):  # noqa: F811
    _, model_dir = exported
    (tmp_path / "in.txt").write_text("A text.\n")
    (tmp_path / "old-00000-of-00001.jsonl").write_text("{}\n")
    run = ["batch", "--model", model_dir, "--input", str(tmp_path / "in.txt"), "--output"]
    assert "already exist" in _cli_error([*run, str(tmp_path / "old")], capsys)
    assert f"no input files match {tmp_path}/missing*.txt" in _cli_error(
        ["batch", "--model", model_dir, "--input", str(tmp_path / "missing*.txt"), "--output", "x"], capsys)
    assert "unknown option(s) --direct_num_worker (neither" in _cli_error(
        [*run, str(tmp_path / "new"), "--direct_num_worker", "2", "--runner", "DirectRunner"], capsys)
    assert "is not a SavedModel" in _cli_error(["batch", "--model", str(tmp_path), "--input", "in", "--output", "x"],
                                               capsys)
    with pytest.raises(SystemExit) as exit_info:  # only `batch` passes flags on to Beam
        cli.main(["generate", "--runner", "DirectRunner", "A."])
    assert exit_info.value.code == 2 and "error: unrecognized arguments: --runner" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # as if the [beam] extra were not installed
    assert 'pip install "tf_bert_seqgen[beam]"' in _cli_error([*run, str(tmp_path / "new")], capsys)
    assert sorted(os.listdir(tmp_path)) == ["in.txt", "old-00000-of-00001.jsonl"]


def test_the_old_module_name_still_imports_with_a_warning():
    sys.modules.pop("tf_bert_seqgen.beam", None)
    with pytest.warns(DeprecationWarning, match="tf_bert_seqgen.batch_inference"):
        import tf_bert_seqgen.beam as old
    assert old.GenerateText is beam_inference.GenerateText and old.text_signature is beam_inference.text_signature

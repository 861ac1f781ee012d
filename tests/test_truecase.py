"""Cased, written-as-the-source text from an uncased model's output (`tf_bert_seqgen.truecase`), in the graph.

Every expected string is written by hand: what a person would write, given the source and the uncased,
WordPiece-spaced output.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_bert_seqgen import BertForSeqGenerationConfig, EncoderDecoder, EncoderDecoderConfig, truecase
from tf_bert_seqgen.export import export_saved_model
from tf_bert_seqgen.metrics import sari
from tf_bert_seqgen.tokenizers import TF_SERVING_SAFE_OPS, WordPieceTokenizer

# (source, uncased output as the model writes it, expected text)
CASES = {
    "names and acronyms": (
        "The logs are read by Alice. She uses UTC.",
        "the logs are read by alice , and she uses utc .",
        "The logs are read by Alice, and she uses UTC."),
    "a sentence-initial name with evidence elsewhere": (
        "Alice reads the logs. Then Alice sleeps.",
        "alice reads the logs , then alice sleeps .",
        "Alice reads the logs, then Alice sleeps."),
    "an acronym opening the source moves mid-sentence": (
        "UTC is assumed. The string has no timezone.",
        "if the string has no timezone , utc is assumed .",
        "If the string has no timezone, UTC is assumed."),
    "sentence-initial words move mid-sentence": (
        "Topdown is false. The triple for a directory is generated after its subdirectories.",
        "if topdown is false , the triple for a directory is generated after its subdirectories .",
        "If topdown is false, the triple for a directory is generated after its subdirectories."),
    "mid-sentence capitals stay": (
        "Closefd is False. The file descriptor will be kept open.",
        "if closefd is false , the file descriptor will be kept open .",
        "If closefd is False, the file descriptor will be kept open."),
    "I stays capital": (
        "I read the logs. They were empty.",
        "they were empty when i read the logs .",
        "They were empty when I read the logs."),
    "one sentence becomes two": (
        "The cat sat because it was warm.",
        "the cat sat . it was warm .",
        "The cat sat. It was warm."),
    "hyphens as written": (
        "He kept at one study with bull-dog tenacity. It lasted three years.",
        "he kept at one study with bull - dog tenacity , and it lasted three years .",
        "He kept at one study with bull-dog tenacity, and it lasted three years."),
    "apostrophes as written": (
        "Don't stop. It isn't over.",
        "don ' t stop , because it isn ' t over .",
        "Don't stop, because it isn't over."),
    "a new contraction": (
        "It is late. We do not stop.",
        "it is late , but we don ' t stop .",
        "It is late, but we don't stop."),
    "quotes copied": (
        'He said "stop now". They left.',
        'he said " stop now " , and they left .',
        'He said "stop now", and they left.'),
    "new quotes": (
        "The flag is named verbose. It is off.",
        'the flag " verbose " is off .',
        'The flag "verbose" is off.'),
    "brackets copied": (
        "The file is flushed (if it is open). Call close() first.",
        "call close ( ) first , and the file is flushed ( if it is open ) .",
        "Call close() first, and the file is flushed (if it is open)."),
    "new brackets": (
        "Retries are counted. There are three.",
        "retries ( three ) are counted .",
        "Retries (three) are counted."),
    "numbers copied": (
        "The limit is 3.5 GB. It is raised.",
        "the limit is 3 . 5 gb , but it is raised .",
        "The limit is 3.5 GB, but it is raised."),
    "a new decimal number": (
        "The value rose. It was 3 before.",
        "the value rose to 4 . 5 .",
        "The value rose to 4.5."),
    "an abbreviation does not end the sentence": (
        "Use a tool, e.g. grep. It is fast.",
        "use a fast tool , e . g . grep .",
        "Use a fast tool, e.g. grep."),
    "accents and capitals restored": (
        "We met at Café Müller. It opens at nine.",
        "we met at cafe muller , which opens at nine .",
        "We met at Café Müller, which opens at nine."),
    "output spacing already cleaned up": (
        "It rains. We stay in.",
        "if it rains, we stay in.",
        "If it rains, we stay in."),
    "a word not in the source": (
        "",
        "it rains .",
        "It rains."),
}


def _restore(sources, outputs):
    return [t.decode("utf-8") for t in truecase.restore(tf.constant(sources, tf.string), tf.constant(outputs, tf.string)).numpy()]


@pytest.mark.parametrize("name", list(CASES))
def test_hand_written_cases(name):
    source, output, expected = CASES[name]
    assert _restore([source], [output]) == [expected]


def test_a_batch_with_ragged_rows_empty_and_whitespace_outputs():
    names = list(CASES)
    sources = [CASES[n][0] for n in names] + ["It rains. We stay in.", "Some text.", "", "  "]
    outputs = [CASES[n][1] for n in names] + ["", " \t ", "", ""]
    expected = [CASES[n][2] for n in names] + ["", "", "", ""]
    assert _restore(sources, outputs) == expected
    # Rows do not see each other: reversed, the same texts.
    assert _restore(sources[::-1], outputs[::-1]) == expected[::-1]
    assert _restore([], []) == []


def test_in_a_graph_with_unknown_batch_size():
    restore = tf.function(truecase.restore, input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    out = restore(tf.constant(["UTC is assumed.", "Pid is 0. It changes."]),
                  tf.constant(["utc is assumed .", "if pid is 0 , it changes ."]))
    assert [t.decode() for t in out.numpy()] == ["UTC is assumed.", "If pid is 0, it changes."]


def test_pretokenize_keeps_the_source_as_written():
    tokens, space_before = truecase.pretokenize(tf.constant(["Don't  stop (now).", "", "Café, 3.5"]))
    assert tokens.to_list() == [[b"Don", b"'", b"t", b"stop", b"(", b"now", b")", b"."], [],
                                ["Café".encode(), b",", b"3", b".", b"5"]]
    assert space_before.to_list() == [[False, False, False, True, True, False, False, False], [],
                                      [False, False, True, False, False]]


def test_cased_sari_rewards_the_restored_text():
    source, output, expected = CASES["sentence-initial words move mid-sentence"]
    restored = _restore([source], [output])[0]
    # As written (case and spacing count): the restored text is the target, the raw output is not.
    assert sari([source], [restored], [expected], lowercase=False, tokenize="none") == pytest.approx(100.0)
    assert sari([source], [output], [expected], lowercase=False, tokenize="none") < 90
    # The default SARI lowercases and 13a-tokenizes: it cannot tell them apart.
    assert sari([source], [output], [expected]) == pytest.approx(sari([source], [restored], [expected]))


# --- the export -----------------------------------------------------------------------------------------

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "it", "uses", "utc", "rains", ".", "the", "logs"]

FRESH_PROCESS = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops
loaded = tf.saved_model.load(sys.argv[1])
texts = tf.constant(json.loads(sys.argv[2]))
out = {"serving_default": loaded.signatures["serving_default"](text=texts)["generated_text"],
       "call": loaded(texts),
       "generate_with_options": loaded.signatures["generate_with_options"](
           text=texts, max_new_tokens=tf.constant(3), length_penalty=tf.constant(1.0))["generated_text"]}
mods = sorted(m for m in sys.modules if m.split(".")[0] in ("tf_bert_seqgen", "transformers", "torch"))
print(json.dumps({"texts": {k: [t.decode() for t in v.numpy()] for k, v in out.items()}, "modules": mods}))
"""


def _utc_model(tokenizer):
    """A tiny model that writes "utc" at every step (its LM head's bias), whatever the source."""
    tf.keras.utils.set_random_seed(0)
    config = BertForSeqGenerationConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=24, max_position_embeddings=32,
                                        pad_token_id=0, eos_token_id=3, bos_token_id=2)
    model = EncoderDecoder.from_config(EncoderDecoderConfig(config, config, share=True))
    bias = np.full(len(VOCAB), -50.0, np.float32)
    bias[VOCAB.index("utc")] = 50.0
    model.decoder.lm_head.bias.assign(bias)
    return model


def _op_types(directory):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    functions = {f.signature.name for m in proto.meta_graphs for f in m.graph_def.library.function}
    ops = {node.op for m in proto.meta_graphs for node in m.graph_def.node}
    ops |= {node.op for m in proto.meta_graphs for f in m.graph_def.library.function for node in f.node_def}
    return ops - functions


def test_export_of_an_uncased_model_returns_cased_text(tmp_path):
    tokenizer = WordPieceTokenizer(VOCAB, lowercase=True, max_length=16)
    model = _utc_model(tokenizer)
    texts = ["It uses UTC.", "It rains.", "", "the logs"]
    export_saved_model(model, tokenizer, str(tmp_path / "cased"), max_new_tokens=3)
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "cased"), json.dumps(texts)],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["modules"] == [], "the loading process must not need our package or torch"
    # The source's UTC; else a sentence's first word capitalised, the rest as the model wrote them.
    expected = ["UTC UTC UTC", "Utc utc utc", "", "Utc utc utc"]
    assert result["texts"] == {"serving_default": expected, "call": expected, "generate_with_options": expected}
    with open(tmp_path / "cased" / "assets.extra" / "tf_bert_seqgen.json", encoding="utf-8") as f:
        assert json.load(f)["truecase"] is True
    core = set(dir(tf.raw_ops))
    assert sorted(op for op in _op_types(str(tmp_path / "cased")) if op not in core and op not in TF_SERVING_SAFE_OPS) == []

    # truecase=False keeps the tokenizer's own decoding.
    export_saved_model(model, tokenizer, str(tmp_path / "plain"), max_new_tokens=3, truecase=False)
    serve = tf.saved_model.load(str(tmp_path / "plain")).signatures["serving_default"]
    assert [t.decode() for t in serve(text=tf.constant(texts))["generated_text"].numpy()] == [
        "utc utc utc", "utc utc utc", "", "utc utc utc"]


def test_export_returns_the_source_as_written_where_an_added_token_is_unsure(tmp_path):
    """`min_added_token_probability`: "utc" is the one token a row may add; the model gives it p = e / (e + 1)
    = 0.73 at every step (its LM head is its bias alone), so under a 0.9 threshold a row that adds it returns
    its source exactly as written (spacing and case: no sentence case), whatever its length, and a row whose
    source has "UTC" (nothing added) keeps its output."""
    tokenizer = WordPieceTokenizer(VOCAB, lowercase=True, max_length=16)
    model = _utc_model(tokenizer)
    table = model.decoder.lm_head.embeddings.embeddings  # tied: zero word embeddings, logits = the bias
    table.assign(tf.zeros_like(table))
    bias = np.full(len(VOCAB), -50.0, np.float32)
    bias[VOCAB.index("utc")], bias[3] = 1.0, 0.0  # 3: eos
    model.decoder.lm_head.bias.assign(bias)
    texts = ["It uses UTC.", "It  rains.", "", "the logs"]
    options = dict(max_new_tokens=3, copy_from_source=True, extra_token_ids=[VOCAB.index("utc")])
    ids = tokenizer(texts[:2] + texts[3:])
    plain = model.generate(ids["input_ids"], ids["attention_mask"], **options).numpy()
    below = model.generate(ids["input_ids"], ids["attention_mask"], min_added_token_probability=0.7, **options)
    np.testing.assert_array_equal(below.numpy(), plain)  # 0.73 is not under 0.7: nothing changes
    export_saved_model(model, tokenizer, str(tmp_path / "unsure"), min_added_token_probability=0.9, **options)
    serve = tf.saved_model.load(str(tmp_path / "unsure")).signatures["serving_default"]
    assert [t.decode() for t in serve(text=tf.constant(texts))["generated_text"].numpy()] == [
        "UTC UTC UTC", "It  rains.", "", "the logs"]  # without the threshold: "Utc utc utc" for both


def test_needed_only_for_uncased_tokenizers():
    assert truecase.needed(WordPieceTokenizer(VOCAB, lowercase=True))
    assert not truecase.needed(WordPieceTokenizer(VOCAB, lowercase=False))

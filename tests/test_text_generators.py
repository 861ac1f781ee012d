"""The front end (texts in, texts out) over a checkpoint and a SavedModel, and the SavedModel reader."""

import pytest
from test_export import EXPORTED, TEXTS, _expected, exported, tokenizer  # noqa: F401  the export tests' export

from tf_bert_seqgen import saved_models
from tf_bert_seqgen.text_generators import (
    CheckpointTexts,
    SavedModelTexts,
    generate_all,
    generate_in_order,
    open_text_generator,
)

EXPORTED_OPTIONS = dict(EXPORTED)


def test_path_kinds(exported, tmp_path):  # noqa: F811
    _, export_dir = exported
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "config.json").write_text("{}")
    (tmp_path / "module").mkdir()
    (tmp_path / "module" / "tfhub_module.pb").write_bytes(b"")
    (tmp_path / "module" / "saved_model.pb").write_bytes(b"")  # a TF1 hub module is a SavedModel too
    assert saved_models.path_kind(export_dir) == "savedmodel"
    assert saved_models.path_kind(str(tmp_path / "checkpoint")) == "checkpoint"
    assert saved_models.path_kind(str(tmp_path / "module")) == "tfhub"
    assert saved_models.path_kind("https://tfhub.dev/google/bertseq2seq/roberta24_bbc/1") == "tfhub"
    assert saved_models.path_kind("google/roberta2roberta_L-24_bbc") == "hub-name"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a SavedModel, a TF Hub module nor a checkpoint"):
        saved_models.path_kind(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="is a file"):
        saved_models.path_kind(str(tmp_path / "checkpoint" / "config.json"))
    with pytest.raises(ValueError, match="not a SavedModel proto"):
        saved_models.signature_defs(str(tmp_path / "module"))  # an empty file is no proto


def test_signatures_are_read_without_loading(exported):  # noqa: F811
    _, export_dir = exported
    described = saved_models.describe_signatures(export_dir)
    assert described["serving_default"] == {"inputs": {"text": "string(None,)"},
                                            "outputs": {"generated_text": "string(None,)"}}
    assert {"score", "encode", "generate_ids", "generate_with_options"} <= described.keys()
    assert not any(name.startswith("__") for name in described)
    assert len(saved_models.sentencepiece_models(export_dir)) == 1  # the tokenizer inside the graph


def test_saved_model_texts_write_what_the_model_generates(exported, tokenizer):  # noqa: F811
    model, export_dir = exported
    texts = [TEXTS[0], TEXTS[1], TEXTS[2]]
    generator = open_text_generator(export_dir)
    assert isinstance(generator, SavedModelTexts) and generator.signature == "serving_default"
    assert generator.generate(texts) == _expected(model, tokenizer, texts, **EXPORTED_OPTIONS)
    shorter = SavedModelTexts(export_dir, max_new_tokens=3)  # through generate_with_options
    assert shorter.signature == "generate_with_options"
    assert shorter.generate(texts) == _expected(model, tokenizer, texts, **{**EXPORTED_OPTIONS, "max_new_tokens": 3})
    with pytest.raises(ValueError, match="num_beams is fixed when a SavedModel is exported"):
        SavedModelTexts(export_dir, num_beams=2)
    with pytest.raises(ValueError, match="'score' .* not a text signature"):
        SavedModelTexts(export_dir, "score")


def test_checkpoint_texts_decode_with_their_options(exported, tokenizer):  # noqa: F811
    model, _ = exported
    texts = [TEXTS[0], TEXTS[1]]
    generator = CheckpointTexts(model, tokenizer, max_new_tokens=4, num_beams=2)
    assert not generator.truecase, "a cased SentencePiece tokenizer: the text as decoded"
    assert generator.generate(texts) == _expected(model, tokenizer, texts, max_new_tokens=4, num_beams=2)


class Shouting:
    """A generator that records its batches."""

    def __init__(self):
        self.batches = []

    def generate(self, texts):
        self.batches.append(list(texts))
        return [t.upper() for t in texts]


def test_generate_all_batches_by_length_and_answers_in_order():
    texts = ["ccc", "a", "bbbbb", "dd", "", "eeee", "f"]
    shouting = Shouting()
    assert generate_all(shouting, texts, batch_size=3) == [t.upper() for t in texts]
    assert shouting.batches == [["", "a", "f"], ["dd", "ccc", "eeee"], ["bbbbb"]]
    shouting = Shouting()
    assert list(generate_in_order(shouting, texts, batch_size=4)) == [t.upper() for t in texts]
    assert shouting.batches == [texts[:4], texts[4:]]
    assert generate_all(Shouting(), [], batch_size=2) == []

"""The names `tf_bert_seqgen` exports at the top level are the objects of their home modules."""

import importlib

import pytest

import tf_bert_seqgen

HOME = {
    "BertForSeqGenerationConfig": "config",
    "ConfigError": "config",
    "EncoderDecoderConfig": "config",
    "GenerationConfig": "generation_config",
    "BertForSeqGenerationDecoder": "models",
    "BertForSeqGenerationEncoderModel": "models",
    "EncoderDecoder": "models",
    "BertForSeqGenerationTokenizer": "tokenizers",
    "WordPieceTokenizer": "tokenizers",
    "load_tokenizer": "tokenizers",
    "export_saved_model": "export",
}


def test_all_lists_exactly_the_public_names():
    assert sorted(tf_bert_seqgen.__all__) == sorted(HOME)


@pytest.mark.parametrize("name", sorted(HOME))
def test_top_level_name_is_the_home_module_object(name):
    namespace = {}
    exec(f"from tf_bert_seqgen import {name}", namespace)  # the import statement users write
    home = importlib.import_module(f"tf_bert_seqgen.{HOME[name]}")
    assert namespace[name] is getattr(home, name)

"""Flags made from a config dataclass (`cli.flags`): the types, defaults and help the dataclass writes."""

import argparse
import dataclasses

import pytest

from tf_bert_seqgen.cli.flags import add_field_flags, field_help, field_values
from tf_bert_seqgen.generation import GenerationConfig
from tf_bert_seqgen.training import TrainingConfig


@dataclasses.dataclass
class Settings:
    """Settings.

    Attributes:
        rate: float. How fast, per step: a long description
            on two lines.
        limit: int or None. At most this many.
        fast: bool. Whether to hurry.
    """

    rate: float = 0.5
    limit: int | None = None
    fast: bool = True


def _parser(**kwargs):
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_field_flags(parser, Settings, ["rate", "limit", "fast"], **kwargs)
    return parser


def test_flags_take_the_fields_types_defaults_and_docstring_help():
    assert field_help(Settings) == {"rate": "How fast, per step: a long description on two lines.",
                                    "limit": "At most this many.", "fast": "Whether to hurry."}
    parser = _parser()
    assert vars(parser.parse_args([])) == {"rate": 0.5, "limit": None, "fast": True}
    assert vars(parser.parse_args(["--rate", "2", "--limit", "7", "--no-fast"])) == {
        "rate": 2.0, "limit": 7, "fast": False}
    with pytest.raises(argparse.ArgumentError, match="invalid int value"):
        parser.parse_args(["--limit", "seven"])
    assert "How fast, per step" in parser.format_help() and "(default: 0.5)" in parser.format_help()


def test_flags_not_given_stay_none_without_defaults_and_values_are_checked_against_the_fields():
    args = _parser(defaults=False, rate={"flags": ["--speed"]}).parse_args(["--speed", "3"])
    assert field_values(args, Settings, ["rate", "limit", "fast"], given_only=True) == {"rate": 3.0}
    with pytest.raises(ValueError, match=r"Settings has no fields \['speed'\]"):
        field_values(args, Settings, ["speed"])


def test_every_training_and_decoding_flag_field_is_documented():
    from tf_bert_seqgen.cli.inference import DECODING_FLAGS
    from tf_bert_seqgen.cli.train import TRAINING_FLAGS

    for cls, names in ((TrainingConfig, TRAINING_FLAGS), (GenerationConfig, DECODING_FLAGS)):
        helps = field_help(cls)
        assert all(helps.get(name) for name in names), (cls.__name__, set(names) - set(helps))
    assert set(field_help(GenerationConfig)) == {f.name for f in dataclasses.fields(GenerationConfig)}

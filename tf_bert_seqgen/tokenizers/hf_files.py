"""Hugging Face tokenizer files: tokenizer_config.json, special_tokens_map.json, vocab.txt; reading
and writing them as transformers does."""

from __future__ import annotations

import json
import os

DEFAULT_MAX_LENGTH = 512

# HF writes `model_max_length` = int(1e30) when a tokenizer has no limit; anything this large means "unset".
_UNSET_MAX_LENGTH = 10**9

TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
SPIECE_MODEL_FILE = "spiece.model"
VOCAB_FILE = "vocab.txt"

# Our own options live under one key of tokenizer_config.json so that transformers, which passes
# unknown keys to the tokenizer's constructor, reads the file unchanged.
_CONFIG_KEY = "tf_bert_seqgen"


class TokenizerFileError(ValueError):
    """A tokenizer file that cannot be read; the message names the file."""


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TokenizerFileError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(values, dict):
        raise TokenizerFileError(f"{path} does not hold a JSON object")
    return values


def _token_string(value):
    """A special token as HF stores it: a string or an AddedToken dict with `content`."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def _read_hf_tokenizer_config(directory: str) -> dict:
    """Merged special_tokens_map.json and tokenizer_config.json (the latter wins), when present."""
    values = {}
    for name in (SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_FILE):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            values.update(_read_json(path))
    return values


def tokenizer_kind(directory: str) -> str | None:
    """"sentencepiece" (`spiece.model`) or "wordpiece" (`vocab.txt`) for an HF-layout directory; with both,
    the saved tokenizer class decides (SentencePiece unless a BertTokenizer); None with neither."""
    has_spiece = os.path.isfile(os.path.join(directory, SPIECE_MODEL_FILE))
    has_vocab = os.path.isfile(os.path.join(directory, VOCAB_FILE))
    if has_spiece and has_vocab:
        has_spiece = not _read_hf_tokenizer_config(directory).get("tokenizer_class", "").startswith("BertTokenizer")
    if has_spiece:
        return "sentencepiece"
    return "wordpiece" if has_vocab else None


def _max_length_from_config(config: dict):
    value = config.get("model_max_length")
    if isinstance(value, int) and 0 < value < _UNSET_MAX_LENGTH:
        return value
    return DEFAULT_MAX_LENGTH


def _read_vocab_file(path: str) -> list:
    """One token per line, as transformers' load_vocab (universal newlines, only "\\n" stripped)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise TokenizerFileError(f"{path} is not a UTF-8 text vocabulary: {e}") from e
    if "\x00" in text:
        raise TokenizerFileError(f"{path} is not a text vocabulary (it holds NUL bytes)")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _kwargs_from_config(config: dict, token_names) -> dict:
    kwargs = {}
    for name in token_names:
        value = _token_string(config.get(name))
        if value is not None:
            kwargs[name] = value
    kwargs["max_length"] = _max_length_from_config(config)
    ours = config.get(_CONFIG_KEY, {})
    if not isinstance(ours, dict):
        raise TokenizerFileError(f"{TOKENIZER_CONFIG_FILE}: {_CONFIG_KEY!r} must be an object")
    for name in ("add_bos", "add_eos", "preprocess", "max_length"):
        if name in ours:
            kwargs[name] = ours[name]
    return kwargs


def _write_configs(directory: str, config: dict, tokens: dict) -> tuple:
    config_path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
    map_path = os.path.join(directory, SPECIAL_TOKENS_MAP_FILE)
    with open(map_path, "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in tokens.items() if v is not None}, f, indent=2, ensure_ascii=False)
    return config_path, map_path

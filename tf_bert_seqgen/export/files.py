"""Where an export keeps what it records beside the graph, and TF Serving's version folders."""

from __future__ import annotations

import json
import os
import re

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
EXPORT_INFO_FILE = os.path.join("assets.extra", "tf_bert_seqgen.json")
# The tokenizer's own files (`save_pretrained`): to re-export, evaluate or fine-tune from an export.
EXPORT_TOKENIZER_DIR = os.path.join("assets.extra", "tokenizer")


def write_export_info(export_dir: str, info: dict):
    path = os.path.join(export_dir, EXPORT_INFO_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)


def read_export_info(path: str) -> dict:
    """What `export_saved_model` recorded about a SavedModel (its model config, decoding options, storage)."""
    info_path = os.path.join(path, EXPORT_INFO_FILE)
    if not os.path.isfile(info_path):
        raise FileNotFoundError(f"{path} was not exported by tf_bert_seqgen ({EXPORT_INFO_FILE} missing)")
    with open(info_path, encoding="utf-8") as f:
        return json.load(f)


def _versions(base_dir: str) -> list[int]:
    if not os.path.isdir(base_dir):
        return []
    return [int(v) for v in os.listdir(base_dir) if re.fullmatch(r"\d+", v)]


def next_version_dir(base_dir: str) -> str:
    """saved_models/<name>/<N+1>: TF Serving loads the highest numeric version."""
    return os.path.join(base_dir, str(max(_versions(base_dir), default=0) + 1))


def latest_version_dir(base_dir: str) -> str | None:
    """The highest numeric version under `base_dir`, as TF Serving would serve it; None if there is none."""
    versions = _versions(base_dir)
    return os.path.join(base_dir, str(max(versions))) if versions else None

"""Finding and reading checkpoint files: a local directory or an HF hub repo id, and its tensors.

Shared by the HF loader (`hf.py`) and the BERT warm start (`bert.py`); it imports neither.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tf_bert_seqgen.checkpoints.weight_map import CheckpointError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_PATTERNS = ["*.json", "spiece.model", "vocab.txt"]
_HUB_PATTERNS = [*TOKENIZER_PATTERNS, "*.safetensors"]


def resolve(path_or_name: str, tokenizer_only: bool = False) -> str:
    """A local directory as is; otherwise an HF hub repo id through `huggingface_hub.snapshot_download`
    (its cache and HF_HUB_OFFLINE honoured).

    Downloads the configs, tokenizer files and safetensors weights; PyTorch's `*.bin` only for a repo
    without safetensors (many repos hold both, each the model's full size); with `tokenizer_only`, no
    weights at all.

    Args:
        path_or_name: str. A local directory or an HF repo id (`"google/roberta2roberta_L-24_bbc"`).
        tokenizer_only: bool. Download only the configs and tokenizer files.

    Returns:
        A local directory: `path_or_name` itself, or the snapshot in the Hugging Face cache.

    Raises:
        CheckpointError: a file rather than a directory, or a repo that can be neither fetched nor found
            in the cache (offline: `HF_HUB_OFFLINE=1`).
    """
    if os.path.isdir(path_or_name):
        return path_or_name
    if os.path.exists(path_or_name):
        raise CheckpointError(f"{path_or_name} is a file; expected a checkpoint directory")
    if tokenizer_only:
        return _snapshot(path_or_name, TOKENIZER_PATTERNS)
    directory = _snapshot(path_or_name, _HUB_PATTERNS)
    if not any(name.endswith(".safetensors") for name in os.listdir(directory)):
        directory = _snapshot(path_or_name, [*_HUB_PATTERNS, "*.bin"])
    return directory


def _snapshot(name: str, patterns) -> str:
    import huggingface_hub

    try:
        return huggingface_hub.snapshot_download(name, allow_patterns=patterns)
    except Exception as e:  # the hub client raises many types; all mean "not available here"
        raise CheckpointError(f"{name!r} is neither a local directory nor a Hugging Face repo that "
                              f"could be fetched or found in the cache: {type(e).__name__}: {e}") from e


def read_tensors(directory: str) -> dict[str, np.ndarray]:
    """All tensors of an HF checkpoint directory, by their HF names.

    Args:
        directory: str. Holding `model.safetensors` (or its sharded index), or PyTorch's
            `pytorch_model.bin` (which needs torch).

    Returns:
        {name: numpy array}.

    Raises:
        CheckpointError: the directory holds no weight file, or one that cannot be read.
    """
    files = [f for f in WEIGHT_FILES if os.path.isfile(os.path.join(directory, f))]
    if not files:
        raise CheckpointError(f"{directory} holds no weights (looked for {', '.join(WEIGHT_FILES)})")
    chosen = os.path.join(directory, files[0])
    if chosen.endswith(".index.json"):
        with open(chosen, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        tensors = {}
        for shard in shards:
            tensors.update(_read_file(os.path.join(directory, shard)))
        return tensors
    return _read_file(chosen)


def _read_file(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise CheckpointError(f"weight file {path} is missing")
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        try:
            return load_file(path)
        except Exception as e:
            raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from e
    try:
        import torch
    except ImportError as e:
        raise CheckpointError(f"{path} is a PyTorch pickle and torch is not installed; install torch or "
                              "convert the checkpoint to model.safetensors") from e
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()}

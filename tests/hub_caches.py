"""Offline caches in the layouts huggingface_hub and tensorflow_hub read, for loading by repo id or handle
without a network: a repo's files as a snapshot of `HF_HUB_CACHE`, a module as `TFHUB_CACHE_DIR/<sha1>`."""

import hashlib
import os
import shutil
from pathlib import Path

COMMIT = "a" * 40


def hf_snapshot(cache_root, repo_id: str, source_dir) -> Path:
    """Copies `source_dir`'s files into the cache as the `main` revision of model repo `repo_id`."""
    repo_dir = Path(cache_root) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / COMMIT
    os.makedirs(snapshot)
    for name in os.listdir(source_dir):
        shutil.copy2(os.path.join(source_dir, name), snapshot / name)
    os.makedirs(repo_dir / "refs", exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    return snapshot


def tfhub_cached(cache_root, handle: str, module_dir) -> Path:
    """Copies a module directory to where tensorflow_hub caches `handle` (the sha1 hex of the handle), with
    the descriptor file it writes beside a download."""
    cached = Path(cache_root) / hashlib.sha1(handle.encode("utf8")).hexdigest()
    shutil.copytree(module_dir, cached)
    (Path(cache_root) / f"{cached.name}.descriptor.txt").write_text(f"Module: {handle}\nDownload Time: 2020-01-01\n")
    return cached

"""Data sets shipped with the package.

`fusion/`: a DiscoFuse-style sentence-fusion set built from the standard library's docstrings by
`python tools/build_fusion.py`, a build script in the repository that is not installed (see fusion/README.md).
"""

from __future__ import annotations

import os

FUSION_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fusion")
FUSION_SPLITS = ("train", "dev", "test")


def load_fusion_split(split: str) -> list[tuple[str, str]]:
    """(source, target) pairs of one split of the shipped fusion data: "train", "dev" or "test"."""
    if split not in FUSION_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {FUSION_SPLITS}")
    with open(os.path.join(FUSION_DIR, f"{split}.tsv"), encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t")) for line in f]

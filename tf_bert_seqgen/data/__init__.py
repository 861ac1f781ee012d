"""Data sets shipped with the package.

`fusion/`: a DiscoFuse-style sentence-fusion set built from offline English prose (Python docstrings,
Debian's manuals, dictionaries and fortune files) by `python tools/build_fusion.py`, a build script in the
repository that is not installed (see fusion/README.md).
"""

from __future__ import annotations

import os
from typing import NamedTuple

FUSION_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fusion")
FUSION_SPLITS = ("train", "dev", "test")  # one distribution, split 80/10/10
FUSION_HELDOUT = "heldout"  # a whole kind of prose that the three splits above do not contain


class FusionOrigin(NamedTuple):
    """Where a fusion target came from: its kind of prose, the package and version, the entry in it."""

    kind: str
    package: str
    version: str
    entry: str


def _read_tsv(path: str) -> list[tuple[str, ...]]:
    with open(path, encoding="utf-8") as f:
        return [tuple(line.rstrip("\n").split("\t")) for line in f]


def load_fusion_split(split: str, with_origin: bool = False) -> list[tuple]:
    """One split of the shipped fusion data.

    Args:
        split: str. `"train"` (5,509 pairs), `"dev"` (684), `"test"` (679), split by a hash of the target,
            or `"heldout"` (1,038 quotations, a kind of prose the other three lack).
        with_origin: bool. Add where each target came from.

    Returns:
        list of (source, target) pairs, or (source, target, `FusionOrigin`) triples with `with_origin`.

    Raises:
        ValueError: an unknown split, or an origin file that does not match its split.
    """
    if split not in FUSION_SPLITS + (FUSION_HELDOUT,):
        raise ValueError(f"unknown split {split!r}; expected one of {FUSION_SPLITS + (FUSION_HELDOUT,)}")
    pairs = _read_tsv(os.path.join(FUSION_DIR, f"{split}.tsv"))
    if not with_origin:
        return pairs
    origins = [FusionOrigin(*row) for row in _read_tsv(os.path.join(FUSION_DIR, f"{split}.origin.tsv"))]
    if len(origins) != len(pairs):
        raise ValueError(f"{split}.origin.tsv has {len(origins)} lines for {len(pairs)} pairs")
    return [(source, target, origin) for (source, target), origin in zip(pairs, origins, strict=True)]

"""What the CPU at hand is: its model name and the instruction-set flags that decide kernel speed.

Speed figures in this project only hold for the CPU they were measured on (its kind changes between
machines), so every benchmark prints `describe()` beside its figures, and bfloat16 is offered only where
the CPU computes it natively (`has_native_bfloat16`).
"""

from __future__ import annotations

import functools
import os
import platform
import warnings

# The flags that change which kernels TensorFlow, oneDNN and XLA pick (Linux /proc/cpuinfo names).
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
_NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of this machine; the platform's name and no flags where there is no
    /proc/cpuinfo (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return parse_cpuinfo(f.read())
    except OSError:
        return platform.processor() or platform.machine(), frozenset()


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor in a /proc/cpuinfo text. Virtual machines often
    report a bare "AMD EPYC", so the name carries the family and model numbers, which tell one
    generation from the next."""
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if not key.strip():  # the blank line that ends the first processor
            break
        fields.setdefault(key.strip(), value.strip())
    model = fields.get("model name", platform.machine())
    if "cpu family" in fields and "model" in fields:
        model += f" (family {fields['cpu family']}, model {fields['model']})"
    return model, frozenset(fields.get("flags", fields.get("Features", "")).split())


def model_name() -> str:
    return _cpuinfo()[0]


def flags() -> frozenset[str]:
    return _cpuinfo()[1]


def has_native_bfloat16() -> bool:
    """True where the CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere bfloat16 is
    emulated and runs slower than float32."""
    return any(flag in flags() for flag in _NATIVE_BFLOAT16_FLAGS)


def describe() -> str:
    """One line for benchmark output, e.g. 'CPU: AMD EPYC (family 25, model 17), 2 cores; flags: avx2 fma ... (no amx_bf16 ...)'."""
    have = [flag for flag in RELEVANT_FLAGS if flag in flags()]
    missing = [flag for flag in RELEVANT_FLAGS if flag not in flags()]
    text = f"CPU: {model_name()}, {os.cpu_count()} cores; flags: {' '.join(have) or 'none known'}"
    return text + (f" (no {' '.join(missing)})" if missing else "")


def warn_if_bfloat16_is_emulated(dtype) -> bool:
    """Warns (and returns True) when `dtype` is bfloat16 on a CPU without native bfloat16: there
    TensorFlow converts every product's weights to float32 first, and a decode step runs several times
    slower than in float32 (3.4x in graph mode on an AVX2-only EPYC) instead of faster."""
    if str(getattr(dtype, "name", dtype)) != "bfloat16" or has_native_bfloat16():
        return False
    warnings.warn(f"bfloat16 is emulated on this CPU ({model_name()}: no avx512_bf16 or amx_bf16), so it is "
                  "slower than float32 here; use float32 unless you only need the smaller weights",
                  RuntimeWarning, stacklevel=3)
    return True

"""What the CPU can do for INT8 graphs: its SIMD levels, and whether it has VNNI.

onnxruntime multiplies u8 activations by s8 weights. With VNNI (AVX-512 VNNI, AVX-VNNI or AMX)
the products are summed in 32 bits; without it, AVX2's `vpmaddubsw` sums pairs in 16 bits, which
saturate when full-range (8-bit) weights meet large activations. Weights on 7 bits never
saturate, so a 7-bit INT8 package runs the same everywhere and an 8-bit one only where VNNI is
(docs/BENCHMARKS.md, "INT8 on a CPU with VNNI").
"""

from __future__ import annotations

from pathlib import Path

VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
_WANTED = ("avx2", "avx512f", *VNNI_FLAGS)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The first CPU's flags as Linux reports them; None where they cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def cpu_simd(flags: set[str] | None = None) -> str:
    """The SIMD levels INT8 speed and saturation depend on ("unknown" where not readable)."""
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return "unknown"
    return " ".join(f for f in _WANTED if f in flags) or "no AVX2"


def has_vnni(flags: set[str] | None = None) -> bool:
    """True when u8 x s8 products are summed without saturation (False where unknown)."""
    flags = cpu_flags() if flags is None else flags
    return flags is not None and any(f in flags for f in VNNI_FLAGS)

"""What this CPU can do for int8 inference; read where the model runs (each executor).

ONNX Runtime multiplies uint8 activations by int8 weights. On an x86 CPU without VNNI
it does so with ``vpmaddubsw``, whose 16-bit sums of pairs saturate when weights use
all 8 bits; int8 models for such CPUs keep their weights to 7 bits (``reduce_range``)
and lose precision. VNNI (``avx512_vnni``, ``avx_vnni``), AMX and ARM's widening
multiplies sum in 32 bits: full 8-bit weights are exact there, and more accurate
(docs/benchmarks.md, "int8").
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

__all__ = ["cpu_flags", "exact_int8_dot"]

#: x86 flags (as /proc/cpuinfo spells them) of int8 dot products that sum in 32 bits.
EXACT_INT8_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "avx512_4vnniw"})

_X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags, lower case, as Linux's ``/proc/cpuinfo`` names them.

    Elsewhere, NumPy's own CPU detection (names lowered, ``AVX512VNNI`` as
    ``avx512_vnni``); empty when neither is available.

    Examples
    --------
    >>> isinstance(cpu_flags(), frozenset)
    True
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[-1].lower().split())
    try:  # macOS, Windows: NumPy detects features with cpuid itself
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:  # NumPy 1.x
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return frozenset()
    renamed = {"avx512vnni": "avx512_vnni", "avx5124vnniw": "avx512_4vnniw"}
    return frozenset(renamed.get(k.lower(), k.lower()) for k, on in __cpu_features__.items() if on)


def exact_int8_dot(machine: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """Whether ONNX Runtime's int8 kernels sum uint8 x int8 products without saturating.

    True on x86 CPUs with VNNI or AMX, and on other architectures (ARM NEON widens
    products before summing); False on x86 CPUs with only AVX2/AVX-512BW, where full
    8-bit weights saturate ``vpmaddubsw``.

    Parameters
    ----------
    machine : str, optional
        ``platform.machine()`` to judge; default this machine's.
    flags : frozenset of str, optional
        CPU flags to judge; default :func:`cpu_flags`.

    Examples
    --------
    >>> exact_int8_dot("x86_64", frozenset({"avx2", "avx512_vnni"}))
    True
    >>> exact_int8_dot("x86_64", frozenset({"avx2", "avx512bw"}))
    False
    >>> exact_int8_dot("aarch64", frozenset())
    True
    """
    machine = (machine if machine is not None else platform.machine()).lower()
    if machine not in _X86:
        return True
    return bool((cpu_flags() if flags is None else flags) & EXACT_INT8_FLAGS)

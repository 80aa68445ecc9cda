"""Arrow arrays from numpy arrays and Python strings without ``pa.array``.

``pa.array`` imports pandas on its first call, whatever it converts (pyarrow checks
every input for pandas objects): ~0.3-0.5 s and 50 MB in each fresh Python worker,
which pyspark's Arrow UDFs do not otherwise need. The image engine builds its output
from buffers instead.

>>> import numpy as np
>>> numeric(np.arange(3, dtype=np.int32)).to_pylist()
[0, 1, 2]
>>> booleans(np.array([True, False, True])).to_pylist()
[True, False, True]
>>> strings(["a", None, "ü"]).to_pylist()
['a', None, 'ü']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["booleans", "numeric", "strings"]


def numeric(values: np.ndarray) -> Any:
    """A numeric numpy array, flattened, as an Arrow array (no nulls, no copy when it is
    contiguous)."""
    import pyarrow as pa

    arr = np.ascontiguousarray(values).reshape(-1)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"not a numeric numpy dtype: {arr.dtype}")
    return pa.Array.from_buffers(
        pa.from_numpy_dtype(arr.dtype), len(arr), [None, pa.py_buffer(arr)]
    )


def booleans(values: np.ndarray) -> Any:
    """A 1-D boolean numpy array as an Arrow BooleanArray (no nulls)."""
    import pyarrow as pa

    arr = np.asarray(values, dtype=bool).reshape(-1)
    bits = np.packbits(arr, bitorder="little")  # Arrow bitmaps are LSB first
    return pa.Array.from_buffers(pa.bool_(), len(arr), [None, pa.py_buffer(bits)])


def strings(values: Sequence[str | None]) -> Any:
    """Python strings (or None for null) as an Arrow StringArray."""
    import pyarrow as pa

    n = len(values)
    if all(v is None for v in values):
        return pa.nulls(n, pa.string())
    encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        pa.string(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    )

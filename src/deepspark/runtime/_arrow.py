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
>>> import pyarrow as pa
>>> t = pa.struct([("v", pa.list_(pa.float32())), ("s", pa.string())])
>>> from_python([{"v": np.ones(2), "s": "x"}, None, {"v": [], "s": None}], t).to_pylist()
[{'v': [1.0, 1.0], 's': 'x'}, None, {'v': [], 's': None}]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["booleans", "from_python", "numeric", "offsets32", "strings", "to_numpy"]


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


def to_numpy(arr: Any) -> np.ndarray:
    """A numeric Arrow array as a read-only numpy view of its buffer when it has no
    nulls (``Array.to_numpy`` imports pandas); with nulls, ``Array.to_numpy``'s copy.

    >>> import pyarrow as pa
    >>> to_numpy(numeric(np.arange(5, dtype=np.float32))[1:3]).tolist()
    [1.0, 2.0]
    """
    if arr.null_count:
        return arr.to_numpy(zero_copy_only=False)
    dtype = np.dtype(arr.type.to_pandas_dtype())
    data = arr.buffers()[1]
    if data is None:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=arr.offset + len(arr))[arr.offset :]


def offsets32(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """Arrow's 32-bit offsets for values of these lengths (0, l0, l0 + l1, ...).

    Spark's Arrow columns use 32-bit offsets: more than 2**31 - 1 bytes or items in
    one batch raises (numpy's int32 sum would wrap around silently).

    >>> offsets32([2, 0, 3]).tolist()
    [0, 2, 2, 5]
    """
    total = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=total[1:])
    if total[-1] > np.iinfo(np.int32).max:
        raise ValueError(
            f"{int(total[-1])} bytes or values in one Arrow batch, over Spark's 2 GB "
            "limit: lower spark.sql.execution.arrow.maxRecordsPerBatch (rows per batch)"
        )
    return total.astype(np.int32)


def booleans(values: np.ndarray) -> Any:
    """A 1-D boolean numpy array as an Arrow BooleanArray (no nulls)."""
    import pyarrow as pa

    arr = np.asarray(values, dtype=bool).reshape(-1)
    bits = np.packbits(arr, bitorder="little")  # Arrow bitmaps are LSB first
    return pa.Array.from_buffers(pa.bool_(), len(arr), [None, pa.py_buffer(bits)])


def strings(values: Sequence[str | None], binary: bool = False) -> Any:
    """Python strings (or None for null) as an Arrow StringArray; with ``binary``,
    bytes as a BinaryArray."""
    import pyarrow as pa

    n = len(values)
    kind = pa.binary() if binary else pa.string()
    if all(v is None for v in values):
        return pa.nulls(n, kind)
    if binary:
        encoded = [b"" if v is None else bytes(v) for v in values]
    else:
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    offsets = offsets32([len(b) for b in encoded])
    bitmap, _ = _validity(values)
    return pa.Array.from_buffers(
        kind, n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    )


def _validity(values: Sequence[Any]) -> tuple[Any, np.ndarray]:
    """(Arrow validity bitmap or None when nothing is null, the boolean mask)."""
    import pyarrow as pa

    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return bitmap, valid


def from_python(values: Sequence[Any], arrow_type: Any) -> Any:
    """Python values (None, numbers, strings, bytes, numpy arrays, lists, dicts) as an
    Arrow array of ``arrow_type``: lists, structs, numbers, strings and binary, nested.

    What the executor loops build their result columns with; ``pa.array`` would do the
    same but imports pandas on its first call (see the module docstring). Lists of
    numbers are flattened with numpy, not element by element.
    """
    import pyarrow as pa
    import pyarrow.types as pt

    n = len(values)
    if pt.is_string(arrow_type) or pt.is_binary(arrow_type):
        return strings(values, binary=pt.is_binary(arrow_type))
    bitmap, valid = _validity(values)
    if pt.is_list(arrow_type):
        item = arrow_type.value_type
        lengths = np.fromiter((len(v) if v is not None else 0 for v in values), np.int64, n)
        offsets = offsets32(lengths)
        present = [v for v in values if v is not None]
        if pt.is_floating(item) or pt.is_integer(item):
            dtype = item.to_pandas_dtype()
            parts = [np.asarray(v, dtype=dtype).reshape(-1) for v in present]
            child = numeric(np.concatenate(parts) if parts else np.zeros(0, dtype))
        else:
            child = from_python([x for v in present for x in v], item)
        return pa.Array.from_buffers(
            arrow_type, n, [bitmap, pa.py_buffer(offsets)], children=[child]
        )
    if pt.is_struct(arrow_type):
        children = [
            from_python([v[f.name] if v is not None else None for v in values], f.type)
            for f in arrow_type
        ]
        return pa.Array.from_buffers(arrow_type, n, [bitmap], children=children)
    if pt.is_floating(arrow_type) or pt.is_integer(arrow_type):
        dtype = arrow_type.to_pandas_dtype()
        data = np.array([v if ok else 0 for v, ok in zip(values, valid)], dtype=dtype)
        return pa.Array.from_buffers(arrow_type, n, [bitmap, pa.py_buffer(data)])
    if pt.is_boolean(arrow_type):
        bits = booleans(np.array([bool(v) for v in values], dtype=bool))
        return pa.Array.from_buffers(arrow_type, n, [bitmap, bits.buffers()[1]])
    raise TypeError(f"from_python does not build {arrow_type}")

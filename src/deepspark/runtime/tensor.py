"""Executor-side loop for models on numeric and array columns (several inputs/outputs).

Each Arrow batch arrives as one struct array (one field per input column). Rows become
tensors of the model's input shapes, run in batches; every output is flattened per row
into ``array<float>``. A row that cannot be used (null, wrong size) gets an error; if a
batch fails in the model, its rows are retried one by one so only the bad rows fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepspark.models.loader import ModelRef
from deepspark.runtime import _arrow as arrow
from deepspark.runtime._pipeline import model_failure
from deepspark.runtime.threads import task_gpu, task_threads

__all__ = ["TensorModelTask"]


def _holds_none(value: Any) -> bool:
    """Whether a (nested) list from an Arrow row holds None anywhere."""
    if value is None:
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_none(v) for v in value)
    return False


def _error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500]


@dataclass(frozen=True)
class TensorModelTask:
    """Everything an executor needs to run a model over numeric/array columns. Picklable.

    Attributes
    ----------
    model : ModelRef
    input_names : tuple of str
        Model inputs fed by the struct's fields, in order.
    input_shapes : tuple of (tuple of int or None)
        Per-row shape of each input (no batch dimension); None keeps the value's own
        shape (a scalar, or the nesting of an array).
    input_dtypes : tuple of str
    output_names : tuple of str
        Model outputs returned, in order (fields of the result struct).
    batch_size : int
    threads : int
    """

    model: ModelRef
    input_names: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...] | None, ...]
    input_dtypes: tuple[str, ...]
    output_names: tuple[str, ...]
    batch_size: int = 64
    threads: int = 0

    def result_arrow_type(self) -> Any:
        import pyarrow as pa

        return pa.struct([pa.field(n, pa.list_(pa.float32())) for n in self.output_names])

    def result_spark_type(self) -> Any:
        from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

        return StructType(
            [StructField(n, ArrayType(FloatType(), True), True) for n in self.output_names]
        )

    def _row_tensors(self, row: tuple[Any, ...]) -> list[np.ndarray]:
        tensors = []
        for value, name, shape, dtype in zip(
            row, self.input_names, self.input_shapes, self.input_dtypes
        ):
            if value is None:
                raise ValueError(f"input '{name}' is null")
            arr = np.asarray(value, dtype=dtype)
            # NumPy turns a null element into NaN in a float tensor: a wrong input that
            # would reach the model silently. NaN in the data itself is left alone.
            if arr.dtype.kind == "f" and np.isnan(arr).any() and _holds_none(value):
                raise ValueError(f"input '{name}' holds null elements")
            if shape is not None:
                if arr.size != int(np.prod(shape)):
                    raise ValueError(
                        f"input '{name}' has {arr.size} values but the model takes "
                        f"{list(shape)} ({int(np.prod(shape))} values)"
                    )
                arr = arr.reshape(shape)
            tensors.append(arr)
        return tensors

    def _predict(self, model: Any, rows: list[list[np.ndarray]]) -> list[dict[str, Any]]:
        feed = {name: np.stack([r[i] for r in rows]) for i, name in enumerate(self.input_names)}
        out = model.predict_rows(feed)
        flat = {
            n: np.asarray(out[n]).reshape(len(rows), -1).astype(np.float32)
            for n in self.output_names
        }
        return [{n: list(flat[n][j]) for n in self.output_names} for j in range(len(rows))]

    def run(self, arrays: Iterator[Any]) -> Iterator[Any]:
        """Iterator of struct arrays (one field per input) -> struct<result, error> arrays."""
        import pyarrow as pa

        model = self.model.load(threads=task_threads(self.threads), gpu=task_gpu())
        result_type = self.result_arrow_type()
        for arr in arrays:
            columns = [arr.field(i).to_pylist() for i in range(arr.type.num_fields)]
            n = len(arr)
            results: list[Any] = [None] * n
            errors: list[str | None] = [None] * n
            ok: list[int] = []
            tensors: list[list[np.ndarray]] = []
            for i, row in enumerate(zip(*columns)):
                if arr[i].is_valid is False:
                    errors[i] = "input is null"
                    continue
                try:
                    tensors.append(self._row_tensors(row))
                    ok.append(i)
                except Exception as exc:  # noqa: BLE001 - becomes this row's error
                    errors[i] = _error(exc)
            for start in range(0, len(ok), self.batch_size):
                idx = ok[start : start + self.batch_size]
                rows = tensors[start : start + self.batch_size]
                try:
                    for i, res in zip(idx, self._predict(model, rows)):
                        results[i] = res
                except Exception:  # noqa: BLE001 - isolate the failing rows
                    for i, one in zip(idx, rows):
                        try:
                            results[i] = self._predict(model, [one])[0]
                        except Exception as exc:  # noqa: BLE001
                            errors[i] = model_failure(exc)
            yield pa.StructArray.from_arrays(
                [arrow.from_python(results, result_type), arrow.strings(errors)],
                names=["result", "error"],
            )

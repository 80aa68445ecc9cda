"""The executor-side inference loop, shared by the image transformers.

One pass per Arrow batch: decode + preprocess (in a background thread, overlapping
with inference) -> fixed-size batches -> ``Model.predict`` -> postprocess -> Arrow.
One output row per input row; a row that fails gets a null result and an error.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from deepspark.models.labels import ClassLabel
from deepspark.models.loader import ModelRef
from deepspark.runtime.preprocess import ImagePreprocess, load_pixels, to_batch
from deepspark.runtime.threads import task_gpu, task_threads

__all__ = ["ImageModelTask", "OUTPUT_MODES", "softmax", "topk_structs", "arrow_input_kind"]

#: how a model output becomes a column value
OUTPUT_MODES = ("topk", "array", "vector", "probabilities")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 for accuracy, returned as float32."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z.astype(np.float32)


def topk_structs(
    probs: np.ndarray, k: int, labels: tuple[ClassLabel, ...] | None
) -> list[list[dict[str, Any]]]:
    """The k most probable classes of each row, sorted, as ``{class, description, probability}``."""
    k = min(k, probs.shape[1])
    idx = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    rows = []
    for r in range(probs.shape[0]):
        order = idx[r][np.argsort(-probs[r, idx[r]], kind="stable")]
        items = []
        for c in order:
            cid, desc = labels[c] if labels is not None and c < len(labels) else (str(c), str(c))
            items.append({"class": cid, "description": desc, "probability": float(probs[r, c])})
        rows.append(items)
    return rows


def _is_distribution(out: np.ndarray) -> bool:
    """Rows already non-negative and summing to 1 (a model ending in softmax)."""
    return bool(np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))


def arrow_input_kind(arrow_type: Any) -> str:
    """"struct", "binary" or "path" from the Arrow type of an image column (SQL UDFs)."""
    import pyarrow as pa

    if pa.types.is_struct(arrow_type):
        return "struct"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "binary"
    return "path"


def _error_text(exc: BaseException) -> str:
    from deepspark.io.images import decode_error_reason

    return decode_error_reason(exc)


@dataclass(frozen=True)
class ImageModelTask:
    """Everything an executor needs to run an image model over a column. Picklable.

    Attributes
    ----------
    model : ModelRef
    preprocess : ImagePreprocess
    input_kind : {"struct", "binary", "path", "auto"}
        What the column holds: Spark image structs, encoded file bytes, or file paths;
        "auto" decides from the first Arrow batch (SQL UDFs, where the column type is
        not known when the function is registered).
    input_name, output_name : str
        Model input fed with the image tensor; output read for the result.
    mode : {"topk", "array", "vector", "probabilities"}
    top_k : int
    labels : tuple, optional
    apply_softmax : bool
        Turn the output into probabilities (for "topk"/"probabilities") when the model
        gives logits.
    batch_size : int
    threads : int
        0 = the task's CPU share.
    """

    model: ModelRef
    preprocess: ImagePreprocess
    input_kind: str
    input_name: str
    output_name: str
    mode: str = "topk"
    top_k: int = 5
    labels: tuple[ClassLabel, ...] | None = None
    apply_softmax: bool = True
    batch_size: int = 64
    threads: int = 0

    # ---------------------------------------------------------------- Arrow types
    def result_arrow_type(self) -> Any:
        import pyarrow as pa

        if self.mode == "topk":
            return pa.list_(
                pa.struct(
                    [
                        pa.field("class", pa.string()),
                        pa.field("description", pa.string()),
                        pa.field("probability", pa.float32()),
                    ]
                )
            )
        return pa.list_(pa.float32())

    def result_spark_type(self) -> Any:
        from pyspark.sql.types import (
            ArrayType,
            FloatType,
            StringType,
            StructField,
            StructType,
        )

        if self.mode == "topk":
            return ArrayType(
                StructType(
                    [
                        StructField("class", StringType(), True),
                        StructField("description", StringType(), True),
                        StructField("probability", FloatType(), True),
                    ]
                ),
                True,
            )
        return ArrayType(FloatType(), True)

    # ---------------------------------------------------------------- execution
    def _prepare(self, values: list[Any]) -> tuple[list[int], np.ndarray | None, list[str | None]]:
        """Decode and preprocess one chunk; returns (ok row indices, tensor, errors)."""
        ok: list[int] = []
        pixels: list[np.ndarray] = []
        errors: list[str | None] = [None] * len(values)
        for i, value in enumerate(values):
            if value is None:
                errors[i] = "input is null"
                continue
            try:
                pixels.append(load_pixels(value, self.input_kind, self.preprocess))
                ok.append(i)
            except Exception as exc:  # noqa: BLE001 - becomes this row's error
                errors[i] = _error_text(exc)
        tensor = to_batch(pixels, self.preprocess) if pixels else None
        return ok, tensor, errors

    def _postprocess(self, out: np.ndarray) -> list[Any]:
        out = out.reshape(out.shape[0], -1)
        if self.mode == "topk":
            probs = softmax(out) if self.apply_softmax else out.astype(np.float32)
            return topk_structs(probs, self.top_k, self.labels)
        if self.mode == "probabilities" and self.apply_softmax and not _is_distribution(out):
            out = softmax(out)
        return list(out.astype(np.float32))

    def _chunk_stream(self, arrays: Iterator[Any]) -> Iterator[tuple[int, int, list[Any], bool]]:
        """(rows in this Arrow batch, chunk start, chunk values, last chunk of the batch)."""
        for arr in arrays:
            values = arr.to_pylist()
            if not values:
                yield 0, 0, [], True
                continue
            for start in range(0, len(values), self.batch_size):
                chunk = values[start : start + self.batch_size]
                yield len(values), start, chunk, start + self.batch_size >= len(values)

    def _infer(self, model: Any, tensor: np.ndarray) -> list[Any]:
        out = model.predict({self.input_name: tensor})[self.output_name]
        return self._postprocess(np.asarray(out))

    def run(self, arrays: Iterator[Any]) -> Iterator[Any]:
        """Iterator of input Arrow arrays -> iterator of struct<result, error> arrays."""
        import pyarrow as pa

        if self.input_kind == "auto":
            first = next(arrays, None)
            if first is None:
                return
            kind = arrow_input_kind(first.type)
            yield from replace(self, input_kind=kind).run(itertools.chain([first], arrays))
            return
        gpu = task_gpu()
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if gpu is not None else None
        )
        model = self.model.load(threads=task_threads(self.threads), providers=providers)
        result_type = self.result_arrow_type()
        stream = self._chunk_stream(arrays)
        window: deque[tuple[int, int, bool, Future[Any]]] = deque()

        # Decoding runs up to two chunks ahead in a thread: Pillow and ONNX Runtime both
        # release the GIL, so decoding overlaps inference while memory stays bounded.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="deepspark-decode") as pool:

            def fill() -> None:
                while len(window) < 2:
                    item = next(stream, None)
                    if item is None:
                        return
                    n, start, chunk, last = item
                    window.append((n, start, last, pool.submit(self._prepare, chunk)))

            fill()
            results: list[Any] = []
            errors: list[str | None] = []
            while window:
                n, start, last, future = window.popleft()
                fill()
                if start == 0:
                    results, errors = [None] * n, [None] * n
                ok, tensor, errs = future.result()
                errors[start : start + len(errs)] = errs
                if tensor is not None:
                    try:
                        rows = self._infer(model, tensor)
                        for j, row in zip(ok, rows):
                            results[start + j] = row
                    except Exception as exc:  # noqa: BLE001 - a model failure fails these rows
                        msg = f"model failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
                        for j in ok:
                            errors[start + j] = msg[:500]
                if last:
                    yield pa.StructArray.from_arrays(
                        [pa.array(results, type=result_type), pa.array(errors, type=pa.string())],
                        names=["result", "error"],
                    )

"""The executor-side inference loop, shared by the image transformers.

One pass per Arrow batch: decode + preprocess (in a background thread, overlapping
with inference) -> fixed-size batches -> ``Model.predict`` -> postprocess -> Arrow.
One output row per input row; a row that fails gets a null result and an error.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from deepspark.models.labels import ClassLabel
from deepspark.models.loader import ModelRef
from deepspark.runtime import _arrow as arrow
from deepspark.runtime import _progress
from deepspark.runtime._pipeline import model_failure, prefetch
from deepspark.runtime.preprocess import ImagePreprocess, load_pixels, to_batch
from deepspark.runtime.threads import task_gpu, task_threads

__all__ = [
    "OUTPUT_MODES",
    "ImageModelTask",
    "arrow_input_kind",
    "softmax",
    "topk_indices",
    "topk_structs",
]

#: how a model output becomes a column value
OUTPUT_MODES = ("topk", "array", "vector", "probabilities")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 for accuracy, returned as float32."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z.astype(np.float32)


def topk_indices(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` largest columns sorted by descending value: ``(indices, values)``.

    Vectorised over the batch (argpartition, then one sort of k columns per row).

    >>> idx, val = topk_indices(np.array([[0.1, 0.7, 0.2]], np.float32), 2)
    >>> idx.tolist(), val.round(1).tolist()
    ([[1, 2]], [[0.7, 0.2]])
    """
    k = min(k, probs.shape[1])
    idx = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(probs, idx, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)


def topk_structs(
    probs: np.ndarray, k: int, labels: tuple[ClassLabel, ...] | None
) -> list[list[dict[str, Any]]]:
    """The k most probable classes of each row, sorted, as ``{class, description, probability}``."""
    idx, vals = topk_indices(probs, k)
    rows = []
    for r in range(probs.shape[0]):
        items = []
        for c, p in zip(idx[r].tolist(), vals[r].tolist()):
            cid, desc = labels[c] if labels is not None and c < len(labels) else (str(c), str(c))
            items.append({"class": cid, "description": desc, "probability": float(p)})
        rows.append(items)
    return rows


def _is_distribution(out: np.ndarray) -> bool:
    """Rows already non-negative and summing to 1 (a model ending in softmax)."""
    return bool(np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0, atol=1e-3))


def arrow_input_kind(arrow_type: Any) -> str:
    """The input kind, "struct", "binary" or "path", from the Arrow type of an image column (SQL UDFs)."""
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
    recheck_model : ModelRef, optional
        The float model of an int8 ``model``: rows whose two best scores (as the
        result reports them) differ by less than ``recheck_margin`` are run again
        with it, and its output is theirs ("topk" mode only).
    recheck_margin : float
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
    recheck_model: ModelRef | None = None
    recheck_margin: float = 0.0

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
        """Model output -> one Python value per row (the row-by-row form of the result)."""
        return self._result_array(len(out), np.arange(len(out)), np.asarray(out)).to_pylist()

    def _scores(self, out: np.ndarray) -> np.ndarray:
        """Raw model output (rows, ...) -> 2-D float32 scores as the result reports them."""
        out = out.reshape(out.shape[0], -1)
        if self.mode == "topk" and self.apply_softmax:
            return softmax(out)
        if self.mode == "probabilities" and self.apply_softmax and not _is_distribution(out):
            return softmax(out)
        return out.astype(np.float32, copy=False)

    def _result_array(self, n: int, rows: np.ndarray, out: np.ndarray) -> Any:
        """The result column of one Arrow batch, built with vectorised Arrow calls.

        ``rows`` are the batch positions that have a model output (``out`` row i belongs
        to ``rows[i]``); every other row gets a null result.
        """
        import pyarrow as pa

        result_type = self.result_arrow_type()
        if len(rows) == 0:
            return pa.nulls(n, type=result_type)
        scores = self._scores(out)
        if self.mode == "topk":
            idx, vals = topk_indices(scores, self.top_k)
            flat = arrow.numeric(idx.astype(np.int64, copy=False))
            ids, descs = self._label_arrays(scores.shape[1])
            values = pa.StructArray.from_arrays(
                [
                    ids.take(flat),
                    descs.take(flat),
                    arrow.numeric(vals.astype(np.float32, copy=False)),
                ],
                fields=list(result_type.value_type),
            )
            width = idx.shape[1]
        else:
            values = arrow.numeric(scores.astype(np.float32, copy=False))
            width = scores.shape[1]
        lengths = np.zeros(n, dtype=np.int32)
        lengths[rows] = width
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        mask = np.ones(n, dtype=bool)
        mask[rows] = False
        return pa.ListArray.from_arrays(
            arrow.numeric(offsets), values, type=result_type, mask=arrow.booleans(mask)
        )

    def _label_arrays(self, classes: int) -> tuple[Any, Any]:
        """Arrow string arrays of class ids and descriptions (cached per task object)."""
        cache = self.__dict__.get("_labels_cache")
        if cache is None or cache[0] != classes:
            ids, descs = [], []
            for c in range(classes):
                if self.labels is not None and c < len(self.labels):
                    cid, desc = self.labels[c]
                else:
                    cid, desc = str(c), str(c)
                ids.append(cid)
                descs.append(desc)
            cache = (classes, arrow.strings(ids), arrow.strings(descs))
            object.__setattr__(self, "_labels_cache", cache)  # frozen dataclass: a memo only
        return cache[1], cache[2]

    def _chunk_stream(self, arrays: Iterator[Any]) -> Iterator[tuple[int, int, list[Any], bool]]:
        """(rows in this Arrow batch, chunk start, chunk values, last chunk of the batch)."""
        for arr in arrays:
            n = len(arr)
            if n == 0:
                yield 0, 0, [], True
                continue
            for start in range(0, n, self.batch_size):
                # Only this chunk becomes Python objects, one chunk at a time.
                chunk = arr.slice(start, self.batch_size).to_pylist()
                yield n, start, chunk, start + self.batch_size >= n

    def _infer(self, model: Any, tensor: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_rows({self.input_name: tensor})[self.output_name])

    def _uncertain(self, out: np.ndarray) -> np.ndarray:
        """Rows whose best and second-best scores differ by less than the margin."""
        scores = self._scores(out)
        if scores.shape[1] < 2:
            return np.zeros(0, dtype=np.int64)
        best = np.partition(scores, -2, axis=1)[:, -2:]
        return np.flatnonzero(best[:, 1] - best[:, 0] < self.recheck_margin)

    def _infer_checked(self, model: Any, recheck: Any, tensor: np.ndarray) -> np.ndarray:
        """``model``'s output, with the uncertain rows' replaced by ``recheck``'s."""
        out = self._infer(model, tensor)
        if recheck is None:
            return out
        rows = self._uncertain(out)
        if len(rows):
            out = np.array(out)  # a writable copy: the runtime may hand out its buffer
            out[rows] = self._infer(recheck, tensor[rows])
        return out

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
        threads = task_threads(self.threads)
        stream = self._chunk_stream(arrays)
        # Decoding runs ahead of inference in threads: Pillow, libjpeg-turbo and ONNX
        # Runtime release the GIL, so decoding overlaps inference. On CPU one decoder per
        # two inference threads keeps both busy without oversubscribing the task's cores;
        # on a GPU the task's cores are all free to decode. The window (decoders + 1
        # chunks) keeps memory bounded.
        if gpu is not None:
            decoders = max(1, threads)
        else:
            decoders = 1 if threads < 4 else threads // 2
        # (n, start, last) travel with each chunk; the chunk's values only to a decoder.
        chunks = (((n, start, last), chunk) for n, start, chunk, last in stream)
        with prefetch(
            chunks, self._prepare, workers=decoders, ahead=decoders + 1, name="deepspark-decode"
        ) as decoded:
            # The first chunks decode while the model loads (first task of a worker).
            model = self.model.load(threads=threads, gpu=gpu)
            recheck = None
            if self.recheck_model is not None and self.recheck_margin > 0 and self.mode == "topk":
                recheck = self.recheck_model.load(threads=threads, gpu=gpu)
            errors: list[str | None] = []
            rows: list[np.ndarray] = []
            outs: list[np.ndarray] = []
            for (n, start, last), (ok, tensor, errs) in decoded:
                if start == 0:
                    errors, rows, outs = [None] * n, [], []
                errors[start : start + len(errs)] = errs
                if tensor is not None:
                    try:
                        outs.append(self._infer_checked(model, recheck, tensor))
                        rows.append(start + np.asarray(ok, dtype=np.int64))
                    except Exception as exc:  # noqa: BLE001 - a model failure fails these rows
                        msg = model_failure(exc)
                        for j in ok:
                            errors[start + j] = msg
                _progress.add(len(errs))  # live progress between output batches
                if last:
                    result = self._result_array(
                        n,
                        np.concatenate(rows) if rows else np.zeros(0, np.int64),
                        np.concatenate(outs) if outs else np.zeros((0, 1), np.float32),
                    )
                    yield pa.StructArray.from_arrays(
                        [result, arrow.strings(errors)], names=["result", "error"]
                    )

""":class:`ModelTransformer`: any model on numeric or array columns, several inputs/outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.sql import Column, DataFrame

from deepspark.errors import InvalidParameterError, SignatureError
from deepspark.ml._apply import apply_task, check_output_columns, column, missing_columns_error
from deepspark.ml.params import (
    HasBatchSize,
    HasErrorCol,
    HasInputColumns,
    HasModelFile,
    HasModelLoading,
    HasNumThreads,
    HasOutputColumns,
    model_param_value,
)
from deepspark.ml.persistence import ModelFilePersistence

if TYPE_CHECKING:  # pragma: no cover
    from deepspark.models.base import Signature

__all__ = ["ModelTransformer", "tensor_task"]


def tensor_task(
    spark: Any,
    spec: Any,
    sig: Signature,
    in_cols: list[str],
    out_cols: list[str],
    *,
    shapes: list[list[int]] | None = None,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    batch_size: int = 64,
    threads: int = 0,
) -> Any:
    """Validate columns against a checked model's signature; the executor task."""
    from deepspark.models.torch import output_names as default_output_names
    from deepspark.runtime.tensor import TensorModelTask

    names = input_names or sig.input_names
    if len(names) != len(in_cols) or set(names) - set(sig.input_names):
        raise SignatureError(
            f"inputCols {in_cols} must feed the model's inputs {sig.input_names} one "
            f"to one (set inputNames to choose the order); model signature: {sig}"
        )
    by_name = {s.name: s for s in sig.inputs}
    row_shapes: list[tuple[int, ...] | None] = []
    for i, name in enumerate(names):
        known = by_name[name].shape
        if shapes is not None:
            row_shapes.append(tuple(shapes[i]))
        elif known and all(d >= 0 for d in known[1:]):
            row_shapes.append(tuple(known[1:]))
        else:
            row_shapes.append(None)
    dtypes = [by_name[n].dtype if by_name[n].dtype not in ("", "str") else "float32" for n in names]
    available = sig.output_names or list(default_output_names(len(out_cols)))
    outs = output_names or available[: len(out_cols)]
    if len(outs) != len(out_cols) or set(outs) - set(available):
        raise SignatureError(
            f"outputCols {out_cols} must receive model outputs, which are {available} "
            f"(set outputNames to choose); model signature: {sig}"
        )
    return TensorModelTask(
        model=spec.ship(spark.sparkContext),
        input_names=tuple(names),
        input_shapes=tuple(row_shapes),
        input_dtypes=tuple(dtypes),
        output_names=tuple(outs),
        batch_size=batch_size,
        threads=threads,
    )


def _to_shapes(value: Any) -> list[list[int]]:
    """``[[4], [2, 3]]`` -> per-input shapes (no batch dimension)."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, (list, tuple)) for s in value):
        raise TypeError(f"inputShapes must be a list of shapes like [[4], [2, 3]], got {value!r}")
    return [[int(d) for d in s] for s in value]


def _array_input(df: DataFrame, name: str) -> Column:
    """Column ``name`` as the model's task reads it: ML vectors (VectorAssembler's
    output) as float arrays, anything else as it is."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT

    if isinstance(df.schema[name].dataType, VectorUDT):
        return vector_to_array(column(name), "float32")
    return column(name)


class ModelTransformer(
    Transformer,
    HasInputColumns,
    HasOutputColumns,
    HasErrorCol,
    HasBatchSize,
    HasNumThreads,
    HasModelFile,
    HasModelLoading,
    ModelFilePersistence,
):
    """Apply a model of any framework to numeric or array columns.

    Each of ``inputCols`` feeds one model input (in the model's input order, or the
    order of ``inputNames``); a scalar or (nested) array value of a row is reshaped to
    that input's per-row shape (``inputShapes``, else the model's signature). Each of
    ``outputCols`` receives one model output (``outputNames``, default the model's
    outputs in order) flattened to ``array<float>``. Rows that cannot be used get null
    outputs and a reason in ``errorCol``.

    Parameters
    ----------
    inputCols : list of str
    outputCols : list of str
    model : str or live model
        As for :func:`deepspark.load_model`; a live ``nn.Module`` needs ``inputShapes``.
    inputShapes : list of list of int, optional
        Per-row shape of each input, without the batch dimension.
    inputNames, outputNames : list of str, optional
        Model inputs/outputs matched to the columns (default: signature order).
    framework, engine, trustPickle, batchSize, numThreads, errorCol
        As for :class:`ImageModelTransformer`.

    Examples
    --------
    >>> t = deepspark.ModelTransformer(inputCols=["a", "b"], outputCols=["sum", "prod"],
    ...                                model="two_heads.onnx")          # doctest: +SKIP
    >>> t.transform(df).select("sum", "prod").show()                   # doctest: +SKIP
    """

    inputShapes: Param[list[list[int]]] = Param(
        Params._dummy(),
        "inputShapes",
        "per-row shape of each input without the batch dimension, e.g. [[4], [2, 3]]",
        typeConverter=_to_shapes,
    )
    inputNames: Param[list[str]] = Param(
        Params._dummy(),
        "inputNames",
        "model inputs fed by inputCols, in the same order (default: the model's order)",
        typeConverter=TypeConverters.toListString,
    )
    outputNames: Param[list[str]] = Param(
        Params._dummy(),
        "outputNames",
        "model outputs written to outputCols, in the same order (default: the model's order)",
        typeConverter=TypeConverters.toListString,
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCols: list[str] | None = None,
        outputCols: list[str] | None = None,
        model: Any = None,
        framework: str = "",
        inputShapes: list[list[int]] | None = None,
        inputNames: list[str] | None = None,
        outputNames: list[str] | None = None,
        engine: str = "auto",
        trustPickle: bool = False,
        batchSize: int = 64,
        errorCol: str = "error",
        numThreads: int = 0,
    ) -> None:
        super().__init__()
        self._set(**self._coerce(self._input_kwargs))

    @keyword_only
    def setParams(self, **kwargs: Any) -> ModelTransformer:
        """Set any of the constructor's Params."""
        return self._set(**self._coerce(self._input_kwargs))

    @staticmethod
    def _coerce(kwargs: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in kwargs.items() if v is not None}
        if "model" in out and not isinstance(out["model"], str):
            shapes = out.get("inputShapes")
            out["model"] = model_param_value(
                out["model"],
                engine=out.get("engine", "auto"),
                input_shapes=[(-1, *s) for s in shapes] if shapes else None,
            )
        return out

    def _get(self, param: Param[Any]) -> Any:
        return self.getOrDefault(param) if self.isDefined(param) else None

    def _build_task(self, spark: Any) -> Any:
        from deepspark.models.api import checked_model

        if not self.getModel():
            raise InvalidParameterError("ModelTransformer needs model=<path of a model>")
        in_cols = self._get(self.inputCols) or []
        out_cols = self._get(self.outputCols) or []
        if not in_cols or not out_cols:
            raise InvalidParameterError("ModelTransformer needs inputCols and outputCols")
        shapes = self._get(self.inputShapes)
        if shapes is not None and len(shapes) != len(in_cols):
            raise InvalidParameterError(
                f"inputShapes has {len(shapes)} shapes for {len(in_cols)} inputCols"
            )
        spec, signature = checked_model(
            self.getModel(),
            framework=self.getFramework() or None,
            engine=self.getEngine(),
            trust_pickle=self.getTrustPickle(),
            input_shapes=[(-1, *s) for s in shapes] if shapes else None,
        )
        task = tensor_task(
            spark,
            spec,
            signature,
            in_cols,
            out_cols,
            shapes=shapes,
            input_names=self._get(self.inputNames),
            output_names=self._get(self.outputNames),
            batch_size=self.getBatchSize(),
            threads=self.getNumThreads(),
        )
        return task, in_cols, out_cols

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        task, in_cols, out_cols = self._build_task(dataset.sparkSession)
        missing = [c for c in in_cols if c not in dataset.columns]
        if missing:
            raise missing_columns_error(dataset, missing)
        check_output_columns(
            dataset,
            {f"outputCols[{i}]": c for i, c in enumerate(out_cols)},
            self.getErrorCol(),
        )
        tmp = "__deepspark_outputs"
        packed = F.struct(*[_array_input(dataset, c).alias(f"i{i}") for i, c in enumerate(in_cols)])
        out = apply_task(
            dataset,
            packed,
            tmp,
            self.getErrorCol(),
            task.run,
            task.result_spark_type(),
            checked=True,
        )
        for col, name in zip(out_cols, task.output_names):
            out = out.withColumn(col, F.col(tmp).getField(name))
        return out.drop(tmp)

"""``register_udf``: use a deepspark transformer or model from Spark SQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepspark.errors import InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = ["register_udf"]


def _result_only(run: Any, pack: int | None, name: str, inputs: list[str]) -> Any:
    """Wrap a task's ``run``: pack several argument arrays into one struct, keep ``result``.

    ``pack`` is the number of arguments the function takes (one per model input, named
    ``inputs``), None for an image function (one argument, passed as is). Spark does not
    check the number of arguments of a Python function: a wrong count is reported here,
    in the user's terms, instead of as an Arrow error.
    """
    expected = 1 if pack is None else pack

    def arguments(batch: Any) -> list[Any]:
        got = list(batch) if isinstance(batch, tuple) else [batch]
        if len(got) != expected:
            what = f" (one per model input: {', '.join(inputs)})" if pack is not None else ""
            raise InvalidParameterError(
                f"{name}() takes {expected} argument{'s' if expected > 1 else ''}{what}, "
                f"got {len(got)}"
            )
        return got

    def wrapped(arrays: Any) -> Any:
        import pyarrow as pa

        if pack is None:
            arrays = (arguments(batch)[0] for batch in arrays)
        else:
            arrays = (
                pa.StructArray.from_arrays(arguments(batch), names=[f"i{i}" for i in range(pack)])
                for batch in arrays
            )
        for out in run(arrays):
            yield out.field("result")

    return wrapped


def register_udf(spark: SparkSession, name: str, transformer_or_model: Any) -> Any:
    """Register a deepspark transformer or model as a Spark SQL function.

    Parameters
    ----------
    spark : SparkSession
    name : str
        The SQL function name.
    transformer_or_model : ImageModelTransformer, DeepImagePredictor, DeepImageFeaturizer,
        ModelTransformer, Model or str
        An image transformer gives ``name(image)`` (an image struct, file bytes or a
        path column); a :class:`ModelTransformer`, a model from
        :func:`deepspark.load_model` or a model path gives ``name(col1, col2, ...)``, one
        argument per model input, returning the output (a struct of outputs when the
        model has several). Rows that cannot be used give null. Vectors come back as
        ``array<float>`` (SQL has no ML vector type); a call with the wrong number of
        arguments fails the query with the count the function takes.

    Returns
    -------
    The registered UDF, also usable in the DataFrame API.

    Examples
    --------
    >>> deepspark.register_udf(spark, "classify", deepspark.DeepImagePredictor())  # doctest: +SKIP
    >>> spark.sql("SELECT path, classify(content) FROM files").show()             # doctest: +SKIP
    """
    from pyspark.sql.types import StructType

    from deepspark.ml._apply import task_udf
    from deepspark.ml.image import DeepImageFeaturizer, DeepImagePredictor, ImageModelTransformer
    from deepspark.ml.tensor import ModelTransformer, tensor_task
    from deepspark.models.api import prepare_model
    from deepspark.models.base import Model

    if not name.isidentifier():
        raise InvalidParameterError(f"SQL function name must be an identifier, got {name!r}")
    obj = transformer_or_model
    if isinstance(obj, (ImageModelTransformer, DeepImagePredictor, DeepImageFeaturizer)):
        task = obj._build_task(spark, "auto")
        spark_type, pack = task.result_spark_type(), None
    else:
        if isinstance(obj, ModelTransformer):
            task, _, _ = obj._build_task(spark)
        elif isinstance(obj, (Model, str)):
            spec, model = prepare_model(obj)
            sig = model.signature
            outs = sig.output_names or ["output"]
            task = tensor_task(spark, spec, sig, sig.input_names, outs)
        else:
            raise InvalidParameterError(
                "register_udf takes an ImageModelTransformer, DeepImagePredictor, "
                "DeepImageFeaturizer, ModelTransformer, a deepspark Model or a model path, "
                f"not {type(obj).__name__}"
            )
        spark_type, pack = task.result_spark_type(), len(task.input_names)
    inputs = list(getattr(task, "input_names", None) or ["image"])
    run = _result_only(task.run, pack, name, inputs)
    if pack is not None and isinstance(spark_type, StructType) and len(spark_type.fields) == 1:
        # One output: return it directly rather than a one-field struct.
        inner = run
        field = spark_type.fields[0]

        def run(arrays: Any) -> Any:  # type: ignore[no-redef]
            for out in inner(arrays):
                yield out.field(0)

        spark_type = field.dataType
    udf = task_udf(run, spark_type, wrap_error=False)
    return spark.udf.register(name, udf)

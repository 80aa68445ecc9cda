"""Applying an executor task to a DataFrame column (Arrow UDF, result + error columns)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from deepspark.errors import InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

__all__ = ["apply_task", "check_output_columns", "column", "image_input_kind"]

_IMAGE_FIELDS = {"height", "width", "nChannels", "mode", "data"}


def missing_columns_error(df: DataFrame, columns: list[str]) -> InvalidParameterError:
    """The error for input columns ``df`` lacks, with a fix when one names a struct field.

    Like Spark ML's own transformers, inputs are top-level columns; ``"item.content"``
    is a field of the column ``item``, which the message says how to select.
    """
    from pyspark.sql.types import StructType

    names = ", ".join(f"'{c}'" for c in columns)
    text = (
        f"input column{'s' if len(columns) > 1 else ''} {names} not found; "
        f"the DataFrame has columns {df.columns}"
    )
    for column in columns:
        head, _, field = column.partition(".")
        if field and head in df.columns and isinstance(df.schema[head].dataType, StructType):
            alias = field.rsplit(".", 1)[-1]
            text += (
                f"; '{column}' is a field of the struct column '{head}': inputs must be "
                f"top-level columns, so select it first, e.g. "
                f"df.withColumn('{alias}', F.col('{column}')) and inputCol='{alias}'"
            )
            break
    return InvalidParameterError(text)


def column_input_kind(df: DataFrame, column: str, struct_fields: set[str], struct_hint: str) -> str:
    """The kind of ``column``: "struct" (with ``struct_fields``), "binary" or "path".

    ``struct_hint`` names where such structs come from, for the error message.
    """
    from pyspark.sql.types import BinaryType, StringType, StructType

    if column not in df.columns:
        raise missing_columns_error(df, [column])
    dtype = df.schema[column].dataType
    if isinstance(dtype, StructType) and struct_fields <= set(dtype.fieldNames()):
        return "struct"
    if isinstance(dtype, BinaryType):
        return "binary"
    if isinstance(dtype, StringType):
        return "path"
    raise InvalidParameterError(
        f"input column '{column}' has type {dtype.simpleString()}; expected {struct_hint}, "
        "binary file content (spark.read.format('binaryFile')) or a string column of file paths"
    )


def image_input_kind(df: DataFrame, column: str) -> str:
    """The kind of image input: "struct" (Spark image struct), "binary" or "path"."""
    return column_input_kind(
        df,
        column,
        _IMAGE_FIELDS,
        "an image struct (deepspark.read_images or spark.read.format('image'))",
    )


def task_udf(run: Any, result_type: DataType, wrap_error: bool = True) -> Any:
    """An iterator Arrow UDF returning struct<result, error> that calls ``run(arrays)``.

    With ``wrap_error=False`` the UDF returns ``result_type`` as is (``run`` yields it).
    """
    from pyspark.sql.functions import ArrowUDFType, arrow_udf
    from pyspark.sql.types import StringType, StructField, StructType

    out_type = (
        StructType(
            [StructField("result", result_type, True), StructField("error", StringType(), True)]
        )
        if wrap_error
        else result_type
    )

    def deepspark_infer(arrays):  # type: ignore[no-untyped-def]
        from deepspark.runtime._progress import counted

        return counted(run(arrays))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "prefer type hints"
        udf = arrow_udf(deepspark_infer, out_type, ArrowUDFType.SCALAR_ITER)
    # Non-deterministic so Spark evaluates the model once per row even though both
    # fields of the result are selected.
    return udf.asNondeterministic()


def column(name: str) -> Column:
    """The top-level column ``name``, dots included (``F.col("my.image")`` would mean
    field ``image`` of a struct column ``my``).

    >>> str(column("my.image"))
    "Column<'`my.image`'>"
    """
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _name_key(df: DataFrame) -> Callable[[str], str]:
    """How Spark compares column names in ``df``'s session: ignoring case unless
    ``spark.sql.caseSensitive`` is on (``withColumn("predictions", ...)`` replaces a
    column ``Predictions``)."""
    sensitive = str(df.sparkSession.conf.get("spark.sql.caseSensitive", "false")).lower()
    return str if sensitive == "true" else str.lower


def existing_column(
    df: DataFrame, name: str, key: Callable[[str], str] | None = None
) -> str | None:
    """The DataFrame's column that ``name`` refers to (Spark's rule), or None."""
    key = key or _name_key(df)
    return next((c for c in df.columns if key(c) == key(name)), None)


def check_output_columns(df: DataFrame, outputs: dict[str, str], error_col: str) -> None:
    """Raise :class:`InvalidParameterError` when output columns collide with each other,
    with the error column or with a column the DataFrame already has (as pyspark.ml's
    own stages do), or when an existing error column cannot hold error texts.

    ``outputs`` maps Param names to the column names they set. The error column may
    exist: its errors are kept and new ones added.
    """
    from pyspark.sql.types import StringType

    key = _name_key(df)
    seen: dict[str, tuple[str, str]] = {}
    for param, name in {**outputs, "errorCol": error_col}.items():
        if key(name) in seen:
            other, other_name = seen[key(name)]
            same = f"both {name!r}" if other_name == name else f"{other_name!r} and {name!r}"
            raise InvalidParameterError(
                f"{other} and {param} are {same}: one would overwrite the other (Spark "
                "compares column names ignoring case); give them different column names"
            )
        seen[key(name)] = (param, name)
    for param, name in outputs.items():
        existing = existing_column(df, name, key)
        if existing is not None:
            raise InvalidParameterError(
                f"the DataFrame already has a column {existing!r}, which {param} "
                f"({name!r}) would replace: set {param} to another name, or drop that "
                f"column first (df.drop({existing!r}))"
            )
    existing_error = existing_column(df, error_col, key)
    if existing_error is not None:
        field = df.schema[existing_error]
        if not isinstance(field.dataType, StringType):
            raise InvalidParameterError(
                f"the DataFrame already has a column {existing_error!r} of type "
                f"{field.dataType.simpleString()}; deepspark keeps row errors there as "
                "strings: rename that column, or set errorCol to another name"
            )


def apply_task(
    df: DataFrame,
    input_col: Column | str,
    output_col: str,
    error_col: str,
    run: Any,
    result_type: DataType,
    result_expr: Any = None,
    checked: bool = False,
) -> DataFrame:
    """``df`` plus ``output_col`` (the result) and ``error_col`` (existing errors kept).

    ``result_expr`` optionally maps the result column (e.g. array -> vector). A caller
    that writes ``output_col`` to other columns afterwards checks those itself
    (:func:`check_output_columns`) and passes ``checked=True``.
    """
    from pyspark.sql import functions as F

    if not checked:
        check_output_columns(df, {"outputCol": output_col}, error_col)
    tmp = "__deepspark_out"
    udf = task_udf(run, result_type)
    out = df.withColumn(tmp, udf(column(input_col) if isinstance(input_col, str) else input_col))
    result = F.col(f"{tmp}.result")
    if result_expr is not None:
        result = result_expr(result)
    error = F.col(f"{tmp}.error")
    existing_error = existing_column(df, error_col)
    if existing_error is not None:
        error = F.coalesce(column(existing_error), error)
    return out.withColumn(output_col, result).withColumn(error_col, error).drop(tmp)

"""Writing results (Parquet, JSON or CSV by extension) and printing them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deepspark.errors import InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["output_format", "read_results", "write_results"]

_FORMATS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".csv": "csv"}


def output_format(path: str) -> str:
    """Spark format for an output path, from its extension."""
    suffix = Path(path.rstrip("/")).suffix.lower()
    if suffix not in _FORMATS:
        raise InvalidParameterError(
            f"cannot tell the output format of {path!r}: end it with .parquet, .json or .csv"
        )
    return _FORMATS[suffix]


def write_results(df: DataFrame, path: str, fmt: str | None = None) -> None:
    """Write ``df`` to ``path`` (a folder of part files, as Spark writes)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, MapType, StructType

    fmt = fmt or output_format(path)
    if fmt == "csv":
        # CSV holds no nested values: nested columns become JSON strings.
        df = df.select(
            *[
                F.to_json(F.col(f.name)).alias(f.name)
                if isinstance(f.dataType, (ArrayType, StructType, MapType))
                else F.col(f.name)
                for f in df.schema.fields
            ]
        )
        # Quotes inside values are doubled (RFC 4180), not backslash-escaped as Spark does
        # by default, so pandas, spreadsheets and csv.reader read the JSON cells back.
        df.write.mode("overwrite").option("header", "true").option("escape", '"').csv(path)
    elif fmt == "json":
        # Every row keeps every key, null included: Spark's default drops a field that is
        # null (an error column when no file failed), and a reader of the files (pandas,
        # jq, `deepspark report`) then cannot tell "no error" from "no such column".
        df.write.mode("overwrite").option("ignoreNullFields", "false").json(path)
    else:
        df.write.mode("overwrite").format(fmt).save(path)


def read_results(spark: SparkSession, path: str, like: DataFrame | None = None) -> DataFrame:
    """Read back what :func:`write_results` wrote at ``path`` (format from the extension).

    :func:`write_results` keeps null fields in JSON, but Spark's JSON reader still
    leaves out a column that is null in every row (and older outputs lack the keys):
    with ``like``, the DataFrame that was written, such columns come back as nulls of
    their type, so summaries and tables find every column.
    """
    from pyspark.sql import functions as F

    fmt = output_format(path)
    if fmt == "csv":
        # multiLine: quoted values may hold line breaks (texts from `deepspark embed`).
        reader = spark.read.option("header", "true").option("escape", '"')
        return reader.option("multiLine", "true").csv(path)
    written = spark.read.format(fmt).load(path)
    for field in like.schema.fields if like is not None else []:
        if field.name not in written.columns:
            written = written.withColumn(field.name, F.lit(None).cast(field.dataType))
    return written

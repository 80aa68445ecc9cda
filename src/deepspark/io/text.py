"""Text files: :func:`read_text` decodes files on the executors into rows of text.

Each file is decoded strictly with the given encoding; a file that is not valid in
that encoding gives one row with a null ``text`` and a one-line ``error`` naming the
offending byte and its position, so one bad file never fails a job.
"""

from __future__ import annotations

import codecs
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deepspark.errors import InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["UNITS", "decode_text", "read_text", "split_units"]

#: What one row holds: a whole file, one line, or one paragraph.
UNITS = ("file", "line", "paragraph")

# Lines end with \n, \r\n or \r (as Spark's text source and universal newlines).
_LB = r"(?:\r\n|\r(?!\n)|\n)"  # \r only alone, so "\r\n" is never two line breaks
_LINE_BREAK = re.compile(_LB)
# Paragraphs are separated by one or more blank (white-space only) lines.
_BLANK_LINES = re.compile(rf"{_LB}[ \t\f\v]*(?:{_LB}[ \t\f\v]*)+")


def decode_text(data: bytes | None, encoding: str = "utf-8") -> tuple[str | None, str | None]:
    """Decode file bytes to ``(text, error)``; never raises.

    A byte-order mark at the start is dropped for the UTF encodings.

    Examples
    --------
    >>> decode_text("héllo".encode())
    ('héllo', None)
    >>> print(decode_text(b"caf\\xe9 au lait")[1])  # doctest: +ELLIPSIS
    not valid utf-8: byte 0xe9 at offset 3 cannot be decoded (invalid continuation byte); ...
    """
    if data is None:
        return None, "no file content"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.end]
        hint = "latin-1" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else "utf-8"
        return None, (
            f"not valid {encoding}: byte 0x{bad[:1].hex()} at offset {exc.start} cannot be "
            f"decoded ({exc.reason}); pass encoding='{hint}' (or the file's encoding) to read it"
        )
    except Exception as exc:  # noqa: BLE001 - every failure becomes this row's error
        return None, f"cannot decode as {encoding}: {type(exc).__name__}: {exc}"
    text = text.removeprefix("\ufeff")
    return text, None


def split_units(text: str, unit: str) -> list[str]:
    """Split a file's text into lines or paragraphs (``unit="file"``: the text itself).

    Lines keep their content without the line break; a final line break does not start
    another line. Paragraphs are runs of lines between blank lines, stripped of
    surrounding white space; blank ones are dropped.

    Examples
    --------
    >>> split_units("a\\r\\nb\\n\\nc\\n", "line")
    ['a', 'b', '', 'c']
    >>> split_units("One.\\nStill one.\\n  \\nTwo.\\n", "paragraph")
    ['One.\\nStill one.', 'Two.']
    """
    if unit == "file":
        return [text]
    if unit == "line":
        lines = _LINE_BREAK.split(text)
        if lines and lines[-1] == "":
            lines.pop()  # "a\n" is one line, as for Spark's text source
        return lines
    return [p.strip() for p in _BLANK_LINES.split(text) if p.strip()]


def _decode_batch(paths: list[str], contents: list[bytes | None], unit: str, encoding: str) -> Any:
    """Arrow batch of files -> list<struct<text, error>> per file."""
    import pyarrow as pa

    rows: list[list[dict[str, str | None]]] = []
    for content in contents:
        text, error = decode_text(content, encoding)
        if text is None:
            rows.append([{"text": None, "error": error}])
        else:
            rows.append([{"text": piece, "error": None} for piece in split_units(text, unit)])
    item = pa.struct([pa.field("text", pa.string()), pa.field("error", pa.string())])
    return pa.array(rows, type=pa.list_(item))


def read_text(
    spark: SparkSession,
    path: str | Sequence[str],
    *,
    unit: str = "file",
    encoding: str = "utf-8",
    recursive: bool = True,
    glob: str | None = None,
) -> DataFrame:
    """Read text files into a DataFrame: one row per file, line or paragraph.

    Files are listed by Spark and decoded on the executors.

    Parameters
    ----------
    spark : SparkSession
    path : str or list of str
        A file, folder or glob on any filesystem Spark reads, or a list of them.
    unit : {"file", "line", "paragraph"}
        What one row holds. ``"line"``: every line, blank ones included.
        ``"paragraph"``: text between blank lines, stripped; blank paragraphs dropped.
        With "line" and "paragraph" a file with no text gives no rows.
    encoding : str
        Encoding of the files (any Python codec name). A leading byte-order mark is
        dropped.
    recursive : bool
        Descend into sub-folders.
    glob : str, optional
        Keep only file names matching this pattern, e.g. ``"*.txt"``.

    Returns
    -------
    DataFrame
        Columns ``origin`` (the file's URI, as :func:`deepspark.read_images` writes it),
        ``text`` and ``error`` (null when fine). A file that cannot be decoded gives
        exactly one row, with a null ``text`` and the reason in ``error``.

    Examples
    --------
    >>> import deepspark
    >>> spark = deepspark.session("local[2]")                               # doctest: +SKIP
    >>> docs = deepspark.read_text(spark, "notes/", unit="paragraph")       # doctest: +SKIP
    >>> deepspark.TextEmbedder().transform(docs).select("origin", "embedding")  # doctest: +SKIP
    """
    import pyarrow as pa
    from pyspark.sql import functions as F
    from pyspark.sql.functions import ArrowUDFType, arrow_udf
    from pyspark.sql.types import ArrayType, StringType, StructField, StructType

    from deepspark.io._files import list_files, uri_form

    if unit not in UNITS:
        raise InvalidParameterError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidParameterError(
            f"unknown encoding {encoding!r}; use a Python codec name such as 'utf-8', "
            "'latin-1' or 'cp1252'"
        ) from None
    files = list_files(spark, path, recursive=recursive, glob=glob)
    item = StructType(
        [StructField("text", StringType(), True), StructField("error", StringType(), True)]
    )

    def decode(paths: pa.Array, contents: pa.Array) -> pa.Array:
        return _decode_batch(paths.to_pylist(), contents.to_pylist(), unit, encoding)

    def origins(paths: pa.Array) -> pa.Array:
        return pa.array([uri_form(p) for p in paths.to_pylist()], type=pa.string())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "prefer type hints"
        # Non-deterministic so Spark decodes each file once although two fields are used.
        decode_udf = arrow_udf(
            decode, ArrayType(item, False), ArrowUDFType.SCALAR
        ).asNondeterministic()
        origin_udf = arrow_udf(origins, StringType(), ArrowUDFType.SCALAR)
    pieces = files.select(
        origin_udf("path").alias("origin"),
        F.explode(decode_udf("path", "content")).alias("_piece"),
    )
    return pieces.select(
        "origin", F.col("_piece.text").alias("text"), F.col("_piece.error").alias("error")
    )

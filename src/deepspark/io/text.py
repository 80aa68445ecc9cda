"""Text files: :func:`read_text` decodes files on the executors into rows of text.

Each file is decoded strictly with the given encoding; a file that is not valid in
that encoding gives one row with a null ``text`` and a one-line ``error`` naming the
offending byte and its position, so one bad file never fails a job.
"""

from __future__ import annotations

import codecs
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from deepspark.errors import InvalidParameterError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["UNITS", "check_encoding", "decode_text", "read_text", "split_units", "text_rows"]

#: What one row holds: a whole file, one line, or one paragraph.
UNITS = ("file", "line", "paragraph")

# Lines end with \n, \r\n or \r (as Spark's text source and universal newlines).
_LB = r"(?:\r\n|\r(?!\n)|\n)"  # \r only alone, so "\r\n" is never two line breaks
_LINE_BREAK = re.compile(_LB)
# Paragraphs are separated by one or more blank (white-space only) lines.
_BLANK_LINES = re.compile(rf"{_LB}[ \t\f\v]*(?:{_LB}[ \t\f\v]*)+")


def check_encoding(encoding: str) -> None:
    """Raise :class:`InvalidParameterError` unless Python knows the codec ``encoding``.

    >>> check_encoding("latin-1")
    >>> check_encoding("bogus")
    Traceback (most recent call last):
    ...
    deepspark.errors.InvalidParameterError: unknown encoding 'bogus'; use a Python codec name such as 'utf-8', 'latin-1' or 'cp1252'
    """
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidParameterError(
            f"unknown encoding {encoding!r}; use a Python codec name such as 'utf-8', "
            "'latin-1' or 'cp1252'"
        ) from None


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
        if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            hint = "utf-32"  # checked first: the UTF-32 LE mark starts like UTF-16's
        elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            hint = "utf-16"  # latin-1 would "read" it, as text full of NUL characters
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


def _decode_batch(
    read: Iterable[tuple[bytes | None, str | None]], paths: list[str], unit: str, encoding: str
) -> Any:
    """``(content, read error)`` per file -> list<struct<origin, text, error>> per file."""
    import pyarrow as pa

    from deepspark.io._files import no_content_reason, uri_form
    from deepspark.runtime import _arrow as arrow

    origins: list[str] = []
    texts: list[str | None] = []
    errors: list[str | None] = []
    counts: list[int] = []
    for (content, read_error), path in zip(read, paths):
        if read_error is None and content is None:
            read_error = no_content_reason(path)
        text, error = (None, read_error) if read_error else decode_text(content, encoding)
        pieces: list[str | None] = [None] if text is None else list(split_units(text, unit))
        counts.append(len(pieces))
        texts += pieces
        errors += [error] * len(pieces)
        origins += [uri_form(path)] * len(pieces)
    # Built from buffers: pa.array would import pandas in every fresh worker.
    items = pa.StructArray.from_arrays(
        [arrow.strings(origins), arrow.strings(texts), arrow.strings(errors)],
        fields=list(_item_type()),
    )
    offsets = arrow.offsets32(counts)
    return pa.Array.from_buffers(
        pa.list_(_item_type()), len(counts), [None, pa.py_buffer(offsets)], children=[items]
    )


def _item_type() -> Any:
    import pyarrow as pa

    return pa.struct(
        [
            pa.field("origin", pa.string(), False),
            pa.field("text", pa.string()),
            pa.field("error", pa.string()),
        ]
    )


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

    Files are decoded on the executors; local folders are listed on the driver and
    each file read by its executor, other filesystems listed and read by Spark's
    ``binaryFile`` source.

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

    from deepspark.io._files import files_to_read

    if unit not in UNITS:
        raise InvalidParameterError(f"unit must be one of {', '.join(UNITS)}; got {unit!r}")
    check_encoding(encoding)
    files, column, _ = files_to_read(spark, path, recursive=recursive, glob=glob)
    return text_rows(files, column, unit=unit, encoding=encoding)


def text_rows(files: DataFrame, column: str, *, unit: str, encoding: str) -> DataFrame:
    """:func:`read_text`'s rows from a :func:`~deepspark.io._files.files_to_read` frame.

    ``column`` is "path" (each file is read here, by the executor) or "content" (bytes
    Spark's ``binaryFile`` source read).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.functions import ArrowUDFType, arrow_udf
    from pyspark.sql.types import ArrayType, StringType, StructField, StructType

    from deepspark.io._files import read_local_file

    item = StructType(
        [
            StructField("origin", StringType(), False),
            StructField("text", StringType(), True),
            StructField("error", StringType(), True),
        ]
    )

    def decode(paths: pa.Array, contents: pa.Array) -> pa.Array:
        return _decode_batch(
            [(c, None) for c in contents.to_pylist()], paths.to_pylist(), unit, encoding
        )

    def read_and_decode(paths: pa.Array) -> pa.Array:
        listed = paths.to_pylist()
        return _decode_batch(map(read_local_file, listed), listed, unit, encoding)

    # One UDF gives each piece its origin too: every Python UDF of a task is one more
    # Python worker (fork, imports) per task. Non-deterministic so Spark decodes each
    # file once although three fields are used.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "prefer type hints"
        reader, inputs = (
            (read_and_decode, ["path"]) if column == "path" else (decode, ["path", "content"])
        )
        decode_udf = arrow_udf(
            reader, ArrayType(item, False), ArrowUDFType.SCALAR
        ).asNondeterministic()
    pieces = files.select(F.explode(decode_udf(*inputs)).alias("_piece"))
    return pieces.select(
        F.col("_piece.origin").alias("origin"),
        F.col("_piece.text").alias("text"),
        F.col("_piece.error").alias("error"),
    )

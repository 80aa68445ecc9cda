"""``deepspark embed``: sentence embeddings of text files."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from deepspark.cli.common import (
    UsageError,
    add_io_options,
    add_spark_options,
    example,
    input_files,
    positive_int,
    prepare,
    spark_session,
    write_and_summarize,
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "embed",
        help="embed text files with a sentence-embedding model",
        description="Embed text files with a sentence-embedding model: one vector per file, "
        "line or paragraph, and a reason for every file that could not be decoded. The output "
        "has the columns origin, text (with --unit line or paragraph), embedding (an array of "
        "floats) and error.",
        epilog=example(
            "deepspark embed notes/ --unit paragraph --output embeddings.parquet",
            "deepspark embed 'docs/*.txt' --model ./my-sentence-model --encoding latin-1",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_io_options(p, batch_size=32)
    p.add_argument(
        "--unit",
        choices=("file", "line", "paragraph"),
        default="file",
        help="what one embedding covers (default: file)",
    )
    p.add_argument(
        "--model",
        default="all-MiniLM-L6-v2",
        help="a named text-embedding model ('deepspark models' lists them) or a local "
        "sentence-transformers / Hugging Face folder",
    )
    p.add_argument("--encoding", default="utf-8", help="encoding of the files (default utf-8)")
    p.add_argument(
        "--max-length", type=positive_int, default=256, help="tokens per text; longer is cut"
    )
    add_spark_options(p)
    p.set_defaults(func=run)


def _model_kwargs(model: str) -> dict[str, str]:
    """TextEmbedder arguments for ``--model`` (a folder, or a named text-embedding model)."""
    if os.path.isdir(model):
        return {"model": model}
    if os.sep in model or model.startswith("."):
        raise UsageError(f"no such model folder: {model}")
    from deepspark.models.zoo import get_named_model

    named = get_named_model(model)  # unknown name: exit 2
    if named.task != "text-embedding":
        raise UsageError(
            f"model '{named.name}' is a {named.task} model, not a text-embedding one "
            "('deepspark models' lists them)"
        )
    return {"modelName": named.name}


def run(args: argparse.Namespace) -> int:
    prepare(args)
    from deepspark.io.text import check_encoding

    check_encoding(args.encoding)  # exit 2 before Spark starts, as for other bad options
    model_kwargs = _model_kwargs(args.model)

    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from deepspark.io.text import text_rows
    from deepspark.ml.text import TextEmbedder

    spark = spark_session(args)
    # --limit counts files, whatever the unit; lines and paragraphs are not known ahead,
    # so progress counts files and the summary the written rows (lines, paragraphs).
    files, total, column = input_files(spark, args)
    texts = text_rows(files, column, unit=args.unit, encoding=args.encoding)
    embedder = TextEmbedder(
        inputCol="text", batchSize=args.batch_size, maxLength=args.max_length, **model_kwargs
    )
    columns = ["origin"] + (["text"] if args.unit != "file" else [])
    result = embedder.transform(texts).select(
        *columns,
        # Plain float arrays: readable by any Parquet/JSON tool, and CSV can hold them
        # (vector_to_array fails on null, so rows without an embedding are skipped).
        F.when(F.col("embedding").isNotNull(), vector_to_array("embedding", "float32")).alias(
            "embedding"
        ),
        "error",
    )

    def show(console: Any, written: Any) -> None:
        order = [c for c in ("origin", "text") if c in written.columns]
        _print_table(console, written.orderBy(*order).limit(args.show).collect())

    unit = "files" if args.unit == "file" else f"{args.unit}s"
    return write_and_summarize(
        args, spark, result, total=total, unit=unit, show=show, progress_unit="files"
    )


def _print_table(console: Any, rows: list[Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False)
    table.add_column("file", overflow="ellipsis", no_wrap=True, max_width=24)
    has_text = bool(rows) and "text" in rows[0].asDict()
    if has_text:
        table.add_column("text", overflow="ellipsis", no_wrap=True, max_width=30)
    # A row has an embedding or an error, never both: one column keeps the error
    # readable on an 80-column terminal (a separate error column was squeezed to nothing).
    table.add_column("embedding or error", overflow="fold", min_width=26)
    for row in rows:
        values = row.asDict()  # JSON output omits null columns
        vector = values.get("embedding")
        if isinstance(vector, str):  # CSV output holds JSON strings
            vector = json.loads(vector) if vector else None
        shown = f"{len(vector)}-d [{vector[0]:.3f}, {vector[1]:.3f}, ...]" if vector else ""
        cells = [Path(str(values["origin"])).name]
        if has_text:
            cells.append((values.get("text") or "").replace("\n", " "))
        error = values.get("error")
        table.add_row(*cells, Text(f"error: {error}", style="red") if error else shown)
    console.print(table)

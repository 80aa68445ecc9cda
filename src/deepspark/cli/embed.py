"""``deepspark embed``: sentence embeddings of text files."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from deepspark.cli.common import (
    EXIT_OK,
    UsageError,
    add_io_options,
    add_spark_options,
    check_local_paths,
    console,
    positive_int,
    spark_session,
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "embed",
        help="embed text files with a sentence-embedding model",
        description=(
            "Embed text files (one vector per file, line or paragraph) with a "
            "sentence-embedding model. The output has the columns origin, text (with "
            "--unit line or paragraph), embedding (array of floats) and error."
        ),
        epilog="example: deepspark embed notes/ --unit paragraph --output embeddings.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_io_options(p)
    p.add_argument(
        "--unit",
        choices=("file", "line", "paragraph"),
        default="file",
        help="what one embedding covers (default: file)",
    )
    p.add_argument(
        "--model",
        default="all-MiniLM-L6-v2",
        help="named model, or a local sentence-transformers / Hugging Face folder",
    )
    p.add_argument("--encoding", default="utf-8", help="encoding of the files (default utf-8)")
    p.add_argument(
        "--max-length", type=positive_int, default=256, help="tokens per text; longer is cut"
    )
    add_spark_options(p)
    p.set_defaults(func=run)


def _model_kwargs(model: str) -> dict[str, str]:
    """``model=`` for a folder, ``modelName=`` for a named text-embedding model."""
    if os.path.isdir(model):
        return {"model": model}
    if os.sep in model or model.startswith("."):
        raise UsageError(f"no such model folder: {model}")
    from deepspark.models.zoo import get_named_model

    named = get_named_model(model)
    if named.task != "text-embedding":
        raise UsageError(
            f"model '{named.name}' is a {named.task} model; `deepspark models` lists the "
            "text-embedding ones"
        )
    return {"modelName": named.name}


def run(args: argparse.Namespace) -> int:
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from deepspark.cli.output import output_format, write_results
    from deepspark.io.text import read_text
    from deepspark.ml.text import TextEmbedder

    check_local_paths(args.paths)
    if args.output:
        output_format(args.output)  # bad extension: usage error before Spark starts
    model_kwargs = _model_kwargs(args.model)

    out = console(args.quiet)
    started = time.time()
    spark = spark_session(args)
    texts = read_text(spark, args.paths, unit=args.unit, encoding=args.encoding)
    if args.limit:
        texts = texts.limit(args.limit)
    embedder = TextEmbedder(
        inputCol="text", batchSize=args.batch_size, maxLength=args.max_length, **model_kwargs
    )
    columns = ["origin"] + (["text"] if args.unit != "file" else [])
    result = embedder.transform(texts).select(
        *columns,
        # Plain float arrays: readable by any Parquet/JSON tool, and CSV can hold them.
        # (vector_to_array fails on null, so error rows are skipped explicitly.)
        F.when(
            F.col("embedding").isNotNull(), vector_to_array("embedding", "float32")
        ).alias("embedding"),
        "error",
    )

    tmpdir = None
    output = args.output
    if output is None:
        tmpdir = tempfile.mkdtemp(prefix="deepspark-")
        output = os.path.join(tmpdir, "embeddings.parquet")
    fmt = output_format(output)
    write_results(result, output, fmt)
    reader = spark.read
    if fmt == "csv":  # texts may hold line breaks: quoted multi-line CSV fields
        reader = reader.option("header", "true").option("multiLine", "true")
    elif fmt == "json":  # JSON omits null fields: without the schema no `error` column
        reader = reader.schema(result.schema)
    written = reader.format(fmt).load(output)
    elapsed = time.time() - started

    summary = written.agg(F.count(F.lit(1)).alias("rows"), F.count("error").alias("errors")).first()
    if args.show and not args.quiet:
        order = [c for c in ("origin", "text") if c in written.columns]
        _print_table(out, written.orderBy(*order).limit(args.show).collect())
    if not args.quiet:
        rows, errors = summary["rows"], summary["errors"]
        out.print(
            f"{rows} texts, {rows - errors} embedded, {errors} errors, "
            f"{elapsed:.1f}s ({rows / max(elapsed, 1e-9):.1f} texts/s)"
            + (f" -> {args.output}" if args.output else "")
        )
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return EXIT_OK


def _print_table(console: Any, rows: list[Any]) -> None:
    import json

    from rich.table import Table

    table = Table(show_lines=False)
    table.add_column("file", overflow="ellipsis", no_wrap=True, max_width=24)
    has_text = bool(rows) and "text" in rows[0].asDict()
    if has_text:
        table.add_column("text", overflow="ellipsis", no_wrap=True, max_width=30)
    table.add_column("embedding", no_wrap=True)
    table.add_column("error", overflow="fold", min_width=20)
    for row in rows:
        vector = row["embedding"]
        if isinstance(vector, str):  # CSV output holds JSON strings
            vector = json.loads(vector) if vector else None
        shown = f"{len(vector)}-d [{vector[0]:.3f}, {vector[1]:.3f}, ...]" if vector else ""
        cells = [Path(str(row["origin"])).name]
        if has_text:
            cells.append((row["text"] or "").replace("\n", " "))
        table.add_row(*cells, shown, row["error"] or "")
    console.print(table)

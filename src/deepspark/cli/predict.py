"""``deepspark predict``: classify images with a pretrained model."""

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
    add_io_options,
    add_spark_options,
    check_local_paths,
    console,
    positive_int,
    spark_session,
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="classify images with a pretrained model",
        description="Classify images with a pretrained model and print the top classes.",
        epilog="example: deepspark predict photos/ --top-k 5 --output predictions.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_io_options(p)
    p.add_argument("--model", default="efficientnet_lite0", help="named model or model file")
    p.add_argument("--top-k", type=positive_int, default=5, help="classes per image")
    p.add_argument(
        "--quantize",
        choices=("none", "int8"),
        default="none",
        help="int8: run a static int8 copy of the model (faster on CPUs; see docs/benchmarks.md)",
    )
    add_spark_options(p)
    p.set_defaults(func=run)


def _format_topk(preds: list[Any] | None) -> str:
    if not preds:
        return ""
    return "\n".join(f"{p['probability']:.3f}  {p['description']}" for p in preds)


def run(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from deepspark.io._files import list_files
    from deepspark.ml.image import DeepImagePredictor

    check_local_paths(args.paths)
    if args.output:
        from deepspark.cli.output import output_format

        output_format(args.output)  # bad extension: usage error before Spark starts
    model_kwargs: dict[str, Any] = {}
    if os.path.exists(args.model) or args.model.endswith(".onnx"):
        model_kwargs["model"] = args.model
    else:
        from deepspark.models.zoo import get_named_model

        model_kwargs["modelName"] = get_named_model(args.model).name

    out = console(args.quiet)
    started = time.time()
    spark = spark_session(args)
    files = list_files(spark, args.paths)
    if args.limit:
        files = files.limit(args.limit)
    predictor = DeepImagePredictor(
        inputCol="content",
        topK=args.top_k,
        batchSize=args.batch_size,
        quantize=args.quantize,
        **model_kwargs,
    )
    result = predictor.transform(files).select("path", "predictions", "error")

    tmpdir = None
    output = args.output
    if output is None:
        tmpdir = tempfile.mkdtemp(prefix="deepspark-")
        output = os.path.join(tmpdir, "predictions.parquet")
    from deepspark.cli.output import write_results

    write_results(result, output)
    written = spark.read.format("parquet" if tmpdir else _fmt(output)).load(output)
    if _fmt(output) == "csv" and not tmpdir:
        written = spark.read.option("header", "true").csv(output)
    elapsed = time.time() - started

    summary = written.agg(
        F.count(F.lit(1)).alias("rows"), F.count("error").alias("errors")
    ).first()
    if args.show and not args.quiet:
        _print_table(out, written.orderBy("path").limit(args.show).collect(), args.top_k)
    if not args.quiet:
        rows, errors = summary["rows"], summary["errors"]
        out.print(
            f"{rows} files, {rows - errors} classified, {errors} errors, "
            f"{elapsed:.1f}s ({rows / max(elapsed, 1e-9):.1f} files/s)"
            + (f" -> {args.output}" if args.output else "")
        )
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return EXIT_OK


def _fmt(path: str) -> str:
    from deepspark.cli.output import output_format

    return output_format(path)


def _print_table(console: Any, rows: list[Any], top_k: int) -> None:
    import json

    from rich.table import Table

    table = Table(show_lines=True)
    table.add_column("file", overflow="fold")
    table.add_column(f"top-{top_k} (probability, class)")
    table.add_column("error", overflow="fold")
    for row in rows:
        preds = row["predictions"]
        if isinstance(preds, str):  # CSV output holds JSON strings
            preds = json.loads(preds) if preds else None
        name = Path(str(row["path"])).name
        table.add_row(name, _format_topk(preds), row["error"] or "")
    console.print(table)

"""``deepspark featurize``: turn images into pretrained feature vectors."""

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
    input_files,
    spark_session,
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "featurize",
        help="turn images into feature vectors (for transfer learning)",
        description=(
            "Compute a pretrained network's features for each image (the pooled "
            "penultimate layer: 1280 values for efficientnet_lite0) and write them with "
            "the file path. The 'features' column is an array of floats, readable by "
            "pandas, pyarrow and Spark (pyspark.ml.functions.array_to_vector makes it an "
            "MLlib vector). Files that cannot be decoded get null features and an error."
        ),
        epilog="example: deepspark featurize photos/ --output features.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_io_options(p)
    p.add_argument("--model", default="efficientnet_lite0", help="named model or model file")
    p.add_argument(
        "--layer", default=None, help="model output to use (default: the features output)"
    )
    add_spark_options(p)
    p.set_defaults(func=run)


def _model_kwargs(model: str) -> dict[str, str]:
    """``model=`` for a model file, ``modelName=`` for a named model (checked here)."""
    if os.path.exists(model) or model.endswith(".onnx"):
        return {"model": model}
    from deepspark.models.zoo import get_named_model

    return {"modelName": get_named_model(model).name}


def run(args: argparse.Namespace) -> int:
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from deepspark.cli.output import output_format, write_results
    from deepspark.ml.image import DeepImageFeaturizer

    check_local_paths(args.paths, args)
    fmt = output_format(args.output) if args.output else "parquet"  # usage error early
    model_kwargs = _model_kwargs(args.model)
    if args.layer:
        model_kwargs["layer"] = args.layer

    out = console(args.quiet)
    started = time.time()
    spark = spark_session(args)
    files, _, input_col = input_files(spark, args, count=False)
    featurizer = DeepImageFeaturizer(inputCol=input_col, batchSize=args.batch_size, **model_kwargs)
    featurized = featurizer.transform(files)
    result = featurized.select(
        "path",
        F.when(F.col("features").isNotNull(), vector_to_array("features", "float32")).alias(
            "features"
        ),
        "error",
    )

    tmpdir = None
    output = args.output
    if output is None:
        tmpdir = tempfile.mkdtemp(prefix="deepspark-")
        output = os.path.join(tmpdir, "features.parquet")
    try:
        write_results(result, output, fmt)
        # Summaries come from what was written: the network runs once per file.
        written = (
            spark.read.option("header", "true").csv(output)
            if fmt == "csv"
            else spark.read.format(fmt).load(output)
        )
        for column in ("features", "error"):  # JSON leaves out all-null columns
            if column not in written.columns:
                written = written.withColumn(column, F.lit(None).cast("string"))
        summary = written.agg(
            F.count(F.lit(1)).alias("rows"), F.count("error").alias("errors")
        ).first()
        if args.show and not args.quiet:
            _print_table(out, written.orderBy("path").limit(args.show).collect())
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    elapsed = time.time() - started
    if not args.quiet:
        rows, errors = summary["rows"], summary["errors"]
        out.print(
            f"{rows} files, {rows - errors} featurized, {errors} errors, "
            f"{elapsed:.1f}s ({rows / max(elapsed, 1e-9):.1f} files/s)"
            + (f" -> {args.output}" if args.output else "")
        )
    return EXIT_OK


def _print_table(console: Any, rows: list[Any]) -> None:
    import json

    from rich.table import Table

    table = Table()
    table.add_column("file", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("features (first values)")
    table.add_column("error", overflow="fold")
    for row in rows:
        values = row["features"]
        if isinstance(values, str):  # CSV output holds JSON strings
            values = json.loads(values) if values else None
        head = ", ".join(f"{v:.3f}" for v in values[:4]) + ", ..." if values else ""
        table.add_row(
            Path(str(row["path"])).name,
            str(len(values)) if values else "",
            head,
            row["error"] or "",
        )
    console.print(table)

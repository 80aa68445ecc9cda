"""``deepspark featurize``: turn images into pretrained feature vectors."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from deepspark.cli.common import (
    add_io_options,
    add_spark_options,
    input_files,
    prepare,
    spark_session,
    write_and_summarize,
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

    from deepspark.cli.output import output_format
    from deepspark.ml.image import DeepImageFeaturizer

    prepare(args)
    if args.output:
        output_format(args.output)  # an unknown extension: exit 2 before Spark starts
    model_kwargs = _model_kwargs(args.model)
    if args.layer:
        model_kwargs["layer"] = args.layer

    spark = spark_session(args)
    files, total, input_col = input_files(spark, args)
    featurizer = DeepImageFeaturizer(inputCol=input_col, batchSize=args.batch_size, **model_kwargs)
    result = featurizer.transform(files).select(
        "path",
        F.when(F.col("features").isNotNull(), vector_to_array("features", "float32")).alias(
            "features"
        ),
        "error",
    )

    def show(console: Any, written: Any) -> None:
        _print_table(console, written.orderBy("path").limit(args.show).collect())

    # Written once, then read back: the summary and table do not run the network again.
    return write_and_summarize(args, spark, result, total=total, show=show)


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

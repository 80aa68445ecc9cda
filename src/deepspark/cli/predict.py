"""``deepspark predict``: classify images with a pretrained model."""

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
    number,
    positive_int,
    prepare,
    spark_session,
    write_and_summarize,
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="classify images with a pretrained model",
        description="Classify images with a pretrained model: the top classes of every image, "
        "and a reason for every file that could not be used.",
        epilog=example(
            "deepspark predict photos/ --top-k 3",
            "deepspark predict 's3a://bucket/photos/*.jpg' --output predictions.parquet "
            "--master spark://host:7077",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_io_options(p)
    p.add_argument(
        "--model",
        default="efficientnet_lite0",
        metavar="NAME|FILE",
        help="a named model ('deepspark models' lists them) or an .onnx file "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--top-k", type=positive_int, default=5, metavar="K", help="classes per image (default: 5)"
    )
    p.add_argument(
        "--quantize",
        choices=("none", "int8"),
        default="none",
        help=(
            "int8: run a static int8 copy of the model (~2x faster on CPUs with VNNI, "
            "~1.3-1.5x on AVX2 CPUs without; changes the top-1 of some images; see "
            "docs/benchmarks.md)"
        ),
    )
    p.add_argument(
        "--recheck-margin",
        type=number(0),
        default=0.0,
        metavar="M",
        help=(
            "with --quantize int8: run the images whose top-1 and top-2 int8 "
            "probabilities differ by less than M again with the float model (0.025 kept "
            "the float top-1 on 99%% of hard photos, re-running 10-15%%; default: 0, never)"
        ),
    )
    own = p.add_argument_group(
        "your own model (--model FILE)",
        "how the file expects its images and names its classes; a named model knows",
    )
    own.add_argument(
        "--input-size",
        type=positive_int,
        nargs=2,
        metavar=("H", "W"),
        help="the model's input height and width in pixels (default: 224 224)",
    )
    own.add_argument(
        "--labels",
        metavar="FILE",
        help="class names, one per line in the model's output order (or id<TAB>name; "
        "a JSON list); default: class indices",
    )
    own.add_argument(
        "--mean",
        type=float,
        nargs="+",
        metavar="M",
        help="per-channel mean subtracted after scaling pixels to 0-1 (default: 0)",
    )
    own.add_argument(
        "--std",
        type=float,
        nargs="+",
        metavar="S",
        help="per-channel standard deviation divided by (default: 1)",
    )
    own.add_argument(
        "--channel-order",
        choices=("RGB", "BGR"),
        help="the model's channel order (default: RGB)",
    )
    own.add_argument(
        "--layout", choices=("NCHW", "NHWC"), help="the model's input layout (default: NCHW)"
    )
    add_spark_options(p)
    p.set_defaults(func=run)


#: --option -> DeepImagePredictor Param, for your own model files.
_OWN_MODEL_OPTIONS = {
    "input_size": "inputSize",
    "labels": "labels",
    "mean": "mean",
    "std": "std",
    "channel_order": "channelOrder",
    "layout": "layout",
}


def _model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """DeepImagePredictor arguments for ``--model`` (a file, or a named model) and the
    options that describe a model file."""
    model = args.model
    given = {p: getattr(args, o) for o, p in _OWN_MODEL_OPTIONS.items() if getattr(args, o)}
    if os.path.exists(model) or model.endswith(".onnx"):
        return {"model": model, **given}
    from deepspark.models.zoo import get_named_model

    name = get_named_model(model).name  # unknown name: exit 2
    if given:
        options = ", ".join(
            "--" + o.replace("_", "-") for o, p in _OWN_MODEL_OPTIONS.items() if p in given
        )
        raise UsageError(
            f"{options} describe your own model file (--model FILE); the named model "
            f"{name} has its own preprocessing and labels"
        )
    return {"modelName": name}


def run(args: argparse.Namespace) -> int:
    prepare(args)
    model_kwargs = _model_kwargs(args)

    from deepspark.ml.image import DeepImagePredictor

    predictor = DeepImagePredictor(
        topK=args.top_k,
        batchSize=args.batch_size,
        quantize=args.quantize,
        recheckMargin=args.recheck_margin,
        **model_kwargs,
    )
    predictor.getRecheckMargin()  # its checks, before Spark starts
    spark = spark_session(args)
    files, total, input_col = input_files(spark, args)
    result = (
        predictor.setInputCol(input_col).transform(files).select("path", "predictions", "error")
    )

    def show(console: Any, written: Any) -> None:
        _print_table(console, written.orderBy("path").limit(args.show).collect(), args.top_k)

    return write_and_summarize(args, spark, result, total=total, show=show)


def _format_topk(preds: list[Any] | None) -> str:
    if not preds:
        return ""
    return "\n".join(f"{p['probability']:.3f}  {p['description']}" for p in preds)


def _print_table(console: Any, rows: list[Any], top_k: int) -> None:
    from rich.table import Table

    table = Table(show_lines=True)
    table.add_column("file", overflow="fold")
    table.add_column(f"top-{top_k} (probability, class)")
    table.add_column("error", overflow="fold")
    for row in rows:
        # JSON output leaves out columns that are null in every row (no errors at all).
        values = row.asDict()
        preds = values.get("predictions")
        if isinstance(preds, str):  # CSV output holds JSON strings
            preds = json.loads(preds) if preds else None
        name = Path(str(values["path"])).name
        table.add_row(name, _format_topk(preds), values.get("error") or "")
    console.print(table)

"""``deepspark``: run deep-learning models over files on Spark from the command line.

Exit codes: 0 success, 1 the job failed, 2 usage error (bad option, missing path,
unknown model), each with a one-line message.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepspark.errors import (
    DeepSparkError,
    InputNotFoundError,
    InvalidParameterError,
    MissingDependencyError,
    ModelNotFoundError,
)

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line; exit code 2."""


def _conf_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--conf needs key=value, got {text!r}")
    return key.strip(), value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def _add_spark_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Spark")
    g.add_argument(
        "--master", default=None, help="Spark master URL (default: local[*], or spark-submit's)"
    )
    g.add_argument(
        "--conf",
        action="append",
        type=_conf_pair,
        default=[],
        metavar="KEY=VALUE",
        help="Spark setting, repeatable (e.g. --conf spark.executor.memory=4g)",
    )


def _add_io_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or globs (any Spark URI)")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="where to write every row: .parquet, .json or .csv (a folder of part files)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=64, help="rows per model call")
    p.add_argument("--limit", type=_positive_int, default=None, help="process at most N files")
    p.add_argument("--show", type=int, default=20, help="rows to print in the table (0: none)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``deepspark`` command."""
    parser = argparse.ArgumentParser(
        prog="deepspark",
        description="Run deep-learning models over images, audio and text on Apache Spark.",
        epilog="Run 'deepspark COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "predict",
        help="classify images with a pretrained model",
        description="Classify images with a pretrained model and print the top classes.",
        epilog="example: deepspark predict photos/ --top-k 5 --output predictions.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_io_options(p)
    p.add_argument("--model", default="efficientnet_lite0", help="named model or model file")
    p.add_argument("--top-k", type=_positive_int, default=5, help="classes per image")
    _add_spark_options(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "models",
        help="list the named models",
        description="List the pretrained models that ship with deepspark's packages.",
        epilog="example: deepspark models",
    )
    p.set_defaults(func=cmd_models)
    return parser


def _version() -> str:
    from deepspark import __version__

    return f"deepspark {__version__}"


def _console(quiet: bool = False) -> Any:
    from rich.console import Console

    return Console(quiet=quiet, highlight=False)


def _spark(args: argparse.Namespace) -> Any:
    from deepspark.session import session

    return session(master=args.master, conf=dict(args.conf))


def _check_local_paths(paths: Sequence[str]) -> None:
    """Fail fast (exit 2) on local paths that do not exist; URIs are left to Spark."""
    for path in paths:
        if "://" in path or path.startswith("file:") or any(c in path for c in "*?["):
            continue
        if not os.path.exists(path):
            raise UsageError(f"no such file or folder: {path}")


def cmd_models(args: argparse.Namespace) -> int:
    from rich.table import Table

    from deepspark.models.zoo import list_models

    table = Table(title="Named models")
    for col in ("name", "task", "description", "weights from"):
        table.add_column(col)
    for m in list_models():
        table.add_row(m.name, m.task, m.description, m.package)
    _console().print(table)
    return EXIT_OK


def _format_topk(preds: list[Any] | None) -> str:
    if not preds:
        return ""
    return "\n".join(f"{p['probability']:.3f}  {p['description']}" for p in preds)


def cmd_predict(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from deepspark.io._files import list_files
    from deepspark.ml.image import DeepImagePredictor

    _check_local_paths(args.paths)
    if args.output:
        from deepspark.cli.output import output_format

        output_format(args.output)  # bad extension: usage error before Spark starts
    model_kwargs: dict[str, Any] = {}
    if os.path.exists(args.model) or args.model.endswith(".onnx"):
        model_kwargs["model"] = args.model
    else:
        from deepspark.models.zoo import get_named_model

        model_kwargs["modelName"] = get_named_model(args.model).name

    console = _console(args.quiet)
    started = time.time()
    spark = _spark(args)
    files = list_files(spark, args.paths)
    if args.limit:
        files = files.limit(args.limit)
    predictor = DeepImagePredictor(
        inputCol="content", topK=args.top_k, batchSize=args.batch_size, **model_kwargs
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
        _print_table(console, written.orderBy("path").limit(args.show).collect(), args.top_k)
    if not args.quiet:
        rows, errors = summary["rows"], summary["errors"]
        console.print(
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepspark`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except (UsageError, InputNotFoundError, ModelNotFoundError, InvalidParameterError) as exc:
        print(f"deepspark {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except MissingDependencyError as exc:
        print(f"deepspark {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DeepSparkError as exc:
        print(f"deepspark {args.command}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"deepspark {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a failed Spark job: one line, exit 1
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"deepspark {args.command}: failed: {first}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

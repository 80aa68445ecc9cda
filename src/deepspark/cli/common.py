"""Options, Spark start-up and console helpers shared by the CLI commands."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

__all__ = [
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "UsageError",
    "add_io_options",
    "add_spark_options",
    "console",
    "spark_session",
    "check_local_paths",
    "positive_int",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line; exit code 2."""


def conf_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--conf needs key=value, got {text!r}")
    return key.strip(), value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def add_spark_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Spark")
    g.add_argument(
        "--master", default=None, help="Spark master URL (default: local[*], or spark-submit's)"
    )
    g.add_argument(
        "--conf",
        action="append",
        type=conf_pair,
        default=[],
        metavar="KEY=VALUE",
        help="Spark setting, repeatable (e.g. --conf spark.executor.memory=4g)",
    )


def add_io_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or globs (any Spark URI)")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="where to write every row: .parquet, .json or .csv (a folder of part files)",
    )
    p.add_argument("--batch-size", type=positive_int, default=64, help="rows per model call")
    p.add_argument("--limit", type=positive_int, default=None, help="process at most N files")
    p.add_argument("--show", type=int, default=20, help="rows to print in the table (0: none)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")



def console(quiet: bool = False) -> Any:
    """A rich console (silent with ``quiet``)."""
    from rich.console import Console

    return Console(quiet=quiet, highlight=False)


def spark_session(args: argparse.Namespace) -> Any:
    """The SparkSession for a command, from ``--master`` and ``--conf``."""
    from deepspark.session import session

    return session(master=args.master, conf=dict(args.conf))


def check_local_paths(paths: Sequence[str]) -> None:
    """Fail fast (exit 2) on local paths that do not exist; URIs are left to Spark."""
    for path in paths:
        if "://" in path or path.startswith("file:") or any(c in path for c in "*?["):
            continue
        if not os.path.exists(path):
            raise UsageError(f"no such file or folder: {path}")

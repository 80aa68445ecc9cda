"""Options, Spark start-up and console helpers shared by the CLI commands.

Every command follows the same pattern (see ``cli/predict.py``)::

    def register(sub):
        p = sub.add_parser("NAME", help=..., description=..., epilog=example("..."))
        add_io_options(p)          # PATH..., --output, --batch-size, --limit, -q, -v
        add_spark_options(p)       # --master, --conf
        p.set_defaults(func=run)

    def run(args):
        prepare(args)                              # logging; fails fast on bad paths/output
        spark = spark_session(args)                # JVM noise goes to a log file
        files, total, column = input_files(spark, args)   # --limit applied
        result = ...                                # a DataFrame with an ``error`` column
        return write_and_summarize(args, spark, result, total=total)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from deepspark._logging import logger
from deepspark.cli.progress import run_job  # re-exported: the helper commands call
from deepspark.session import local_master

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ArgumentParser",
    "UsageError",
    "add_console_options",
    "add_io_options",
    "add_spark_options",
    "check_local_paths",
    "check_output_path",
    "console",
    "example",
    "input_files",
    "number",
    "output_path",
    "positive_int",
    "prepare",
    "run_job",
    "setup_logging",
    "spark_log_path",
    "spark_session",
    "write_and_summarize",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line; exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line: ``deepspark predict: error: ...``.

    argparse prints the whole usage block before its error; a single line with a
    pointer to ``--help`` is easier to read in a terminal and in a CI log.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def example(*lines: str) -> str:
    """An ``--help`` epilog with one or more example command lines."""
    return "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(f"  {x}" for x in lines)


# --------------------------------------------------------------------------------------
# Option types and option groups
# --------------------------------------------------------------------------------------


def conf_pair(text: str) -> tuple[str, str]:
    """``key=value`` -> ``(key, value)`` for ``--conf`` (Spark keys contain dots, no spaces)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or " " in key:
        raise argparse.ArgumentTypeError(f"--conf needs KEY=VALUE, got {text!r}")
    return key, value


def positive_int(text: str) -> int:
    """A whole number > 0 (``--batch-size``, ``--limit``...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def number(low: float, high: float | None = None) -> Any:
    """An argparse type: a number >= ``low`` (> ``low`` and < ``high`` when ``high`` is set).

    >>> number(0)("0.05"), number(0, 1)("0.5")
    (0.05, 0.5)
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if high is not None and not low < value < high:
            raise argparse.ArgumentTypeError(
                f"expected a number between {low} and {high}, got {text}"
            )
        if not value >= low:  # also NaN
            raise argparse.ArgumentTypeError(f"expected a number >= {low}, got {value}")
        return value

    return parse


def output_path(text: str) -> str:
    """An ``--output`` path ending in .parquet, .json, .jsonl or .csv."""
    from deepspark.cli.output import output_format
    from deepspark.errors import InvalidParameterError

    try:
        output_format(text)
    except InvalidParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_console_options(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose``."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing but errors (no progress, no summary)",
    )
    g.add_argument(
        "-v", "--verbose", action="store_true", help="also print deepspark's log messages"
    )


def add_spark_options(p: argparse.ArgumentParser) -> None:
    """``--master`` and repeatable ``--conf KEY=VALUE``."""
    g = p.add_argument_group("Spark")
    g.add_argument(
        "--master",
        default=None,
        metavar="URL",
        help="Spark master: local[*] (default), local[4], spark://host:7077, yarn, k8s://...",
    )
    g.add_argument(
        "--conf",
        action="append",
        type=conf_pair,
        default=[],
        metavar="KEY=VALUE",
        help="Spark setting, repeatable (e.g. --conf spark.executor.memory=4g)",
    )


def add_io_options(p: argparse.ArgumentParser, *, batch_size: int = 64) -> None:
    """Input paths, ``--output``, ``--batch-size``, ``--limit``, ``--show``, ``-q``, ``-v``."""
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="files, folders or globs (any Spark URI)"
    )
    g = p.add_argument_group("input and output")
    g.add_argument(
        "-o",
        "--output",
        type=output_path,
        default=None,
        metavar="PATH",
        help="write every row here; the format follows the extension: .parquet, .json or .csv "
        "(a folder of part files, as Spark writes)",
    )
    g.add_argument(
        "--batch-size",
        type=positive_int,
        default=batch_size,
        metavar="N",
        help="rows per model call (default: %(default)s)",
    )
    g.add_argument(
        "--limit", type=positive_int, default=None, metavar="N", help="process at most N files"
    )
    g.add_argument(
        "--show",
        type=int,
        default=20,
        metavar="N",
        help="rows to print in the table (default: %(default)s; 0: none)",
    )
    add_console_options(p)


# --------------------------------------------------------------------------------------
# Console and logging
# --------------------------------------------------------------------------------------


def console(quiet: bool = False) -> Any:
    """A rich console on stdout (silent with ``quiet``)."""
    from rich.console import Console

    return Console(quiet=quiet, highlight=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (not when created)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Show the ``deepspark`` logger on stderr: INFO with ``verbose``, ERROR with ``quiet``."""
    level = logging.INFO if verbose else logging.ERROR if quiet else logging.WARNING
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("deepspark: %(message)s"))
        logger.addHandler(handler)


def prepare(args: argparse.Namespace, *, paths: bool = True) -> None:
    """Common first steps of a command: logging, then fail fast on missing local paths
    and on an ``--output`` that writing would destroy."""
    setup_logging(getattr(args, "quiet", False), getattr(args, "verbose", False))
    if paths and getattr(args, "paths", None):
        check_local_paths(args.paths, args)
        check_output_path(args)


def check_output_path(args: argparse.Namespace) -> None:
    """Refuse (exit 2) a local ``--output`` that is a file or a folder of other things.

    Spark writes a folder of part files and replaces whatever is at the path: ``-o
    notes.json`` over the user's own file, or ``-o ~/Documents``, would delete it. A
    folder of earlier results (part files, ``_SUCCESS``, checksums) is replaced, as a
    rerun expects.
    """
    output = getattr(args, "output", None)
    if not output or ("://" in output and not output.startswith("file:")):
        return
    if not output.startswith("file:") and not default_fs_is_local(args):
        return
    from deepspark.io._files import local_path

    path = local_path(output) or output
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path):
        raise UsageError(
            f"--output {output} is an existing file; Spark writes a folder of part files "
            "and would replace it: choose a new path, or delete the file first"
        )
    foreign = sorted(e for e in os.listdir(path) if not e.startswith(("part-", "_", ".")))
    if foreign:
        raise UsageError(
            f"--output {output} is a folder that does not hold earlier results (it has "
            f"{foreign[0]!r}{' and others' if len(foreign) > 1 else ''}); writing would "
            "replace it: choose a new path"
        )


def check_local_paths(paths: Sequence[str], args: argparse.Namespace | None = None) -> None:
    """Fail fast (exit 2) on local paths that do not exist; URIs and globs are left to Spark.

    A path without a scheme is only checked here when Hadoop's default filesystem is
    surely the local one (see :func:`default_fs_is_local`): on a cluster whose default is
    HDFS, ``/data/photos`` is an HDFS folder, and Spark checks it once started (the same
    exit code, a few seconds later).
    """
    known_local: bool | None = None
    for path in paths:
        if "://" in path or path.startswith("file:") or any(c in path for c in "*?["):
            continue
        if known_local is None:
            known_local = default_fs_is_local(args)
        if known_local and not os.path.exists(path):
            raise UsageError(f"no such file or folder: {path}")


def default_fs_is_local(args: argparse.Namespace | None = None) -> bool:
    """Whether, before Spark starts, Hadoop's default filesystem is known to be local.

    It is unless the command names a non-local master (``--master`` or
    ``$DEEPSPARK_MASTER``), sets ``spark.hadoop.fs.defaultFS`` with ``--conf``, or the
    environment points at a Hadoop configuration (``$HADOOP_CONF_DIR``,
    ``$YARN_CONF_DIR``) whose ``core-site.xml`` names another ``fs.defaultFS``.
    """
    master = getattr(args, "master", None) or os.environ.get("DEEPSPARK_MASTER") or "local"
    if not local_master(master):
        return False
    conf = dict(getattr(args, "conf", None) or [])
    if "spark.hadoop.fs.defaultFS" in conf:
        return conf["spark.hadoop.fs.defaultFS"].startswith("file:")
    for var in ("HADOOP_CONF_DIR", "YARN_CONF_DIR"):
        folder = os.environ.get(var)
        if folder and not _core_site_default_fs(Path(folder, "core-site.xml")).startswith("file:"):
            return False
    return True


def _core_site_default_fs(core_site: Path) -> str:
    """``fs.defaultFS`` of a Hadoop ``core-site.xml`` (``file:///`` when unset or absent)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(core_site).getroot()
    except FileNotFoundError:
        return "file:///"
    except (OSError, ET.ParseError):
        return "unknown:"  # unreadable: leave the path to Spark
    for prop in root.iter("property"):
        if (prop.findtext("name") or "").strip() in ("fs.defaultFS", "fs.default.name"):
            return (prop.findtext("value") or "").strip() or "file:///"
    return "file:///"


# --------------------------------------------------------------------------------------
# Spark
# --------------------------------------------------------------------------------------

#: The file that receives the JVM's stderr (Spark's log) for this process, once started.
spark_log_path: Path | None = None


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Point file descriptor 2 at ``path`` for the duration, then restore it.

    The JVM that PySpark starts inherits fd 2 when it is spawned and keeps it after we
    restore ours, so Spark's start-up lines (``WARNING: Using incubator modules``...),
    its log4j output and the executors' Python stderr go to ``path``, while Python's
    own messages reach the terminal again.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)


def _new_log_path() -> Path:
    from deepspark.models.cache import cache_dir

    stamp = time.strftime("%Y%m%d-%H%M%S")
    return cache_dir("logs") / f"spark-{stamp}-{os.getpid()}.log"


def spark_session(args: argparse.Namespace) -> SparkSession:
    """The SparkSession for a command, from ``--master`` and ``--conf``.

    The JVM's stderr goes to ``~/.cache/deepspark/logs/spark-*.log`` (see
    :data:`spark_log_path`); a failed command prints where it is.
    """
    global spark_log_path
    from pyspark.sql import SparkSession

    from deepspark.session import session

    conf = dict(getattr(args, "conf", []) or [])
    master = getattr(args, "master", None)
    if SparkSession.getActiveSession() is not None:  # e.g. in a notebook or a test
        return session(master=master, conf=conf)
    path = _new_log_path()
    spark_log_path = path  # set first: a JVM that fails to start explains why in this file
    with _stderr_to(path):
        spark = session(master=master, conf=conf)
    logger.info(
        "Spark %s, master %s; Spark's log: %s", spark.version, spark.sparkContext.master, path
    )
    return spark


def input_files(
    spark: SparkSession, args: argparse.Namespace, count: bool = True
) -> tuple[DataFrame, int | None, str]:
    """The command's input files (``--limit`` applied), how many (None when ``count`` is
    False or unknown), and the column the transformers and readers read them from.

    Local files are listed on the driver (Python, Spark's listing rules) and read by the
    executors themselves, column "path": no ``binaryFile`` scan, no extra Spark job, and
    a file that cannot be read fails its own row; ``--limit`` keeps the first files by
    path. Other filesystems go through Spark's ``binaryFile`` source, column "content"
    (see :func:`deepspark.io._files.files_to_read`).
    """
    from deepspark.io._files import files_to_read

    files = files_to_read(spark, args.paths, limit=args.limit, count=count)
    return files.frame, files.count if count else None, files.column


def write_and_summarize(
    args: argparse.Namespace,
    spark: SparkSession,
    result: DataFrame,
    *,
    total: int | None,
    unit: str = "files",
    show: Callable[[Any, DataFrame], None] | None = None,
    progress_unit: str | None = None,
    extra: Callable[[DataFrame], str] | None = None,
) -> int:
    """Write ``result`` to ``--output`` (or a temporary Parquet) with progress, then summarize.

    ``total`` items of ``progress_unit`` (default ``unit``) are what progress counts;
    the summary counts the written rows, in ``unit``. ``show(console, written)`` prints
    a table of the written rows unless ``--quiet`` or ``--show 0``; ``extra(written)``
    is one more summary line (a command's own figures). Returns the exit code (0).
    """
    import shutil
    import tempfile

    from deepspark.cli.output import read_results, write_results
    from deepspark.cli.progress import print_summary, summarize

    out = console(args.quiet)
    if total == 0 and not args.quiet:  # exit 0 (nothing failed), but say why nothing shows
        print(
            f"deepspark {args.command}: warning: no input files in {' '.join(args.paths)} "
            "(an empty folder, only hidden '_'/'.' names, or no name matching the glob)",
            file=sys.stderr,
        )
    tmpdir = None
    output = args.output
    if output is None:
        tmpdir = tempfile.mkdtemp(prefix="deepspark-")
        output = os.path.join(tmpdir, "results.parquet")
    try:
        job = run_job(
            spark,
            lambda: write_results(result, output),
            total,
            args.quiet,
            progress_unit or unit,
            # One written row per item counted, unless progress counts something else
            # (embed: files in, one row per sentence out).
            count_rows=progress_unit in (None, unit),
        )
        written = read_results(spark, output, like=result)
        if show is not None and getattr(args, "show", 0) > 0 and not args.quiet:
            show(out, written)
        if not args.quiet:
            print_summary(out, summarize(written, job, output=args.output, unit=unit))
            if extra is not None:
                out.print(extra(written), markup=False)
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return EXIT_OK

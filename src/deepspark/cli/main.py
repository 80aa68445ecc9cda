"""``deepspark``: run deep-learning models over files on Spark from the command line.

Exit codes: 0 success, 1 the job failed, 2 usage error (bad option, missing path,
unknown model), each with a one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from deepspark.errors import (
    DeepSparkError,
    InputNotFoundError,
    InvalidParameterError,
    MissingDependencyError,
    ModelNotFoundError,
)

__all__ = ["build_parser", "main"]

from deepspark.cli import common
from deepspark.cli.common import EXIT_FAILED, EXIT_USAGE, ArgumentParser, UsageError

#: one module per command, each with register(subparsers); order = order in --help
COMMANDS = [
    "deepspark.cli.predict",
    "deepspark.cli.featurize",
    "deepspark.cli.embed",
    "deepspark.cli.models",
    "deepspark.cli.report",
    "deepspark.cli.detect_speech",
    "deepspark.cli.jvm_archive",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``deepspark`` command."""
    parser = ArgumentParser(
        prog="deepspark",
        description="Run deep-learning models over images, audio and text on Apache Spark.",
        epilog="Run 'deepspark COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _version() -> str:
    from deepspark import __version__

    return f"deepspark {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``deepspark`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's own parser, which points to its own --help
        commands = getattr(parser, "_subparsers", None)
        actions = commands._group_actions if commands else []
        chosen = actions[0].choices.get(getattr(args, "command", None)) if actions else None
        (chosen or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except (UsageError, InputNotFoundError, ModelNotFoundError, InvalidParameterError) as exc:
        print(f"deepspark {args.command}: error: {_cli_words(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except MissingDependencyError as exc:
        print(f"deepspark {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DeepSparkError as exc:
        print(f"deepspark {args.command}: failed: {exc}{_log_hint()}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"deepspark {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a failed Spark job: one line, exit 1
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = _java_cause(exc) or first
        if "stopped SparkContext" in first:  # Spark gave up; its log says why
            first = _why_spark_stopped(common.spark_log_path) or first
        if "JAVA_GATEWAY_EXITED" in first:
            refused = _jvm_start_error(common.spark_log_path)
            if refused is not None:  # spark-submit refused a setting: a usage error
                print(
                    f"deepspark {args.command}: error: Spark did not start: {refused} "
                    f"(check --master and --conf){_log_hint()}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            first += " Is Java 17+ installed, and JAVA_HOME right?"
        print(f"deepspark {args.command}: failed: {first}{_log_hint()}", file=sys.stderr)
        return EXIT_FAILED


#: The library's messages name Python arguments; on the command line, the options.
_CLI_WORDS = {
    "pass model=<path>": "pass --model FILE",
    "recheckMargin=": "--recheck-margin ",
    "recheckMargin": "--recheck-margin",
    "quantize='int8'": "--quantize int8",
}


def _cli_words(message: str) -> str:
    for python, cli in _CLI_WORDS.items():
        message = message.replace(python, cli)
    return message


def _java_cause(exc: BaseException) -> str | None:
    """The innermost Java exception of a Py4J error, whose own text only names the call
    ("An error occurred while calling o99.save."); None for other errors."""
    cause = getattr(exc, "java_exception", None)
    if cause is None:
        return None
    try:
        for _ in range(20):  # a cause chain, never a cycle in practice
            inner = cause.getCause()
            if inner is None or inner.equals(cause):
                break
            cause = inner
        text = str(cause.toString()).strip()
    except Exception:  # noqa: BLE001 - the JVM may be gone: keep the Python text
        return None
    return text.splitlines()[0][:500] if text else None


def _jvm_start_error(log: Path | None) -> str | None:
    """Why spark-submit or the JVM refused its settings, from Spark's log; None for
    other failures (no Java, say).

    A well-formed but invalid ``--conf`` (``spark.executor.memory=abc``), an unknown
    ``--master`` or a driver memory the JVM cannot parse makes the JVM exit before
    Spark starts, and PySpark only reports that the Java gateway exited; the reason is
    in the log the JVM's stderr went to.
    """
    text = _log_text(log)
    lines = [line.strip() for line in text.splitlines()]
    if "org.apache.spark.deploy.SparkSubmit" in text:  # spark-submit refused it
        for line in lines:
            if line.startswith('Exception in thread "main" ') and ": " in line:
                return line.split(": ", 1)[1].strip()[:300] or None
    if "Error: Could not create the Java Virtual Machine." in lines:  # the JVM did
        at = lines.index("Error: Could not create the Java Virtual Machine.")
        reasons = [x for x in lines[:at] if x and not x.startswith("WARNING")]
        return (reasons[-1] if reasons else lines[at])[:300]
    return None


def _why_spark_stopped(log: Path | None) -> str | None:
    """The reason Spark's log gives for killing the application (a standalone master
    that never answered: "All masters are unresponsive! Giving up."), or None."""
    for line in _log_text(log).splitlines():
        if "Application has been killed. Reason: " in line:
            reason = line.split("Reason: ", 1)[1].strip()[:300]
            hint = " (is the master --master names running and reachable?)"
            return "Spark stopped: " + reason + (hint if "masters" in reason else "")
    return None


def _log_text(log: Path | None) -> str:
    """Spark's log (the JVM's stderr), or "" when there is none to read."""
    try:
        return log.read_text(errors="replace") if log is not None else ""
    except OSError:
        return ""


def _log_hint() -> str:
    """Where Spark's own log went (the JVM's stderr is kept out of the terminal)."""
    path = common.spark_log_path
    return f" (Spark's log: {path})" if path else ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""CLI fixtures: one real ``deepspark predict`` run shared by the CLI test modules."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from deepspark.cli.main import main


@pytest.fixture(scope="session")
def cli_spark() -> Iterator[object]:
    """The local[2] session that in-process CLI runs pick up (one JVM for tests/cli).

    The commands reuse an active session; a module that stops it (the root ``spark``
    fixture does) only makes the next command start a new one.
    """
    from pyspark.sql import SparkSession

    import deepspark

    session = SparkSession.getActiveSession() or deepspark.session(
        "local[2]", app_name="deepspark-cli-tests"
    )
    yield session
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


@pytest.fixture(scope="session")
def predicted(cli_spark: object, mixed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``deepspark predict mixed/ -o predictions.parquet --top-k 3``, run once in-process.

    stdout is captured, so it is not a terminal: progress comes as plain lines.
    """
    out = tmp_path_factory.mktemp("predict") / "predictions.parquet"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["predict", str(mixed_dir), "--output", str(out), "--top-k", "3"])
    return {"code": code, "stdout": stdout.getvalue(), "output": out}

"""CLI fixtures: one real ``deepspark predict`` run shared by the CLI test modules."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from deepspark.cli.main import main


@pytest.fixture()
def cli_spark() -> object:
    """The live local[2] session that in-process CLI runs pick up (one JVM for tests/cli).

    Looked up per test: a test module elsewhere may have stopped the session (the root
    ``spark`` fixture stops it), and the commands then start a new one, as they would.
    """
    from pyspark.sql import SparkSession

    import deepspark

    return SparkSession.getActiveSession() or deepspark.session(
        "local[2]", app_name="deepspark-cli-tests"
    )


@pytest.fixture(scope="session")
def predicted(mixed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``deepspark predict mixed/ -o predictions.parquet --top-k 3``, run once in-process.

    stdout is captured, so it is not a terminal: progress comes as plain lines.
    """
    out = tmp_path_factory.mktemp("predict") / "predictions.parquet"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["predict", str(mixed_dir), "--output", str(out), "--top-k", "3"])
    return {"code": code, "stdout": stdout.getvalue(), "output": out}

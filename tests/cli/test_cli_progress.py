"""Progress from Spark's status tracker while a real job runs."""

from __future__ import annotations

import contextlib
import io
import re
import time
from pathlib import Path

import pytest

from deepspark.cli import progress
from deepspark.cli.progress import format_duration, run_job


@pytest.fixture(autouse=True)
def every_change(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain output: a line at every change of the count (not at most every 5 s)."""
    monkeypatch.setattr(progress, "PLAIN_MIN_S", 0.0)


def test_progress_moves_while_the_job_runs(cli_spark: object) -> None:
    spark = cli_spark
    rdd = spark.sparkContext.parallelize(range(8), 8)  # type: ignore[attr-defined]
    out = io.StringIO()

    def slow(_: object) -> None:  # defined here: pickled by value for the executors
        time.sleep(0.4)

    with contextlib.redirect_stdout(out):
        result = run_job(spark, lambda: rdd.foreach(slow), total=8)  # type: ignore[arg-type]
    counts = [int(m) for m in re.findall(r"progress: (\d+)/8 files", out.getvalue())]
    assert counts[-1] == 8 and out.getvalue().rstrip().endswith("done")
    # counts seen while tasks were still running, in order
    assert any(0 < c < 8 for c in counts), out.getvalue()
    assert counts == sorted(counts)
    assert result.elapsed_s >= 8 * 0.4 / 2  # two cores
    # the job group is cleared: later jobs are not tagged
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None  # type: ignore[attr-defined]


def test_quiet_job_prints_nothing(cli_spark: object) -> None:
    spark = cli_spark
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_job(spark, lambda: spark.range(10).count(), total=10, quiet=True)  # type: ignore[attr-defined]
    assert out.getvalue() == ""


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 59.6, 75, 3725)] == ["0:00", "1:00", "1:15", "1:02:05"]
    assert format_duration(None) == format_duration(float("inf")) == "?"


def _row_counts(spark: object, run: object, tmp_path: Path) -> list[int]:
    """Counts shown while 8 rows in 2 tasks (one per core) go through ``run`` (a
    deepspark task loop) and are written, with local row counting on."""
    from pyspark.sql.types import LongType

    from deepspark.ml._apply import task_udf

    udf = task_udf(run, LongType(), wrap_error=False)
    df = spark.range(0, 8, 1, 2).select(udf("id").alias("x"))  # type: ignore[attr-defined]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_job(
            spark,  # type: ignore[arg-type]
            lambda: df.write.parquet(str(tmp_path / "rows.parquet")),
            total=8,
            count_rows=True,
        )
    counts = [int(m) for m in re.findall(r"progress: (\d+)/8 files", out.getvalue())]
    assert counts[-1] == 8 and counts == sorted(counts), out.getvalue()
    # the folder property is cleared: later jobs record nothing
    assert spark.sparkContext.getLocalProperty("deepspark.progress.dir") is None  # type: ignore[attr-defined]
    return counts


def test_local_progress_counts_rows_within_tasks(cli_spark: object, tmp_path: Path) -> None:
    """Two tasks of 4 rows: finished tasks' shares alone could only show 0, 4 or 8."""

    def slow_rows(arrays):  # type: ignore[no-untyped-def]  # pickled by value
        for arr in arrays:
            time.sleep(0.7)
            yield arr

    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = cli_spark.conf.get(key)  # type: ignore[attr-defined]
    cli_spark.conf.set(key, "1")  # type: ignore[attr-defined]  # one row per Arrow batch
    try:
        counts = _row_counts(cli_spark, slow_rows, tmp_path)
    finally:
        cli_spark.conf.set(key, before)  # type: ignore[attr-defined]
    assert any(c not in (0, 4, 8) for c in counts), counts


def test_local_progress_counts_rows_a_loop_reports_within_a_batch(
    cli_spark: object, tmp_path: Path
) -> None:
    """One output batch per task (as a task of up to 256 photos makes): the rows the
    loop reports as it goes (what the image engine does per chunk) move the count."""

    def one_batch(arrays):  # type: ignore[no-untyped-def]  # pickled by value
        from deepspark.runtime import _progress

        for arr in arrays:
            for _ in range(len(arr)):
                time.sleep(0.7)
                _progress.add(1)
            yield arr

    counts = _row_counts(cli_spark, one_batch, tmp_path)
    assert any(c not in (0, 4, 8) for c in counts), counts


def test_plain_lines_at_most_every_few_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """In a log, a count that moves at every poll prints one line per PLAIN_MIN_S."""
    monkeypatch.setattr(progress, "PLAIN_MIN_S", 3600.0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), progress._Display(10, "files", quiet=False) as shown:
        for done in range(1, 10):
            shown.update(done, elapsed=float(done))
        shown.update(10, elapsed=10.0, final=True)
    lines = out.getvalue().splitlines()
    assert [ln.split(",")[0] for ln in lines] == [
        "progress: 1/10 files (10%)",
        "progress: 10/10 files (100%)",
    ], lines
    assert lines[-1].endswith("done")


def test_local_progress_counts_photos_the_image_engine_infers(
    cli_spark: object, tmp_path: Path
) -> None:
    """The real image engine: each task gets its 32 paths in one Arrow batch and
    outputs one batch, so only the engine's per-chunk reports (``batchSize`` 2) can
    show counts other than 0, 32 and 64. A model slow enough for a task to take
    seconds (8 convolutions of 64 filters at 128x128, ~80 ms a photo) lets the driver
    poll within tasks."""
    import deepspark
    from tests.reliability._reliability import (
        predictor_kwargs,
        tiny_onnx_classifier,
        write_jpegs,
    )

    photos = tmp_path / "photos"
    write_jpegs(photos, 64)
    model = tiny_onnx_classifier(tmp_path / "slow.onnx", size=128, conv_channels=64, conv_layers=8)
    files = deepspark.list_paths(cli_spark, str(photos), num_partitions=2)  # type: ignore[arg-type]
    predictor = deepspark.DeepImagePredictor(
        **{**predictor_kwargs(model, 128), "batchSize": 2}, inputCol="path"
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_job(
            cli_spark,  # type: ignore[arg-type]
            lambda: predictor.transform(files).write.parquet(str(tmp_path / "out.parquet")),
            total=64,
            count_rows=True,
        )
    counts = [int(m) for m in re.findall(r"progress: (\d+)/64 files", out.getvalue())]
    assert counts and counts[-1] == 64 and counts == sorted(counts), out.getvalue()
    assert any(c not in (0, 32, 64) for c in counts), counts

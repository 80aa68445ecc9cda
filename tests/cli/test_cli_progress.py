"""Progress from Spark's status tracker while a real job runs."""

from __future__ import annotations

import contextlib
import io
import re
import time

from deepspark.cli.progress import format_duration, run_job


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

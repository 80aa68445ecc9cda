"""Live job progress from Spark's status tracker, and the end-of-job summary.

While a Spark action runs (a write, typically), a thread polls
``SparkContext.statusTracker()`` for the tasks of the action's latest job and turns the
share of finished tasks into files done out of the total known from the listing, with
a rate and an ETA. It is drawn with rich on a terminal, as plain lines otherwise (a
log, a CI job), and not at all with ``--quiet``.

Spark reports progress per finished task, so from the status tracker alone the count
is an estimate that moves in steps of one task's share of the files; a job of few
tasks (one per core, as a local path list is split) advances in few steps. In a local
session, when the items counted are the rows the job writes, the tasks also record the
rows they have output so far (:mod:`deepspark.runtime._progress`) and the count moves
with them. An action that runs several jobs (adaptive execution materializes a join's
shuffle first) starts counting again for each job, and the display says which job it
is on.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

__all__ = [
    "JobResult",
    "Summary",
    "format_duration",
    "print_summary",
    "run_job",
    "summarize",
    "task_fraction",
]

#: seconds between two polls of the status tracker
POLL_S = 0.5
#: seconds between two plain progress lines when nothing changed
PLAIN_HEARTBEAT_S = 10.0
#: plain output (a log, a CI job): at most one line per this many seconds while the
#: count moves (local row counts move at nearly every poll)
PLAIN_MIN_S = 5.0


@dataclass
class JobResult:
    """What :func:`run_job` measured: wall time of the action and the total it expected."""

    elapsed_s: float
    total: int | None
    value: Any = None


@dataclass
class Summary:
    """End-of-job figures printed by :func:`print_summary`."""

    rows: int
    errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    output: str | None = None
    unit: str = "files"

    @property
    def ok(self) -> int:
        return self.rows - sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0


def format_duration(seconds: float | None) -> str:
    """``75`` -> ``"1:15"``; ``None`` or not finite -> ``"?"``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def task_fraction(spark: SparkSession, group: str) -> tuple[int, float | None]:
    """``(step, share)`` for the Spark jobs of job group ``group``.

    ``step`` counts the jobs started so far and ``share`` is the share of finished tasks
    in the latest one (None before it has tasks). One action may run several jobs
    (adaptive query execution materializes a join's shuffle first, for example); the
    latest job is the one running, so its share is what moves.
    """
    tracker = spark.sparkContext.statusTracker()
    job_ids = sorted(tracker.getJobIdsForGroup(group))
    if not job_ids:
        return 0, None
    info = tracker.getJobInfo(job_ids[-1])
    done = tasks = 0
    for stage_id in info.stageIds if info is not None else []:
        stage = tracker.getStageInfo(stage_id)
        if stage is None:  # not started yet, or skipped
            continue
        tasks += stage.numTasks
        done += stage.numCompletedTasks
    return len(job_ids), (done / tasks if tasks else None)


class _Display:
    """Draws progress: a rich bar on a terminal, plain lines otherwise, nothing if quiet."""

    def __init__(self, total: int | None, unit: str, quiet: bool) -> None:
        from rich.console import Console

        self.total, self.unit, self.quiet = total, unit, quiet
        self.console = Console(quiet=quiet, highlight=False)
        self.live = self.console.is_terminal and not quiet
        self.progress: Any = None
        self.task: Any = None
        self.last_shown: tuple[int | None, int] | None = None
        self.last_line_at = 0.0

    def __enter__(self) -> _Display:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TextColumn("{task.fields[rate]}"),
                TextColumn("elapsed {task.fields[elapsed]}"),
                TextColumn("ETA {task.fields[eta]}"),
                console=self.console,
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "running", total=self.total, rate="", elapsed="0:00", eta="?"
            )
        return self

    def update(self, done: int | None, elapsed: float, final: bool = False, step: int = 0) -> None:
        if self.quiet:
            return
        rate = (done / elapsed) if done and elapsed > 0 else None
        eta = 0.0 if final else None
        if rate and self.total is not None and done is not None:
            eta = (self.total - done) / rate
        rate_text = f"{rate:.1f} {self.unit}/s" if rate else f"- {self.unit}/s"
        if self.live:
            self.progress.update(
                self.task,
                completed=done or 0,
                description="done"
                if final
                else "running" + (f" (Spark job {step})" if step > 1 else ""),
                rate=rate_text,
                elapsed=format_duration(elapsed),
                eta=format_duration(eta),
            )
            return
        total = "?" if self.total is None else str(self.total)
        pct = f" ({100 * (done or 0) / self.total:.0f}%)" if self.total else ""
        job = "" if final or step < 2 else f" (Spark job {step})"
        line = f"progress{job}: {done if done is not None else 0}/{total} {self.unit}{pct}, {rate_text}"
        now = time.monotonic()
        since = now - self.last_line_at
        moved = (done, step) != self.last_shown and since >= PLAIN_MIN_S
        if final or moved or since >= PLAIN_HEARTBEAT_S:
            eta_text = "done" if final else f"ETA {format_duration(eta)}"
            self.console.print(f"{line}, elapsed {format_duration(elapsed)}, {eta_text}")
            self.last_shown, self.last_line_at = (done, step), now

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def run_job(
    spark: SparkSession,
    write_fn: Callable[[], Any],
    total: int | None,
    quiet: bool = False,
    unit: str = "files",
    count_rows: bool = False,
) -> JobResult:
    """Call ``write_fn()`` (a Spark action) while showing its progress.

    Parameters
    ----------
    spark : SparkSession
    write_fn : callable
        Runs the action, e.g. ``lambda: df.write.parquet(path)``. Its jobs are tagged
        with a job group so that only they are counted.
    total : int or None
        Number of input items (files) the action processes; None shows counts of tasks'
        share only.
    quiet : bool
        Draw nothing.
    unit : str
        What is counted ("files", "rows").
    count_rows : bool
        The action writes one row per item counted: in a local session, count the rows
        deepspark's transformers have output so far instead of finished tasks' shares.

    Returns
    -------
    JobResult
        ``elapsed_s``, ``total`` and ``write_fn``'s return value.

    Examples
    --------
    >>> from deepspark.cli.progress import run_job
    >>> run_job(spark, lambda: df.write.parquet("out.parquet"), total=120)  # doctest: +SKIP
    progress: 120/120 files (100%), 31.2 files/s, elapsed 0:04, done
    """
    import shutil
    import tempfile

    from deepspark.runtime import _progress
    from deepspark.session import local_master

    sc = spark.sparkContext
    group = f"deepspark-{uuid.uuid4().hex[:12]}"
    sc.setJobGroup(group, "deepspark job")
    # Executors of a local session share the driver's filesystem: tasks record their
    # rows in this folder (thread-local property: only this action's jobs see it).
    rows_dir = None
    if count_rows and total is not None and not quiet and local_master(sc.master):
        rows_dir = tempfile.mkdtemp(prefix="deepspark-progress-")
        sc.setLocalProperty(_progress.PROPERTY, rows_dir)
    started = time.monotonic()
    stop = threading.Event()

    def done_count() -> tuple[int, int | None]:
        try:
            step, frac = task_fraction(spark, group)
        except Exception:  # noqa: BLE001 - progress must never break the job
            return 0, None
        if total is None:
            return step, None
        done = int((frac or 0.0) * total)
        if rows_dir is not None:
            done = max(done, min(total, _progress.rows_done(rows_dir)))
        return step, done

    with _Display(total, unit, quiet) as display:

        def poll() -> None:
            while not stop.wait(POLL_S):
                step, done = done_count()
                display.update(done, time.monotonic() - started, step=step)

        thread = threading.Thread(target=poll, name="deepspark-progress", daemon=True)
        if not quiet:
            thread.start()
        try:
            value = write_fn()
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()
            sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
            sc.setLocalProperty("spark.job.description", None)  # type: ignore[arg-type]
            if rows_dir is not None:
                sc.setLocalProperty(_progress.PROPERTY, None)  # type: ignore[arg-type]
                shutil.rmtree(rows_dir, ignore_errors=True)
        elapsed = time.monotonic() - started
        display.update(total, elapsed, final=True)
    return JobResult(elapsed_s=elapsed, total=total, value=value)


def summarize(
    written: DataFrame,
    job: JobResult,
    output: str | None = None,
    error_col: str = "error",
    unit: str = "files",
) -> Summary:
    """Count rows and errors by reason in the written results (one small Spark job)."""
    errors: Counter[str] = Counter()
    rows = 0
    if error_col in written.columns:
        for row in written.groupBy(error_col).count().collect():
            rows += row["count"]
            if row[error_col]:
                errors[str(row[error_col])] += row["count"]
    else:
        rows = written.count()
    return Summary(rows=rows, errors=errors, elapsed_s=job.elapsed_s, output=output, unit=unit)


def print_summary(console: Any, summary: Summary, max_reasons: int = 10) -> None:
    """Print the summary: rows, ok, errors by reason, throughput and the output path."""
    n_err = sum(summary.errors.values())
    console.print(
        f"[bold]{summary.rows}[/bold] {summary.unit}: {summary.ok} ok, {n_err} errors "
        f"in {format_duration(summary.elapsed_s)} ({summary.rate:.1f} {summary.unit}/s)"
    )
    for reason, count in summary.errors.most_common(max_reasons):
        console.print(f"  {count:>6}  {reason}", markup=False)
    if len(summary.errors) > max_reasons:
        console.print(f"  ... and {len(summary.errors) - max_reasons} other reasons")
    if summary.output:
        console.print(f"results: {summary.output}", markup=False)

"""Rows done so far in each task, for live progress in local sessions.

Spark updates a task's metrics, and its status tracker's counts, only when the task
ends. With one task per core (how deepspark splits a path list on one machine), the
CLI's progress then moved in halves on 2 cores. When the driver sets the local
property :data:`PROPERTY` to a folder, each task of that job records in it how many
rows it has done so far (one small file per task, rewritten at most every
:data:`INTERVAL_S` seconds and when the task ends), and the driver adds them up. A
task's count is the rows it has output, or the rows its loop reported with
:func:`add` within the output batch it is working on. The
folder must be one the executors and the driver share: the CLI sets it for local
masters only.

Recording never fails a task: an unwritable folder only means no live count.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["INTERVAL_S", "PROPERTY", "add", "counted", "rows_done"]

#: Local property (``SparkContext.setLocalProperty``) naming the progress folder.
PROPERTY = "deepspark.progress.dir"

#: Seconds between two rewrites of a task's count.
INTERVAL_S = 0.5


def _task_file() -> str | None:
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        folder = ctx.getLocalProperty(PROPERTY) if ctx is not None else None
    except Exception:  # noqa: BLE001 - outside a task, or an older pyspark
        return None
    if not folder:
        return None
    # One file per stage and partition: a retried task starts its count again.
    return os.path.join(folder, f"{ctx.stageId()}-{ctx.partitionId()}")


def _record(path: str, rows: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(str(rows))
        os.replace(tmp, path)  # the driver never reads a half-written count
    except OSError:
        pass


class _Task:
    """One task's count: rows its loop reported (:func:`add`) or it output, whichever
    is more, rewritten to its file at most every :data:`INTERVAL_S` seconds."""

    def __init__(self, path: str) -> None:
        self.path, self.added, self.output = path, 0, 0
        self.last = time.monotonic()

    def update(self) -> None:
        if time.monotonic() - self.last >= INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        _record(self.path, max(self.added, self.output))
        self.last = time.monotonic()


_current: _Task | None = None


def add(rows: int) -> None:
    """Report ``rows`` more rows done inside the running task's current output batch.

    For loops whose output batches are large (Spark's Arrow batches, 256 rows by
    default): the image engine calls it per inferred chunk. A no-op outside
    :func:`counted`.
    """
    task = _current
    if task is not None:
        task.added += rows
        task.update()


def counted(arrays: Iterator[Any]) -> Iterator[Any]:
    """Pass a task's output Arrow arrays through, recording the rows done so far."""
    global _current
    path = _task_file()
    if path is None:
        yield from arrays
        return
    task = _current = _Task(path)
    try:
        for arr in arrays:
            task.output += len(arr)
            task.update()
            yield arr
        task.flush()
    finally:
        _current = None


def rows_done(folder: str) -> int:
    """The rows the tasks recorded in ``folder`` so far (0 if none yet).

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _record(os.path.join(d, "3-0"), 5); _record(os.path.join(d, "3-1"), 7)
    >>> rows_done(d)
    12
    """
    total = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.endswith(".tmp"):
            continue
        try:
            with open(os.path.join(folder, name)) as f:
                total += int(f.read() or 0)
        except (OSError, ValueError):
            continue
    return total

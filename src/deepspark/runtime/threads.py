"""Thread settings for inference inside Spark tasks.

Spark runs one task per ``spark.task.cpus`` cores at a time, each in its own Python
worker. A framework that starts one thread per core in every worker would run
cores x tasks threads and thrash; each worker gets its task's CPU share instead.
"""

from __future__ import annotations

import os

from deepspark.runtime.preprocess import cpu_count

__all__ = ["task_threads", "task_gpu"]


def task_threads(requested: int | None = None) -> int:
    """Threads a model may use in this task.

    ``requested`` (a transformer's ``numThreads`` > 0) wins, then
    ``$DEEPSPARK_THREADS``, then the running task's CPU allocation
    (``TaskContext.cpus()``), then all cores of this process (outside Spark).
    """
    if requested and requested > 0:
        return int(requested)
    env = os.environ.get("DEEPSPARK_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        if ctx is not None:
            return max(1, int(ctx.cpus()))
    except Exception:  # noqa: BLE001 - outside a task
        pass
    return cpu_count()


def task_gpu() -> int | None:
    """The GPU address Spark assigned to this task (resource ``gpu``), if any."""
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        if ctx is None:
            return None
        gpus = ctx.resources().get("gpu")
        if gpus is not None and gpus.addresses:
            return int(gpus.addresses[0])
    except Exception:  # noqa: BLE001
        return None
    return None

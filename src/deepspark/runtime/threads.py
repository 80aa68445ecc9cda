"""Thread settings for inference inside Spark tasks.

Spark runs one task per ``spark.task.cpus`` cores at a time, each in its own Python
worker. A framework that starts one thread per core in every worker would run
cores x tasks threads and thrash; each worker gets its task's CPU share instead.
"""

from __future__ import annotations

import os

from deepspark.errors import InvalidParameterError
from deepspark.runtime.preprocess import cpu_count

__all__ = ["task_gpu", "task_threads"]


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
    except Exception:  # noqa: BLE001, S110 - outside a task
        pass
    return cpu_count()


def task_gpu() -> int | None:
    """The GPU this task runs its model on, or None for the CPU.

    ``$DEEPSPARK_DEVICE`` wins when set: ``"cpu"``, ``"cuda"`` (GPU 0) or ``"cuda:N"``
    (for a single-GPU machine in local mode, where Spark schedules no GPUs). Otherwise
    the first address of the ``gpu`` resource Spark assigned to the running task
    (``spark.task.resource.gpu.amount``); None outside a task or without one.

    Examples
    --------
    >>> import os
    >>> os.environ["DEEPSPARK_DEVICE"] = "cuda:1"
    >>> task_gpu()
    1
    >>> os.environ["DEEPSPARK_DEVICE"] = "cpu"
    >>> task_gpu() is None
    True
    >>> del os.environ["DEEPSPARK_DEVICE"]
    """
    forced = os.environ.get("DEEPSPARK_DEVICE", "").strip().lower()
    if forced:
        return _parse_device(forced)
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        if ctx is None:
            return None
        gpus = ctx.resources().get("gpu")
        if gpus is not None and gpus.addresses:
            # Discovery scripts report CUDA ordinals ("0", "1"); anything else (a UUID)
            # cannot be passed to a framework as a device index.
            return int(gpus.addresses[0])
    except (ImportError, ValueError):
        return None
    return None


def _parse_device(value: str) -> int | None:
    if value == "cpu":
        return None
    if value == "cuda":
        return 0
    if value.startswith("cuda:") and value[5:].isdigit():
        return int(value[5:])
    raise InvalidParameterError(
        f"DEEPSPARK_DEVICE must be 'cpu', 'cuda' or 'cuda:N', got {value!r}"
    )

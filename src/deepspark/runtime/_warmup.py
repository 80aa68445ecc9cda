"""A local session's start-up work done in the background: imports and Python workers.

The first job of a fresh local session paid, before its first inference, for work that
does not depend on the job at all (timeline of a 2,000-photo EfficientNet job on a
2-core machine):

* on the driver, importing ``pyspark.ml`` (and SciPy through it) and deepspark's
  transformer modules: 0.4-0.5 s, while the JVM had been idle for seconds during
  :func:`deepspark.session`;
* on the executor, Spark starting its Python daemon and forking one worker per core,
  each importing deepspark's executor modules, ONNX Runtime and the JPEG decoders:
  1.1-1.3 s from task launch to the model load.

:func:`import_driver_modules` runs the first while the JVM starts, and
:func:`start_python_workers` the second while the caller goes on: a small job with one
task per core imports those modules in each worker and leaves it in Spark's pool of
idle workers (``spark.python.worker.reuse``), where the next Python task finds it.
Both are best-effort: any failure is dropped, the work then happens when first needed
as before. Only for local masters (:func:`deepspark.session`), where the executor runs
this interpreter; Spark stops idle workers after a minute, so a first job later than
that starts its own.

Nothing here loads a model: which model a job runs is known only at its ``transform``.
"""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from deepspark._deps import available

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = [
    "DRIVER_MODULES",
    "JOB_GROUP_PREFIX",
    "WORKER_MODULES",
    "import_driver_modules",
    "start_python_workers",
    "wait",
]

#: Imported on the driver while the JVM starts: what building a transformer and its
#: task imports (``pyspark.ml`` among them) beyond what ``SparkSession`` already has.
DRIVER_MODULES: tuple[str, ...] = (
    "deepspark.ml.image",
    "deepspark.models.api",
    "deepspark.models.resolve",
)

#: Imported in each prestarted Python worker, those not installed skipped: the image,
#: text and audio loops and readers, their decoders and tokenizer, and ONNX Runtime
#: (the engine of the named models). Not pandas (pyspark's Arrow UDFs do without it),
#: and not PyTorch or TensorFlow, whose imports cost seconds and hundreds of MB in
#: every worker, for jobs that may not use them.
WORKER_MODULES: tuple[str, ...] = (
    "deepspark.runtime.engine",
    "deepspark.runtime.text",
    "deepspark.runtime.audio",
    "deepspark.models.loader",
    "deepspark.models.onnx",
    "deepspark.io.images",
    "deepspark.io.text",
    "deepspark.io.audio",
    "PIL.Image",
    "simplejpeg",
    "tokenizers",
    "soundfile",
    "soxr",
    "onnxruntime",
)

#: Job group of the prestart job (a uuid follows); it is not one of the caller's jobs.
JOB_GROUP_PREFIX = "deepspark-prestart-"

_threads: list[threading.Thread] = []


def _import_all(modules: Sequence[str]) -> None:
    for name in modules:
        top = name.split(".", 1)[0]
        if top != "deepspark" and not available(top):
            continue
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - best-effort: imported again when needed
            continue


def _start(target: Any, name: str, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    _threads.append(thread)
    return thread


def import_driver_modules(modules: Sequence[str] = DRIVER_MODULES) -> threading.Thread:
    """Import ``modules`` in a background thread (started before the JVM is launched).

    The caller has already imported ``pyspark.sql``: what these import on top of it
    only waits for modules the main thread is importing, never the other way round, so
    the two threads cannot deadlock on Python's import locks.
    """
    return _start(_import_all, "deepspark-imports", tuple(modules))


def _prestart_partition(batches: Iterator[Any]) -> Iterator[Any]:
    """In a Python worker: import :data:`WORKER_MODULES`, return the worker's pid."""
    import os

    import numpy as np
    import pyarrow as pa

    from deepspark.runtime import _arrow  # pa.array would import pandas

    _import_all(WORKER_MODULES)
    for batch in batches:
        pid = np.full(batch.num_rows, os.getpid(), dtype=np.int64)
        yield pa.record_batch([_arrow.numeric(pid)], names=["pid"])


def _run_prestart(spark: SparkSession, workers: int) -> None:
    sc = spark.sparkContext
    try:
        # Thread-local in pyspark's pinned-thread mode: the caller's jobs are untouched.
        sc.setJobGroup(
            JOB_GROUP_PREFIX + uuid.uuid4().hex[:12], "deepspark: starting Python workers"
        )
        # One row per partition, one partition per core: the tasks run at once, so
        # each gets a worker of its own (sequential tasks would share one). The rows
        # come as list_paths sends its paths (an Arrow table to a local relation), so
        # that route's first use is warm on both sides too.
        from deepspark.io._files import paths_frame

        rows = paths_frame(spark, [str(i) for i in range(workers)], workers)
        rows.mapInArrow(_prestart_partition, "pid long").collect()
    except Exception:  # noqa: BLE001, S110 - stopped session or failed worker: the
        pass  # first real job starts its workers, as without prestarting


def start_python_workers(spark: SparkSession) -> threading.Thread | None:
    """Start one Python worker per core of a local session in the background.

    Returns the thread running the prestart job, or None when the session is not local
    or does not reuse Python workers (``spark.python.worker.reuse=false``).

    Examples
    --------
    >>> import deepspark
    >>> from deepspark.runtime import _warmup
    >>> spark = deepspark.session("local[2]")
    >>> _warmup.start_python_workers(spark) is not None
    True
    >>> _warmup.wait(120)
    True
    """
    from deepspark.session import local_master

    sc = spark.sparkContext
    if not local_master(sc.master):
        return None
    if sc.getConf().get("spark.python.worker.reuse", "true").strip().lower() == "false":
        return None  # each task forks a fresh worker: nothing would be kept for it
    return _start(_run_prestart, "deepspark-prestart", spark, max(1, sc.defaultParallelism))


def wait(timeout: float | None = None) -> bool:
    """Wait for the background work started so far; True if all of it has finished."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for thread in _threads:
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    alive = [t for t in _threads if t.is_alive()]
    _threads[:] = alive
    return not alive

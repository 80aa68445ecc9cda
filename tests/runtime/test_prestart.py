"""deepspark.session(prestart=...): the first job's start-up done in the background.

Each case runs in a fresh interpreter with its own JVM: what a session imported and
which Python workers it started can only be seen before any other job ran.
"""

from __future__ import annotations

from tests.runtime._fresh import results

_SCRIPT = """
import json, sys
import deepspark
from deepspark.runtime import _warmup

mode = sys.argv[1]
conf = {"spark.python.worker.reuse": "false"} if mode == "noreuse" else None
spark = deepspark.session("local[2]", prestart=mode != "off", conf=conf)
if mode == "noreuse":  # workers are not kept: no prestart job
    print("RESULT " + json.dumps({"thread": _warmup.start_python_workers(spark) is not None}))
    sys.exit(0)
if mode == "stop":  # stopped while the prestart job may still run: nothing may escape
    spark.stop()
    print("RESULT " + json.dumps({"finished": _warmup.wait(180)}))
    sys.exit(0)
finished = _warmup.wait(180)
driver_ml = "pyspark.ml" in sys.modules


def probe(batches):
    # The first code of this job in each worker: what had the worker imported before?
    import os, sys, time
    import numpy as np
    import pyarrow as pa
    from deepspark.runtime import _arrow

    seen = [m in sys.modules for m in ("onnxruntime", "deepspark.runtime.engine", "pandas")]
    time.sleep(0.5)  # both tasks at once: each takes a worker of its own
    for batch in batches:
        yield pa.record_batch(
            [_arrow.numeric(np.array([os.getpid()], dtype=np.int64)),
             _arrow.booleans(np.array(seen[:1])), _arrow.booleans(np.array(seen[1:2])),
             _arrow.booleans(np.array(seen[2:]))],
            names=["pid", "ort", "engine", "pandas"],
        )


rows = spark.range(2, numPartitions=2).mapInArrow(
    probe, "pid long, ort boolean, engine boolean, pandas boolean"
).collect()
groups = spark.sparkContext.statusTracker().getJobIdsForGroup()
print("RESULT " + json.dumps({
    "finished": finished,
    "driver_ml": driver_ml,
    "workers": [r.asDict() for r in rows],
    "ungrouped_jobs": len(groups),
}))
spark.stop()
"""


def test_prestarted_workers_serve_the_first_job_and_nothing_starts_without() -> None:
    runs = results(_SCRIPT, "on", "off", "stop", "noreuse", tag="RESULT ")
    (on, _), (off, _), (stopped, stopped_err), (noreuse, _) = runs

    # With prestart (the default): the driver imported pyspark.ml in the background,
    # and both workers of the session's first job had deepspark's engine and ONNX
    # Runtime imported before it ran (the prestart job's workers, reused), not pandas.
    assert on["finished"] and on["driver_ml"]
    assert len({w["pid"] for w in on["workers"]}) == 2
    assert all(w["ort"] and w["engine"] for w in on["workers"]), on
    assert not any(w["pandas"] for w in on["workers"]), on
    # The prestart job has its own job group: not counted among the caller's jobs.
    assert on["ungrouped_jobs"] == 1, on

    # prestart=False: nothing imported ahead, fresh workers.
    assert not off["driver_ml"]
    assert not any(w["ort"] or w["engine"] for w in off["workers"]), off

    # A session stopped at once: the background work ends quietly.
    assert stopped["finished"]
    assert "Traceback" not in stopped_err and "Exception in thread" not in stopped_err, stopped_err[
        -3000:
    ]

    # Workers not reused (spark.python.worker.reuse=false): none started ahead.
    assert noreuse["thread"] is False

"""Fixtures for reliability tests: a real standalone cluster, generated photos, tiny models.

``cluster`` starts a Spark standalone master and two one-core workers on 127.0.0.1 with
pyspark's own ``bin/spark-class`` (once per test session) and always kills them.
``cluster_spark`` is a SparkSession on it. Executors run ``$PYSPARK_PYTHON`` (this venv,
where deepspark is installed) and get model files through ``SparkContext.addFile``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _reliability import (
    StandaloneCluster,
    stop_active_session,
    tiny_onnx_classifier,
    wait_executors,
    write_jpegs,
)

#: Settings of every session on the test cluster.
CLUSTER_CONF = {
    "spark.executor.cores": "1",
    "spark.cores.max": "2",
    "spark.executor.memory": "512m",
    # A task may fail (killed worker, lost executor) and run again elsewhere.
    "spark.task.maxFailures": "4",
    # ~15 small files per task, so a job over a few hundred has ~20 tasks to fail in.
    "spark.sql.files.maxPartitionBytes": "1m",
    "spark.sql.shuffle.partitions": "4",
}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A standalone master + two one-core workers on 127.0.0.1; always stopped."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime: a Spark standalone cluster needs java 17+")
    cluster = StandaloneCluster(tmp_path_factory.mktemp("cluster"), workers=2)
    # SIGTERM (a CI timeout, `timeout`, kill) would end the interpreter without running
    # finalizers: turn it into SystemExit so the daemons are killed on the way out.
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def cluster_spark(cluster: StandaloneCluster) -> Iterator[object]:
    """A SparkSession on :func:`cluster` (both executors up before it is returned)."""
    import deepspark

    stop_active_session()
    spark = deepspark.session(
        cluster.master_url, app_name="deepspark-cluster-tests", conf=CLUSTER_CONF
    )
    wait_executors(spark, 2)
    yield spark
    spark.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cheap ONNX classifier: input float32[N,3,32,32] -> logits[N,10]."""
    return tiny_onnx_classifier(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def busy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier with real convolution work, so a job over a few hundred images
    lasts long enough (tasks of seconds) to inject a fault in its middle and retry one
    that hit a worker between tasks. 64 filters: ~22 ms per image on one AVX-512 core;
    the 32 filters used before took 8 ms there, tasks lasted under a second and most
    kills landed between tasks."""
    return tiny_onnx_classifier(
        tmp_path_factory.mktemp("models") / "busy.onnx", size=64, conv_channels=64, conv_layers=9
    )


@pytest.fixture(scope="session")
def jpeg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 small generated JPEGs."""
    folder = tmp_path_factory.mktemp("jpegs")
    write_jpegs(folder, 300)
    return folder

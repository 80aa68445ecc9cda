"""A local SparkSession with settings that suit deep-learning inference.

Any SparkSession a user brings works with deepspark; :func:`session` is a convenience
for scripts, notebooks and the CLI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = ["DEFAULT_CONF", "LOCAL_JVM_OPTIONS", "session"]

#: Settings applied by :func:`session` unless the caller overrides them.
DEFAULT_CONF: dict[str, str] = {
    # Python workers are reused, so a model loaded by one task serves the next ones.
    "spark.python.worker.reuse": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Image files are large rows: keep Arrow batches small so memory stays bounded.
    "spark.sql.execution.arrow.maxRecordsPerBatch": "256",
    # Many small files: a file costs its size, not Spark's default 4 MB, when packing
    # partitions, so tasks get a balanced count of files. Up to 64 MB per task (~600
    # photos of 40 KB, ~12 s of a small CNN on a core): each task boundary costs a
    # Python worker ~0.4 s, which 16 MB tasks (~3 s) paid every few seconds (binaryFile
    # route, 2,000 photos: 14 tasks -> 4, median job 24.7 -> 22.7 s).
    "spark.sql.files.openCostInBytes": "65536",
    "spark.sql.files.maxPartitionBytes": "64m",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "2g",
    "spark.sql.session.timeZone": "UTC",
}


#: JVM options of a local session's JVM (driver and executor in one), unless
#: ``spark.driver.extraJavaOptions`` is given. There the JVM only moves rows between
#: files and Python workers, and its optimising JIT compiler (C2) and G1's concurrent
#: threads were ~half of its CPU time in a 2,000-photo job (7-9 of 37-42 CPU seconds
#: on 2 cores, taken from inference); the quick compiler alone and the serial
#: collector halve that. Cluster executors keep their JVM defaults.
LOCAL_JVM_OPTIONS: list[str] = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]


def local_master(master: str) -> bool:
    """Whether a Spark master runs its executors on this machine (``local``,
    ``local[N]``, ``local-cluster[...]``): they share the driver's CPU and filesystem.

    Examples
    --------
    >>> local_master("local[*]"), local_master("spark://host:7077")
    (True, False)
    """
    return master.startswith("local")


def _log4j_options() -> str:
    from importlib import resources  # not at import: every Python worker imports deepspark

    conf = resources.files("deepspark") / "resources" / "log4j2.properties"
    return f"-Dlog4j2.configurationFile=file:{conf}"


def session(
    master: str | None = None,
    app_name: str = "deepspark",
    conf: Mapping[str, str] | None = None,
    quiet: bool = True,
    prestart: bool = True,
) -> SparkSession:
    """Return a SparkSession with sensible defaults for deepspark.

    If a session is already active it is returned unchanged (its settings are kept), so
    calling this from code that runs under ``spark-submit`` is harmless.

    Parameters
    ----------
    master : str, optional
        Spark master URL. Defaults to ``$DEEPSPARK_MASTER`` or ``local[*]``; an
        existing ``spark.master`` setting (e.g. from ``spark-submit``) wins over both.
    app_name : str
        Application name shown by the cluster manager.
    conf : mapping, optional
        Extra Spark settings; they override :data:`DEFAULT_CONF`. A local master's JVM
        also starts with :data:`LOCAL_JVM_OPTIONS` (quick JIT compiler, serial GC) and
        maps the class archive built by ``deepspark jvm-archive`` when there is one
        (:mod:`deepspark.runtime.jvm_archive`), unless ``spark.driver.extraJavaOptions``
        is given here.
    quiet : bool
        Keep Spark's log output to errors only.
    prestart : bool
        For a local master, do the first job's job-independent start-up in the
        background (:mod:`deepspark.runtime._warmup`): import the transformer modules
        while the JVM starts, then start one Python worker per core with deepspark's
        executor modules, ONNX Runtime and the decoders imported. The first job of a
        session then starts its first inference ~1.2 s sooner; a job started the
        moment the session is up shares the cores with that work (on 2 cores,
        start-up plus first job was then about the same: docs/benchmarks.md, "Ninth
        round"). No model is loaded before a job names one. ``False`` starts nothing
        ahead.

    Returns
    -------
    pyspark.sql.SparkSession

    Examples
    --------
    >>> import deepspark
    >>> spark = deepspark.session("local[2]")
    >>> spark.range(3).count()
    3
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    # Executors must run this interpreter (the one with deepspark and the frameworks),
    # not whatever `python3` is first on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        # Under spark-submit the JVM is already running, with spark-submit's --master
        # and --conf in its system properties. SparkConf reads those only through a
        # connected gateway: connect first, so that they win over the defaults below.
        from pyspark import SparkContext

        SparkContext._ensure_initialized()
    spark_conf = SparkConf()
    if not spark_conf.contains("spark.master"):
        spark_conf.setMaster(master or os.environ.get("DEEPSPARK_MASTER", "local[*]"))
    elif master:
        spark_conf.setMaster(master)
    local = local_master(spark_conf.get("spark.master", ""))

    settings = dict(DEFAULT_CONF)
    driver_java = [_log4j_options()] if quiet else []
    if local:
        driver_java += LOCAL_JVM_OPTIONS
        if not (conf and _DRIVER_JAVA in conf) and not spark_conf.contains(_DRIVER_JAVA):
            from deepspark.runtime import jvm_archive

            # Spark's classes come mapped from the archive `deepspark jvm-archive` built
            # (about half the start-up), when there is one for this Java and Spark.
            driver_java += jvm_archive.session_options()
    if driver_java:
        settings[_DRIVER_JAVA] = " ".join(driver_java)
    if quiet:
        settings["spark.executor.extraJavaOptions"] = _log4j_options()
    settings.update(conf or {})

    if local:
        # Workers import pyspark from its installed package, not from pyspark.zip
        # (compiled from source in every worker); see deepspark.runtime._daemon. Local
        # masters only: there executors run this interpreter, which has deepspark.
        settings.setdefault(_DAEMON_MODULE, _DAEMON)
    elif spark_conf.get(_DAEMON_MODULE, None) == _DAEMON and not (conf and _DAEMON_MODULE in conf):
        # Inherited from an earlier local session of this process (its settings stay in
        # the JVM's system properties): cluster executors may not have deepspark.
        spark_conf.set(_DAEMON_MODULE, "pyspark.daemon")
    for key, value in settings.items():
        if not spark_conf.contains(key) or (conf and key in conf):
            spark_conf.set(key, value)

    if local and prestart:
        from deepspark.runtime import _warmup

        _warmup.import_driver_modules()  # while the JVM starts
    spark = SparkSession.builder.appName(app_name).config(conf=spark_conf).getOrCreate()
    if quiet:
        spark.sparkContext.setLogLevel("ERROR")
    if local and prestart:
        _warmup.start_python_workers(spark)
    if not (conf and _MIN_PARTITIONS in conf) and not spark_conf.contains(_MIN_PARTITIONS):
        # At least 2 file partitions per core: binaryFile packs a folder of small photos
        # by bytes into 2-3 partitions per core count otherwise, and on 2 cores one core
        # then idles while the last task runs (up to half the run); more would only add
        # per-task overhead. Path lists (deepspark.list_paths) are split by count
        # instead, evenly, one task per core (see io._files.default_path_partitions).
        spark.conf.set(_MIN_PARTITIONS, str(2 * spark.sparkContext.defaultParallelism))
    return spark


_MIN_PARTITIONS = "spark.sql.files.minPartitionNum"
_DRIVER_JAVA = "spark.driver.extraJavaOptions"
_DAEMON_MODULE = "spark.python.daemon.module"
_DAEMON = "deepspark.runtime._daemon"

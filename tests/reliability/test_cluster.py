"""deepspark on a real Spark standalone cluster (master + two one-core workers on
127.0.0.1): same predictions as local mode, models shipped with addFile, and jobs that
survive a killed Python worker and a killed worker JVM with no row lost or duplicated.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _reliability import (
    StandaloneCluster,
    alive,
    assert_same_predictions,
    busy_python_workers,
    predictor_kwargs,
    rows_by_origin,
    run_with_fault,
    stop_active_session,
    tiny_onnx_classifier,
    wait_executors,
)

pytestmark = pytest.mark.cluster

#: How many input files the fault-injection jobs read.
FAULT_INPUTS = 300


def predict(
    spark: Any, folder: Path, model: Path, size: int, paths: bool = False
) -> dict[str, tuple[Any, ...]]:
    """read_images -> DeepImagePredictor -> {origin: (classes, probabilities, error)}.

    With ``paths``, list_paths -> DeepImagePredictor(inputCol="path") instead: one Python
    worker per task (the predictor reads and decodes its own files), so the busiest
    worker is always the model's; read_images' decoding UDF is a second worker per task
    that goes back to the pool, where a kill fails nothing, once its rows are decoded.
    Both run in several waves of tasks on the 2 executors (8 and 6 tasks of a few
    seconds each), so faults land mid-job and a kill that missed can be retried.
    """
    from pyspark.sql import functions as F

    import deepspark
    from deepspark.io._files import uri_form

    predictor = deepspark.DeepImagePredictor(**predictor_kwargs(model, size))
    if paths:
        files = deepspark.list_paths(spark, str(folder), num_partitions=6)
        out = predictor.setInputCol("path").transform(files)
        rows = out.select(F.col("path").alias("origin"), "predictions", "error").collect()
        rows = [{**r.asDict(), "origin": uri_form(r["origin"])} for r in rows]
    else:
        images = deepspark.read_images(spark, str(folder), num_partitions=8)
        rows = predictor.transform(images).select("image.origin", "predictions", "error").collect()
    return rows_by_origin(rows)


@pytest.fixture(scope="module")
def inputs_dir(jpeg_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 300 generated JPEGs plus a truncated, an empty and a text file."""
    folder = tmp_path_factory.mktemp("cluster_inputs")
    for path in sorted(jpeg_dir.iterdir()):
        shutil.copyfile(path, folder / path.name)
    good = (folder / "img_0000.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image\n")
    return folder


@pytest.fixture(scope="module")
def local_reference(inputs_dir: Path, busy_model: Path) -> dict[str, tuple[Any, ...]]:
    """Predictions of a local[2] session, computed before the cluster session starts:
    what the cluster must give, and what every run under a fault must give."""
    import deepspark

    stop_active_session()
    spark = deepspark.session("local[2]", app_name="deepspark-local-reference")
    try:
        return predict(spark, inputs_dir, busy_model, 64)
    finally:
        spark.stop()


@pytest.fixture(scope="module")
def cluster_spark(local_reference: Any, cluster_spark: Any) -> Iterator[Any]:
    """The cluster session, started only after the local reference is computed
    (one SparkContext per process)."""
    yield cluster_spark


def test_cluster_has_two_one_core_workers(cluster: StandaloneCluster) -> None:
    state = cluster.state()
    assert state is not None
    alive_workers = [w for w in state["workers"] if w["state"] == "ALIVE"]
    assert len(alive_workers) == 2
    assert all(w["cores"] == 1 and w["host"] == "127.0.0.1" for w in alive_workers)


def test_predictions_equal_local_mode(
    cluster_spark: Any, local_reference: Any, inputs_dir: Path, busy_model: Path
) -> None:
    got = predict(cluster_spark, inputs_dir, busy_model, 64)
    want = local_reference
    assert len(got) == FAULT_INPUTS + 3
    assert_same_predictions(got, want)
    errors = {Path(o).name: e for o, (_, _, e) in got.items() if e is not None}
    assert set(errors) == {"truncated.jpg", "empty.jpg", "notes.jpg"}
    # Both executors did work: the job really ran on the cluster.
    assert cluster_spark.sparkContext.master == cluster_spark.conf.get("spark.master")
    assert cluster_spark.sparkContext.master.startswith("spark://127.0.0.1:")


def test_executors_get_deepspark_and_model_the_documented_way(
    cluster: StandaloneCluster, cluster_spark: Any, inputs_dir: Path, tiny_model: Path
) -> None:
    """deepspark comes from the venv $PYSPARK_PYTHON points to; the model file from
    SparkContext.addFile (a copy in each executor's SparkFiles folder)."""
    import deepspark
    from deepspark.ml._apply import image_input_kind

    images = deepspark.read_images(cluster_spark, str(inputs_dir))
    predictor = deepspark.DeepImagePredictor(**predictor_kwargs(tiny_model))
    task = predictor._build_task(cluster_spark, image_input_kind(images, "image"))
    shipped = task.model.file
    cluster_workdir = cluster.workdir / "work"

    def probe(_: Any) -> Iterator[tuple[str, str, str, str, int]]:
        from pyspark import SparkFiles

        import deepspark as ds

        yield (
            shipped.local_path(),
            os.path.abspath(SparkFiles.getRootDirectory()),
            sys.executable,
            ds.__file__,
            os.getpid(),
        )

    rows = cluster_spark.sparkContext.parallelize(range(4), 4).mapPartitions(probe).collect()
    assert len({pid for *_, pid in rows}) >= 2, "the probe should run in both executors"
    for local_path, root, executable, module, _ in rows:
        assert local_path.startswith(root + os.sep), (
            f"{local_path} is not the addFile copy in {root}"
        )
        assert root.startswith(str(cluster_workdir)), f"{root} is not an executor's folder"
        assert local_path != shipped.driver_path
        assert Path(local_path).read_bytes() == tiny_model.read_bytes()
        assert executable == os.environ["PYSPARK_PYTHON"]
        assert module == deepspark.__file__


def test_cluster_workers_use_pyspark_daemon(cluster_spark: Any) -> None:
    """deepspark's daemon wrapper is for local sessions only; a cluster session started
    after a local one in the same process (local_reference) must not inherit it, since
    cluster executors may not have deepspark installed when their daemon starts."""
    conf = cluster_spark.sparkContext.getConf()
    assert conf.get("spark.python.daemon.module", "pyspark.daemon") == "pyspark.daemon"


def _executor_roots(cluster: StandaloneCluster) -> list[int]:
    return [cluster.worker_pid(i) for i in range(cluster.workers)]


def _until_a_task_fails(attempt: Callable[[], Any], kind: str, tries: int = 3) -> None:
    """Run ``attempt()`` (a job under a fault, checked for lost or changed rows; it
    returns the JobWatch) until its fault has failed a task, ``tries`` times at most.

    A kill can land just as its task ends, or on a process that is not running a task,
    and then fail nothing (CI runs: 2 of 6 tasks done, no task failed). Such a run
    still must lose nothing; the job is then run again.
    """
    for i in range(tries):
        watch = attempt()
        if watch.failed_tasks >= 1:
            record_fault(f"{kind} (attempt {i + 1})", watch)
            return
        print(f"{kind}: attempt {i + 1} failed no task, run again: {watch}")
    pytest.fail(f"{kind}: {tries} jobs under the fault failed no task: {watch}")


def test_killed_python_worker_mid_job_loses_nothing(
    cluster: StandaloneCluster,
    cluster_spark: Any,
    local_reference: Any,
    inputs_dir: Path,
    busy_model: Path,
) -> None:
    def kill_busy_python_worker(killed: list[int]) -> str | None:
        # Every busy worker at once (one per executor here): full runs had single kills
        # miss twice in a row (no task failed), so one of them at least must be mid-task.
        busy = busy_python_workers(_executor_roots(cluster))
        if not busy:
            return None
        for pid in busy:
            os.kill(pid, 9)
        killed.extend(busy)
        return f"SIGKILL python workers {busy}"

    def attempt() -> Any:
        killed: list[int] = []
        got, watch = run_with_fault(
            cluster_spark,
            lambda: predict(cluster_spark, inputs_dir, busy_model, 64, paths=True),
            lambda: kill_busy_python_worker(killed),
            settle=0.5,  # the job lasts a few seconds: retry a kill that hit an idle worker
            max_faults=5,
        )
        assert watch.fault_done, f"no busy Python worker found during the job: {watch}"
        assert not any(alive(pid) for pid in killed)
        assert len(got) == FAULT_INPUTS + 3
        assert_same_predictions(got, local_reference)
        return watch

    _until_a_task_fails(attempt, "python worker SIGKILL")


def test_killed_worker_jvm_mid_job_loses_nothing(
    cluster: StandaloneCluster,
    cluster_spark: Any,
    local_reference: Any,
    inputs_dir: Path,
    busy_model: Path,
) -> None:
    victim = 1

    def kill_worker_jvm() -> str | None:
        if not busy_python_workers([cluster.worker_pid(victim)]):
            return None  # its executor is between tasks: wait for a running one
        cluster.kill_worker(victim)
        return f"SIGKILL worker JVM {victim}"

    def attempt() -> Any:
        # A worker can be killed once per job (max_faults=1).
        try:
            got, watch = run_with_fault(
                cluster_spark,
                lambda: predict(cluster_spark, inputs_dir, busy_model, 64, paths=True),
                kill_worker_jvm,
                max_faults=1,
            )
            assert watch.fault_done, f"the worker was never busy during the job: {watch}"
            assert cluster.alive_workers() == 1
            assert len(got) == FAULT_INPUTS + 3
            assert_same_predictions(got, local_reference)
        finally:
            # Leave a healthy two-worker cluster for the next attempt or test.
            cluster.start_worker(victim)
            cluster.wait_workers(2)
            wait_executors(cluster_spark, 2)
        return watch

    _until_a_task_fails(attempt, "worker JVM SIGKILL")


def test_int8_executors_run_the_copy_their_cpu_suits(
    cluster_spark: Any, inputs_dir: Path, tmp_path: Path
) -> None:
    """(After the fault tests: its jobs leave the executors' Python workers in a state
    the kill tests were not tuned for.)

    quantize="int8" on a cluster ships two int8 copies (7-bit and 8-bit weights) and
    each executor runs the one its own CPU sums exactly (ModelRef.exact_int8_file);
    the driver's CPU does not decide for them. With recheckMargin the float model
    reaches the executors as well."""
    import deepspark
    from deepspark.ml._apply import image_input_kind
    from deepspark.runtime._cpu import exact_int8_dot

    # Two convolutions: the first stays float in every int8 setting.
    model = tiny_onnx_classifier(tmp_path / "int8.onnx", conv_channels=8, conv_layers=2)
    predictor = deepspark.DeepImagePredictor(**predictor_kwargs(model), quantize="int8")
    files = deepspark.list_paths(cluster_spark, str(inputs_dir), num_partitions=4)
    ref = predictor._build_task(cluster_spark, image_input_kind(files, "path")).model
    assert ref.exact_int8_file is not None
    assert ref.exact_int8_file.sha256 != ref.file.sha256

    def probe(_: Any) -> Iterator[tuple[bool, str, int]]:
        import hashlib

        from deepspark.runtime._cpu import exact_int8_dot as here

        chosen = ref.file_here()
        yield (
            here(),
            hashlib.sha256(Path(chosen.local_path()).read_bytes()).hexdigest(),
            os.getpid(),
        )

    rows = cluster_spark.sparkContext.parallelize(range(4), 4).mapPartitions(probe).collect()
    assert len({pid for *_, pid in rows}) >= 2
    for exact, sha, _ in rows:
        assert exact is exact_int8_dot()  # same machine as the driver here
        assert sha == (ref.exact_int8_file if exact else ref.file).sha256
    out = predictor.setInputCol("path").transform(files).collect()
    assert len(out) == FAULT_INPUTS + 3
    assert sum(r["error"] is None for r in out) == FAULT_INPUTS
    # recheckMargin ships the float model too: with a margin of 1 every row is re-run
    # with it on the executors, so the float results come out.
    checked = predictor.setRecheckMargin(1.0).transform(files).collect()
    plain = deepspark.DeepImagePredictor(**predictor_kwargs(model), inputCol="path")
    want = {r["path"]: r["predictions"] for r in plain.transform(files).collect()}
    got = {r["path"]: r["predictions"] for r in checked}
    int8 = {r["path"]: r["predictions"] for r in out}
    assert got.keys() == want.keys() and any(int8[k] != want[k] for k in want)
    for path, preds in want.items():
        if preds is None:
            assert got[path] is None
            continue
        assert [p["class"] for p in got[path]] == [p["class"] for p in preds]
        probs = [p["probability"] for p in got[path]]
        assert probs == pytest.approx([p["probability"] for p in preds], abs=1e-5)


#: Faults injected in this run, printed at the end (figures for docs/reliability.md).
FAULTS: list[str] = []


def record_fault(kind: str, watch: Any) -> None:
    FAULTS.append(
        f"{kind}: {watch.fault_info}; failed task attempts {watch.failed_tasks}, "
        f"tasks in stage {watch.total_tasks}, completed before the fault "
        f"{watch.completed_at_fault}; rows lost 0, duplicated 0"
    )
    print("FAULT-INJECTED", FAULTS[-1])

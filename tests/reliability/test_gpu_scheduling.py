"""GPU scheduling on a real standalone cluster whose workers declare one ``gpu`` each.

This machine has no GPU: each worker's discovery script declares address "0" or "1"
with nothing behind it, exactly as an administrator declares real ones. The tests show
the part of GPU support that does not need a GPU: a task's address reaches deepspark,
which asks the framework for that device, and a CPU-only framework falls back to the
CPU with a warning in the executor's log instead of failing. Running on a real GPU is
verified separately (docs/benchmarks.md, "GPU").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _reliability import (
    StandaloneCluster,
    predictor_kwargs,
    rows_by_origin,
    stop_active_session,
    wait_executors,
)

pytestmark = pytest.mark.cluster

GPU_CONF = {
    "spark.executor.cores": "1",
    "spark.cores.max": "2",
    "spark.executor.memory": "512m",
    "spark.executor.resource.gpu.amount": "1",
    "spark.task.resource.gpu.amount": "1",
}


def _predict(spark: Any, folder: Path, model: Path) -> dict[str, tuple[Any, ...]]:
    import deepspark

    images = deepspark.read_images(spark, str(folder))
    predictor = deepspark.DeepImagePredictor(**predictor_kwargs(model, 32))
    rows = predictor.transform(images).select("image.origin", "predictions", "error").collect()
    return rows_by_origin(rows)


@pytest.fixture(scope="module")
def cpu_reference(jpeg_dir: Path, tiny_model: Path) -> dict[str, tuple[Any, ...]]:
    import deepspark

    stop_active_session()
    spark = deepspark.session("local[2]", app_name="deepspark-gpu-reference")
    try:
        return _predict(spark, jpeg_dir, tiny_model)
    finally:
        spark.stop()


@pytest.fixture(scope="module")
def gpu_spark(cpu_reference: Any, cluster: StandaloneCluster) -> Iterator[Any]:
    import deepspark

    stop_active_session()
    spark = deepspark.session(cluster.master_url, app_name="deepspark-gpu-tests", conf=GPU_CONF)
    wait_executors(spark, 2)
    yield spark
    spark.stop()


def test_tasks_see_their_gpu_address(gpu_spark: Any) -> None:
    def addresses(_: Iterator[int]) -> Iterator[tuple[int | None, str]]:
        from pyspark import TaskContext

        from deepspark.runtime.threads import task_gpu

        yield task_gpu(), TaskContext.get().resources()["gpu"].addresses[0]

    got = gpu_spark.sparkContext.parallelize(range(8), 8).mapPartitions(addresses).collect()
    assert all(gpu == int(address) for gpu, address in got)
    # Two executors, each owning its worker's address: both addresses show up.
    assert {gpu for gpu, _ in got} <= {0, 1} and len(got) == 8


def test_predictions_fall_back_to_cpu_with_a_warning(
    gpu_spark: Any,
    cluster: StandaloneCluster,
    jpeg_dir: Path,
    tiny_model: Path,
    cpu_reference: dict[str, tuple[Any, ...]],
) -> None:
    got = _predict(gpu_spark, jpeg_dir, tiny_model)
    assert got.keys() == cpu_reference.keys()
    for origin, (classes, probs, error) in got.items():
        ref_classes, ref_probs, ref_error = cpu_reference[origin]
        assert error is None and ref_error is None
        assert classes == ref_classes
        assert probs == pytest.approx(ref_probs, abs=1e-5)
    # The executors' stderr (what the Spark UI shows as executor logs) says why the
    # GPU is unused and what to install.
    app = gpu_spark.sparkContext.applicationId
    logs = "".join(
        p.read_text(errors="replace")
        for p in (cluster.workdir / "work").glob(f"worker*/{app}/*/stderr")
    )
    assert "has no CUDAExecutionProvider" in logs
    assert "Install onnxruntime-gpu" in logs

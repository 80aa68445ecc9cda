"""GPU check, whole Spark job: a standalone cluster whose worker declares the real GPU.

``benchmarks/gpu_check.py`` runs deepspark's executor code on a GPU without Spark;
``tests/reliability/test_gpu_scheduling.py`` runs Spark's GPU scheduling on a machine
without one. This script joins the halves on a GPU machine: a real Spark standalone
master and worker (pyspark's own ``spark-class``) whose discovery script declares
GPU ``0``, an application asking ``spark.executor.resource.gpu.amount=1`` and a
fraction of it per task, and deepspark's transformers run as users run them.

What it checks, and writes to ``--out`` (JSON):

* every task sees GPU 0 in ``TaskContext.resources()`` and deepspark picks it;
* ``DeepImagePredictor`` with EfficientNet-Lite0 (real ImageNet weights) as a
  TorchScript file and as a ``torch.export`` program: the Python workers hold the model
  on ``cuda:0`` (read from inside the workers after the job: deepspark's model cache
  and ``torch.cuda.memory_allocated``), ``nvidia-smi`` lists those worker processes,
  and the top-5 answers match a CPU run of the same file in ``local`` mode;
* the named model (ONNX) on the same GPU executors: with a CPU-only ``onnxruntime``
  the executor log says why the GPU is unused and what to install, and the answers
  still match the CPU's.

Images/s are printed for each run; GPU and CPU runs differ in Spark mode (cluster vs
``local``), so read them as an indication, not a benchmark.

Examples
--------
    python benchmarks/data.py -n 1024 --out /tmp/photos
    python benchmarks/gpu_spark_check.py --photos /tmp/photos/n1024-s0 --out gpu-spark.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "reliability"))  # StandaloneCluster
sys.path.insert(0, str(ROOT / "benchmarks"))  # gpu_check's model builder

#: Share of the GPU each task asks for: 8 tasks (one per executor core) share GPU 0.
TASK_GPU_SHARE = "0.125"
EXECUTOR_CORES = 8


class GpuSampler:
    """``nvidia-smi`` compute processes and GPU use, sampled while a job runs."""

    def __init__(self, period: float = 0.3) -> None:
        self.period = period
        self.pids: dict[int, int] = {}  # pid -> largest used MiB seen
        self.max_util = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _query(self, *args: str) -> list[list[str]]:
        try:
            out = subprocess.run(
                ["nvidia-smi", *args, "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout  # fmt: skip
        except (OSError, subprocess.SubprocessError):
            return []
        return [[c.strip() for c in line.split(",")] for line in out.splitlines() if line]

    def _loop(self) -> None:
        while not self._stop.is_set():
            for row in self._query("--query-compute-apps=pid,used_memory"):
                if len(row) == 2 and row[0].isdigit():
                    mib = int(row[1]) if row[1].isdigit() else 0
                    self.pids[int(row[0])] = max(self.pids.get(int(row[0]), 0), mib)
            for row in self._query("--query-gpu=utilization.gpu"):
                if row and row[0].isdigit():
                    self.max_util = max(self.max_util, int(row[0]))
            self._stop.wait(self.period)

    def __enter__(self) -> GpuSampler:  # noqa: PYI034 - used only in a with statement
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self) -> dict[str, Any]:
        from _reliability import cmdline

        return {
            "max_gpu_utilization_pct": self.max_util,
            "compute_processes": [
                {"pid": pid, "max_used_mib": mib, "cmdline": cmdline(pid)[:120]}
                for pid, mib in sorted(self.pids.items())
            ],
        }


def _predict(spark: Any, photos: Path, **params: Any) -> tuple[dict[str, Any], float]:
    """origin -> (top-5 classes, probabilities, error) and images/s of one transform."""
    import deepspark

    paths = deepspark.list_paths(spark, str(photos))
    predictor = deepspark.DeepImagePredictor(inputCol="path", topK=5, **params)
    t0 = time.perf_counter()
    rows = predictor.transform(paths).collect()
    seconds = time.perf_counter() - t0
    got = {
        r["path"]: (
            [p["class"] for p in r["predictions"] or []],
            [p["probability"] for p in r["predictions"] or []],
            r["error"],
        )
        for r in rows
    }
    return got, len(rows) / seconds


def _agreement(gpu: dict[str, Any], cpu: dict[str, Any]) -> dict[str, Any]:
    same = [o for o in cpu if o in gpu and gpu[o][0][:1] == cpu[o][0][:1]]
    diffs = [
        abs(a - b)
        for o in cpu
        if o in gpu and gpu[o][0] == cpu[o][0]
        for a, b in zip(gpu[o][1], cpu[o][1], strict=True)
    ]
    return {
        "rows": len(gpu),
        "errors": sum(1 for v in gpu.values() if v[2] is not None),
        "top1_same_as_cpu": f"{len(same)}/{len(cpu)}",
        "top5_order_same_as_cpu": sum(1 for o in cpu if o in gpu and gpu[o][0] == cpu[o][0]),
        "max_abs_prob_diff": max(diffs) if diffs else None,
    }


def _worker_state(spark: Any) -> list[dict[str, Any]]:
    """From inside every Python worker: deepspark's cached models and their devices."""

    def probe(batches: Iterator[Any]) -> Iterator[Any]:
        import os
        import sys

        from pyspark import TaskContext

        from deepspark.models.cache import _WORKER_CACHE
        from deepspark.runtime.threads import task_gpu

        state: dict[str, Any] = {
            "pid": os.getpid(),
            "task_gpu": task_gpu(),
            "task_gpu_addresses": list(TaskContext.get().resources()["gpu"].addresses),
            "models": [
                {
                    "backend": key[0],
                    "gpu": key[-1],
                    # PyTorch models have a device, ONNX Runtime sessions providers.
                    "device": str(getattr(m, "device", None) or getattr(m, "providers", "?")),
                }
                for key, m in list(_WORKER_CACHE.items())
                if isinstance(key, tuple) and len(key) == 5
            ],
        }
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            state["torch_cuda_initialized"] = bool(torch.cuda.is_initialized())
            if torch.cuda.is_initialized():
                state["cuda_memory_allocated_mib"] = round(
                    torch.cuda.memory_allocated(0) / 2**20, 1
                )
        for _ in batches:
            pass
        import pandas as pd

        yield pd.DataFrame({"state": [json.dumps(state)]})

    # A DataFrame task, as deepspark's transformers run (SQL Python workers are pooled
    # apart from RDD ones), with more partitions than cores, so that every reused worker
    # most likely answers once.
    n = EXECUTOR_CORES * 4
    rows = spark.range(0, n, 1, n).mapInPandas(probe, "state string").collect()
    seen: dict[int, dict[str, Any]] = {}
    for row in rows:
        state = json.loads(row["state"])
        seen[state["pid"]] = state
    return list(seen.values())


def _executor_logs(workdir: Path, app: str) -> str:
    return "".join(
        p.read_text(errors="replace") for p in (workdir / "work").glob(f"worker*/{app}/*/stderr")
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, required=True, help="a folder of JPEG photos")
    p.add_argument("--work", type=Path, default=Path("/tmp/deepspark-gpu-spark"))
    p.add_argument("--out", type=Path, help="write the JSON report here")
    a = p.parse_args(argv)

    import torch
    from _reliability import StandaloneCluster, stop_active_session, wait_executors
    from gpu_check import _efficientnet

    import deepspark
    from deepspark.models.zoo import get_named_model

    # Executors inherit the worker's environment, which inherits this one: the device
    # must come from Spark's resource, not from an override.
    os.environ.pop("DEEPSPARK_DEVICE", None)
    a.work.mkdir(parents=True, exist_ok=True)
    java = subprocess.run(["java", "-version"], check=False, capture_output=True, text=True).stderr
    env = {
        "python": platform.python_version(),
        "pyspark": __import__("pyspark").__version__,
        "java": java.splitlines()[0] if java else None,
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_cores": os.cpu_count(),
        "photos": sum(1 for f in a.photos.iterdir() if f.suffix == ".jpg"),
    }
    print(json.dumps(env), flush=True)

    # The model files a user would bring: EfficientNet-Lite0 traced and exported.
    net = _efficientnet(torch)
    ts_path, export_path = a.work / "effnet.pt", a.work / "effnet.pt2"
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(net, torch.zeros(1, 3, 224, 224)), str(ts_path))
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(net, (torch.zeros(2, 3, 224, 224),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(export_path))
    pre = get_named_model("efficientnet_lite0").preprocess
    user_model = {
        "inputSize": list(pre.size),
        "scale": pre.scale,
        "mean": list(pre.mean),
        "std": list(pre.std),
        "applySoftmax": True,
    }
    runs: list[tuple[str, dict[str, Any]]] = [
        ("torchscript", {**user_model, "model": str(ts_path), "engine": "native"}),
        ("torch_export", {**user_model, "model": str(export_path), "engine": "native"}),
        ("named_onnx", {}),  # efficientnet_lite0, ONNX Runtime
    ]

    # CPU reference: the same files and transformer in local mode.
    stop_active_session()
    spark = deepspark.session(f"local[{EXECUTOR_CORES}]", app_name="gpu-spark-check-cpu")
    reference: dict[str, Any] = {}
    cpu_rate: dict[str, float] = {}
    for name, params in runs:
        _predict(spark, a.photos, **params)  # load, warm up
        reference[name], cpu_rate[name] = _predict(spark, a.photos, **params)
        print(f"cpu {name}: {cpu_rate[name]:.1f} images/s", flush=True)
    spark.stop()

    report: dict[str, Any] = {"environment": env, "task_gpu_share": TASK_GPU_SHARE}
    with StandaloneCluster(a.work / "cluster", workers=1, cores=EXECUTOR_CORES, memory="16g") as cl:
        stop_active_session()
        spark = deepspark.session(
            cl.master_url,
            app_name="gpu-spark-check",
            conf={
                "spark.executor.cores": str(EXECUTOR_CORES),
                "spark.cores.max": str(EXECUTOR_CORES),
                "spark.executor.memory": "12g",
                "spark.executor.resource.gpu.amount": "1",
                "spark.task.resource.gpu.amount": TASK_GPU_SHARE,
            },
        )
        wait_executors(spark, 1)
        results = []
        for name, params in runs:
            _predict(spark, a.photos, **params)  # load, warm up
            with GpuSampler() as sampler:
                got, rate = _predict(spark, a.photos, **params)
            result = {
                "model": name,
                **_agreement(got, reference[name]),
                "cpu_local_images_per_s": round(cpu_rate[name], 1),
                "gpu_cluster_images_per_s": round(rate, 1),
                **sampler.report(),
                "python_workers": _worker_state(spark),
            }
            print(json.dumps(result), flush=True)
            results.append(result)
        logs = _executor_logs(cl.workdir, spark.sparkContext.applicationId)
        report["results"] = results
        report["executor_log_onnx_fallback"] = [
            line for line in logs.splitlines() if "CUDAExecutionProvider" in line
        ][:3]
        report["executor_log_torch_fallback"] = [
            line for line in logs.splitlines() if "CUDA device(s)" in line
        ][:3]
        spark.stop()
    print(json.dumps({k: v for k, v in report.items() if k != "results"}), flush=True)
    if a.out:
        a.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

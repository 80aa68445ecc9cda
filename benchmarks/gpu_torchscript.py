"""GPU check: milliseconds per batch of deepspark's PyTorch models, new batch sizes included.

A Spark task's batches are all ``batchSize`` rows except its last one, so every task
brings a batch size the model has not seen. This script feeds deepspark's
``TorchScriptModel`` / ``TorchExportModel`` (EfficientNet-Lite0, real ImageNet weights)
on GPU 0 with 64-image batches and, in between, batches of 32, 17 and 45, and prints the
time of each call (synchronised). ``VARIANT`` switches PyTorch's TorchScript executor
settings before the model loads, to compare them in one run:

* ``default``: deepspark as shipped;
* ``no_profiling``: ``torch._C._jit_set_profiling_executor(False)``;
* ``no_texpr``: ``torch._C._jit_set_texpr_fuser_enabled(False)``;
* ``optimized``: every call inside ``torch.jit.optimized_execution(True)`` (PyTorch's
  default, which deepspark turns off around a TorchScript call on a GPU);
* ``export``: the ``torch.export`` program instead of TorchScript.

Run each variant in its own process (the settings are process-wide)::

    for v in default optimized export; do python benchmarks/gpu_torchscript.py $v; done

Results of a run on an H200: ``benchmarks/results-gpu-torchscript.json`` and
docs/benchmarks.md ("GPU").
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_check's model builder

#: 8 batches of 64, then new sizes among 64s, then the same sizes again.
SIZES = [64] * 8 + [32, 64, 17, 64, 45, 64, 64, 32, 64, 17, 64, 64, 64, 64, 64, 64]


def main(variant: str) -> dict[str, object]:
    import torch
    from gpu_check import _efficientnet

    from deepspark.models.torch import TorchExportModel, TorchScriptModel

    gpu = 0 if torch.cuda.is_available() else None
    if variant == "no_profiling":
        torch._C._jit_set_profiling_executor(False)
    if variant == "no_texpr":
        torch._C._jit_set_texpr_fuser_enabled(False)
    net = _efficientnet(torch)
    work = Path("/tmp/deepspark-gpu-torchscript")
    work.mkdir(exist_ok=True)
    model: TorchScriptModel | TorchExportModel
    if variant == "export":
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.export.export(
            net, (torch.zeros(2, 3, 224, 224),), dynamic_shapes=({0: batch},)
        )
        torch.export.save(program, str(work / "e.pt2"))
        model = TorchExportModel(work / "e.pt2", gpu=gpu)
    else:
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(net, torch.zeros(1, 3, 224, 224)), str(work / "e.pt"))
        model = TorchScriptModel(work / "e.pt", input_shapes=[(-1, 3, 224, 224)], gpu=gpu)
    name = model.signature.inputs[0].name
    rng = np.random.default_rng(0)
    times: list[tuple[int, float]] = []
    for size in SIZES:
        x = rng.standard_normal((size, 3, 224, 224), dtype=np.float32)
        if gpu is not None:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        if variant == "optimized":  # what predict() runs, with PyTorch's default executor
            with torch.inference_mode(), torch.jit.optimized_execution(True):
                model.module(torch.from_numpy(x).to(model.device)).cpu()
        else:
            model.predict({name: x})
        if gpu is not None:
            torch.cuda.synchronize()
        times.append((size, round((time.perf_counter() - t0) * 1000, 1)))
    return {
        "variant": variant,
        "device": model.device,
        "first3_ms": [ms for _, ms in times[:3]],
        "new_sizes_ms": [(s, ms) for s, ms in times[8:20] if s != 64],
        "steady_64_median_ms": float(np.median([ms for _, ms in times[-6:]])),
        "all": times,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "default")), flush=True)

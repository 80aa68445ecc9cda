"""int8 quantization settings for EfficientNet-Lite0, measured against the float model.

For each setting in :data:`SETTINGS` this makes the int8 copy with
:func:`deepspark.models.optimize.quantize_int8` (cached by settings), then measures on
``-n`` held-out photos (random crops of the benchmark's held-out scikit-image photos,
never used for calibration, see ``data.py``):

* top-1 agreement with the float model, and how often the int8 top-1 is in the float
  top-5; top-1 agreement on ``--validation`` crops of ten other photos
  (``int8_sensitivity.py``'s), to see whether a setting carries over;
* speed: one ONNX Runtime session per model on all cores, batch ``--batch``, float and
  int8 alternating ``--reps`` times; the ratio of medians is reported (absolute
  images/s on a shared machine mean little).

It also prints the CPU's int8-relevant instruction flags (``avx2``, ``avx512_vnni``,
``avx_vnni``, ``amx_int8``): without VNNI, ONNX Runtime's int8 convolutions may not be
faster than float.

With ``--cascade`` it also reports, per setting, the cost of re-running in float only
the rows whose int8 answer is uncertain (top-1 minus top-2 int8 probability below a
margin): the share of rows re-run and the top-1 agreement reached, for a range of
margins. The speed of such a cascade relative to float is at most
``1 / (1 / speed_ratio + share)``.

Examples
--------
    python benchmarks/int8_sweep.py -n 200
    python benchmarks/int8_sweep.py -n 200 --only shipped --cascade
    python benchmarks/int8_sweep.py -n 200 --only shipped,exact --json /tmp/sweep.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import data as bench_data

from deepspark.models.optimize import EXACT_INT8_SETTINGS, Int8Settings, quantize_int8
from deepspark.runtime._cpu import cpu_flags as _flags

#: EfficientNet-Lite0's first depthwise convolution (after the float stem): the one
#: layer whose float copy gains agreement (benchmarks/int8_sensitivity.py).
FIRST_DEPTHWISE = "/_blocks.0/_depthwise_conv/Conv"
_RR = {"reduce_range": True}
_FULL = {"reduce_range": False}

#: name -> (description, settings). ``shipped`` is ``Int8Settings()``.
SETTINGS: dict[str, tuple[str, Int8Settings]] = {
    "exact": (
        "percentile 99.999, 8-bit weights, GPTQ (run where int8 sums are exact: VNNI, AMX, ARM)",
        EXACT_INT8_SETTINGS,
    ),
    "exact-nearest": (
        "percentile 99.999, 8-bit weights, rounded to nearest (before the fourteenth round)",
        dataclasses.replace(EXACT_INT8_SETTINGS, weight_rounding="nearest"),
    ),
    "exact-nobc": (
        "percentile 99.999, 8-bit weights, nearest, no bias correction (before the twelfth round)",
        dataclasses.replace(EXACT_INT8_SETTINGS, bias_correction=False, weight_rounding="nearest"),
    ),
    "shipped-nobc": (
        "percentile 99.999, reduce_range, nearest, no bias correction (before the twelfth round)",
        Int8Settings(bias_correction=False, weight_rounding="nearest"),
    ),
    "exact-dw0-float": (
        "percentile 99.999, 8-bit weights, first depthwise conv float too",
        dataclasses.replace(EXACT_INT8_SETTINGS, float_nodes=(FIRST_DEPTHWISE,)),
    ),
    "shipped-dw0-float": (
        "percentile 99.999, reduce_range, first depthwise conv float too",
        Int8Settings(float_nodes=(FIRST_DEPTHWISE,)),
    ),
    "minmax-8bit": ("minmax, 8-bit weights", Int8Settings(method="minmax", **_FULL)),
    "entropy-8bit": ("entropy, 8-bit weights", Int8Settings(method="entropy", **_FULL)),
    "u8u8": (
        "minmax, uint8 weights (U8U8, no saturation)",
        Int8Settings(method="minmax", weights="uint8", **_FULL),
    ),
    "shipped": (
        "percentile 99.999, reduce_range, GPTQ (7-bit weights; run where int8 sums saturate)",
        Int8Settings(),
    ),
    "shipped-nearest": (
        "percentile 99.999, reduce_range, rounded to nearest (before the fourteenth round)",
        Int8Settings(weight_rounding="nearest"),
    ),
    "exact-gptq-damp0.01": (
        "percentile 99.999, 8-bit weights, GPTQ with damping 0.01",
        dataclasses.replace(EXACT_INT8_SETTINGS, gptq_damping=0.01),
    ),
    "exact-gptq-damp1": (
        "percentile 99.999, 8-bit weights, GPTQ with damping 1.0",
        dataclasses.replace(EXACT_INT8_SETTINGS, gptq_damping=1.0),
    ),
    "minmax-rr": ("minmax, reduce_range", Int8Settings(method="minmax", **_RR)),
    "entropy-rr": ("entropy, reduce_range", Int8Settings(method="entropy", **_RR)),
    "all-int8-rr": (
        "percentile, reduce_range, first conv + Gemm int8 too",
        Int8Settings(float_ops=(), float_first_conv=False),
    ),
    "dw-float-rr": (
        "percentile, reduce_range, depthwise convs float",
        Int8Settings(float_depthwise=True),
    ),
    "head-float-rr": (
        "percentile, reduce_range, last 3 convs + pooling float too",
        Int8Settings(float_last_convs=3, float_ops=("Gemm", "MatMul", "GlobalAveragePool")),
    ),
    "per-tensor-rr": (
        "percentile, reduce_range, per-tensor weights",
        Int8Settings(per_channel=False),
    ),
    "qoperator-rr": ("percentile, reduce_range, QOperator format", Int8Settings(qdq=False)),
    "varied-rr": (
        "percentile, reduce_range, 96 varied calibration photos",
        Int8Settings(calibration_photos=96, varied_calibration=True),
    ),
    "s8s8": (
        "minmax, symmetric int8 activations (S8S8), 8-bit weights",
        Int8Settings(activations="int8", symmetric_activations=True, **_FULL),
    ),
    "dynamic": ("dynamic (weights only), reduce_range", Int8Settings(dynamic=True)),
}


def cpu_flags() -> str:
    """The int8-relevant x86 flags of this CPU."""
    have = _flags()
    wanted = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), ""
    )
    return f"{model}: " + " ".join(f"{f}={'yes' if f in have else 'no'}" for f in wanted)


def session(path: Path, threads: int) -> object:
    import onnxruntime as ort

    from deepspark.models.onnx import KEEP_FLOAT_NODES_FLOAT

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # As deepspark runs its int8 copies: nodes kept in float stay float.
    so.add_session_config_entry(*KEEP_FLOAT_NODES_FLOAT)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def logits(sess: object, x: np.ndarray, batch: int = 32) -> np.ndarray:
    run = sess.run  # type: ignore[attr-defined]
    return np.concatenate(
        [run(["logits"], {"input": x[i : i + batch]})[0] for i in range(0, len(x), batch)]
    )


def simulated_session(path: Path, threads: int) -> object:
    """The QDQ model with graph optimisations off: float arithmetic on quantized values,
    i.e. int8 quantization without the CPU's int8 kernels (and their saturation)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def speed_ratio(fp32: object, int8: object, x: np.ndarray, reps: int) -> float:
    """Median int8 images/s over median float images/s, alternating the two."""
    ips: dict[str, list[float]] = {"fp32": [], "int8": []}
    for sess in (fp32, int8):  # warm-up
        sess.run(["logits"], {"input": x})  # type: ignore[attr-defined]
    for _ in range(reps):
        for key, sess in (("fp32", fp32), ("int8", int8)):
            t = time.perf_counter()
            sess.run(["logits"], {"input": x})  # type: ignore[attr-defined]
            ips[key].append(len(x) / (time.perf_counter() - t))
    return statistics.median(ips["int8"]) / statistics.median(ips["fp32"])


def held_out(n: int, pre: object) -> np.ndarray:
    """``n`` held-out photos as the float model input (as ``run.py`` measures)."""
    from PIL import Image

    from deepspark.runtime.preprocess import to_batch

    photos = bench_data.held_out_arrays(n, seed=1)
    size = pre.size[::-1]  # type: ignore[attr-defined]
    pixels = [
        np.asarray(Image.fromarray(p).resize(size, Image.Resampling.BILINEAR)) for p in photos
    ]
    return to_batch(pixels, pre)  # type: ignore[arg-type]


#: Re-check margins the cascade reports.
MARGINS = (0.01, 0.015, 0.02, 0.025, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


def cascade(
    int8_logits: np.ndarray, agree: np.ndarray, margins: tuple[float, ...] = MARGINS
) -> list[dict[str, float]]:
    """Share of rows re-run in float (int8 top-1 minus top-2 probability below the
    margin, as ``recheckMargin`` does), and the agreement reached, per margin."""
    z = np.exp(int8_logits - int8_logits.max(1, keepdims=True))
    prob = np.sort(z / z.sum(1, keepdims=True), axis=1)
    margin = prob[:, -1] - prob[:, -2]
    out = []
    for m in margins:
        rerun = margin < m
        out.append(
            {"margin": m, "share": float(rerun.mean()), "agreement": float((rerun | agree).mean())}
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-n", type=int, default=200, help="held-out photos")
    p.add_argument(
        "--validation", type=int, default=400, help="crops of other photos (none used before)"
    )
    p.add_argument("--reps", type=int, default=3, help="timed runs per model and setting")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--only", default="", help="comma-separated setting names (default all)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument(
        "--cascade",
        action="store_true",
        help="also report float re-runs of uncertain int8 rows (share re-run, agreement)",
    )
    a = p.parse_args()

    from deepspark.models.zoo import get_named_model

    named = get_named_model("efficientnet_lite0")
    plain, pre = named.export(), named.preprocess
    # The held-out photos, and crops of ten other photos: does a setting carry over?
    from int8_sensitivity import photo_sets

    sets = photo_sets(a.n, a.validation, pre)
    x, other = sets["held_out"], sets["validation"]
    fp32 = session(plain, a.threads)
    ref = logits(fp32, x)
    other_ref = logits(fp32, other).argmax(1)
    prob = np.exp(ref - ref.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    confident = prob.max(1) >= 0.5
    top5 = np.argsort(-ref, axis=1)[:, :5]
    print(
        f"# {cpu_flags()}; {a.threads} threads; onnxruntime {__import__('onnxruntime').__version__}"
    )
    print(f"# {a.n} held-out photos, fp32 top-1 probability >= 0.5 on {confident.mean():.0%}")
    print(
        "| setting | top-1 agreement | on confident photos | int8 top-1 in fp32 top-5 "
        f"| agreement without int8 kernels | on {a.validation} crops of other photos "
        "| speed vs fp32 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    names = [s for s in a.only.split(",") if s] or list(SETTINGS)
    rows = []
    for name in names:
        label, settings = SETTINGS[name]
        t = time.perf_counter()
        path = quantize_int8(plain, pre, "input", settings=settings)
        made_s = time.perf_counter() - t
        int8 = session(path, a.threads)
        int8_logits = logits(int8, x)
        top1 = int8_logits.argmax(1)
        agree = top1 == ref.argmax(1)
        row = {
            "name": name,
            "setting": label,
            "settings": dataclasses.asdict(settings),
            "top1_agreement": float(agree.mean()),
            "top1_agreement_confident": float(agree[confident].mean()),
            "int8_top1_in_fp32_top5": float(np.mean([q in f for q, f in zip(top1, top5)])),
            "top1_agreement_simulated": float(
                np.mean(logits(simulated_session(path, a.threads), x).argmax(1) == ref.argmax(1))
            ),
            "top1_agreement_other_photos": float(
                np.mean(logits(int8, other).argmax(1) == other_ref)
            ),
            "speed_ratio": speed_ratio(fp32, int8, x[: a.batch], a.reps),
            "quantize_s": made_s,
        }
        if a.cascade:
            row["cascade"] = cascade(int8_logits, agree)
        rows.append(row)
        print(
            f"| {label} (`{name}`) | {row['top1_agreement']:.1%} | "
            f"{row['top1_agreement_confident']:.1%} | {row['int8_top1_in_fp32_top5']:.1%} | "
            f"{row['top1_agreement_simulated']:.1%} | {row['top1_agreement_other_photos']:.1%} "
            f"| {row['speed_ratio']:.2f}x |",
            flush=True,
        )
    for row in rows if a.cascade else []:
        print(f"\n{row['name']}: float re-run of rows with int8 top-1 - top-2 probability < margin")
        print("| margin | rows re-run in float | top-1 agreement | speed vs float, at most |")
        print("|---:|---:|---:|---:|")
        for c in row["cascade"]:
            bound = 1 / (1 / row["speed_ratio"] + c["share"])
            print(f"| {c['margin']} | {c['share']:.1%} | {c['agreement']:.1%} | {bound:.2f}x |")
    if a.json:
        a.json.write_text(json.dumps({"cpu": cpu_flags(), "n": a.n, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

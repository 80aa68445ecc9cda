"""deepspark's side-by-side image benchmark (``make bench``).

Generates the data set (see ``data.py``), then runs every variant on the same files,
in one run, interleaved repetition by repetition (so that a noisy neighbour slows all
variants alike), each in its own process tree whose peak RSS is sampled with psutil.
Writes ``benchmarks/results.json``, the results section of ``docs/benchmarks.md`` and
``docs/benchmarks.png``.

Examples
--------
    python benchmarks/run.py                      # N=2000, 3 repetitions, all variants
    python benchmarks/run.py -n 400 --reps 2      # smaller
    python benchmarks/run.py --variants limit,deepspark-api
    python benchmarks/run.py --memory             # peak RSS at 2,000 and 20,000 images
    python benchmarks/run.py --modalities         # then text and audio (modalities.py)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import data as bench_data  # noqa: E402

PEERS_PYTHON = ROOT / "bench-venv" / "bin" / "python"
START, END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Variant:
    name: str
    script: str  # variant name in variants.py
    label: str
    peer: bool = False  # runs in bench-venv
    model: str = "fused"  # "fused" (deepspark's uint8 file) or "int8"
    args: tuple[str, ...] = ()


VARIANTS = [
    Variant(
        "limit",
        "limit",
        "limit: 1 process, simplejpeg + ONNX Runtime, one 1-thread session per core",
    ),
    Variant(
        "limit-1session",
        "limit-1session",
        "1 process, simplejpeg + one ONNX Runtime session on all cores",
    ),
    Variant("deepspark-api", "deepspark-api", "deepspark Python API (list_paths), local[*]"),
    Variant(
        "deepspark-api-noprestart",
        "deepspark-api",
        "deepspark Python API (list_paths), local[*], session(prestart=False)",
        args=("--no-prestart",),
    ),
    Variant(
        "deepspark-api-content",
        "deepspark-api",
        "deepspark Python API over binaryFile content, local[*]",
        args=("--input", "content"),
    ),
    Variant("deepspark-cli", "deepspark-cli", "deepspark CLI (predict), local[*]"),
    Variant(
        "spark-pandas-onnx",
        "spark-pandas-onnx",
        "Spark recipe: binaryFile + pandas UDF, ONNX Runtime",
    ),
    Variant(
        "spark-pandas-torch",
        "spark-pandas-torch",
        "Spark recipe: binaryFile + pandas UDF, PyTorch eager",
    ),
    Variant("predict-batch-udf", "predict-batch-udf", "Spark predict_batch_udf, ONNX Runtime"),
    Variant("ray-data", "ray-data", "Ray Data: read_binary_files + map_batches actor", peer=True),
    Variant("daft", "daft", "Daft: download + class UDF, native runner", peer=True),
    Variant("limit-int8", "limit", "limit, int8 model", model="int8"),
    Variant(
        "deepspark-api-int8",
        "deepspark-api",
        "deepspark API, quantize='int8'",
        model="int8",
        args=("--quantize", "int8"),
    ),
    Variant(
        "deepspark-api-int8-recheck",
        "deepspark-api",
        "deepspark API, quantize='int8', recheckMargin=0.05",
        model="int8",
        args=("--quantize", "int8", "--recheck-margin", "0.05"),
    ),
    Variant(
        "deepspark-api-int8-recheck-0.025",
        "deepspark-api",
        "deepspark API, quantize='int8', recheckMargin=0.025",
        model="int8",
        args=("--quantize", "int8", "--recheck-margin", "0.025"),
    ),
]


@dataclass
class Run:
    variant: str
    rep: int
    ok: bool
    images: int = 0
    seconds: float = 0.0
    startup_s: float = 0.0
    peak_rss_mb: float = 0.0
    error: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.ok and self.seconds > 0 else 0.0


# ---------------------------------------------------------------------- measuring
def _tree_rss(proc: object) -> int:
    import psutil

    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)  # type: ignore[attr-defined]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _kill_tree(proc: object) -> None:
    import psutil

    try:
        children = proc.children(recursive=True)  # type: ignore[attr-defined]
    except psutil.Error:
        children = []
    for p in [proc, *children]:
        try:
            p.kill()
        except psutil.Error:
            pass


def run_measured(
    cmd: list[str], timeout: float, env: dict[str, str]
) -> tuple[int, str, float, bool]:
    """Run ``cmd``; returns (exit code, output, peak RSS of the process tree in MB, timed out)."""
    import psutil

    with tempfile.TemporaryFile("w+") as log:
        popen = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        proc = psutil.Process(popen.pid)
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, _tree_rss(proc))
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timed_out = False
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_tree(proc)
            popen.wait()
        stop.set()
        sampler.join()
        log.seek(0)
        output = log.read()
    return popen.returncode, output, peak / 2**20, timed_out


def run_variant(
    v: Variant, rep: int, folder: Path, models: dict[str, str], a: argparse.Namespace
) -> Run:
    python = str(a.peers_python) if v.peer else sys.executable
    if v.peer and not Path(python).exists():
        return Run(v.name, rep, False, error=f"not installed ({python} missing)")
    out = Path(tempfile.mkdtemp(prefix=f"bench-{v.name}-"))
    cmd = [
        python,
        str(ROOT / "benchmarks" / "variants.py"),
        v.script,
        "--data",
        str(folder),
        "--out",
        str(out / "out"),
        "--model",
        models[v.model],
        "--float-model",
        models["float"],
        *v.args,
    ]
    env = bench_env(python, peer=v.peer)
    try:
        return measure(v.name, rep, cmd, env, a.timeout)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def bench_env(python: str, peer: bool = False) -> dict[str, str]:
    """The environment of a variant process: this checkout's ``src`` first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    if peer:
        env["PYSPARK_PYTHON"] = python
    return env


def measure(name: str, rep: int, cmd: list[str], env: dict[str, str], timeout: float) -> Run:
    """Run one variant's command, sampling its peak RSS; its last ``RESULT {json}`` line
    gives ``seconds``, ``startup_s`` and ``images`` (kept whole in ``Run.extra``)."""
    code, output, peak, timed_out = run_measured(cmd, timeout, env)
    result_line = next(
        (line for line in reversed(output.splitlines()) if line.startswith("RESULT ")), None
    )
    if timed_out:
        return Run(
            name,
            rep,
            False,
            peak_rss_mb=peak,
            error=f"timed out after {timeout:.0f}s (deadlock or too slow)",
        )
    if code != 0 or result_line is None:
        tail = [line for line in output.strip().splitlines() if line.strip()][-3:]
        return Run(
            name, rep, False, peak_rss_mb=peak, error=f"exit {code}: " + " | ".join(tail)[-400:]
        )
    res = json.loads(result_line[len("RESULT ") :])
    return Run(
        name,
        rep,
        True,
        int(res.get("images", 0)),
        float(res["seconds"]),
        float(res["startup_s"]),
        peak,
        extra=res,
    )


# ---------------------------------------------------------------------- models
def prepare_models(with_int8: bool) -> dict[str, str]:
    from deepspark.models.optimize import fuse_preprocessing, int8_settings_here, quantize_int8
    from deepspark.models.zoo import get_named_model

    named = get_named_model("efficientnet_lite0")
    plain = named.export()
    fused, _, _ = fuse_preprocessing(plain, named.preprocess, "input")
    models = {"float": str(plain), "fused": str(fused)}
    if with_int8:
        # The copy deepspark runs on this CPU (8-bit weights where int8 sums are exact).
        q = quantize_int8(plain, named.preprocess, "input", settings=int8_settings_here())
        models["int8"] = str(fuse_preprocessing(q, named.preprocess, "input")[0])
    return models


def recheck_margins(chosen: list[Variant]) -> list[float]:
    """The ``--recheck-margin`` values of the chosen variants."""
    return sorted(
        {
            float(v.args[i + 1])
            for v in chosen
            for i, x in enumerate(v.args)
            if x == "--recheck-margin"
        }
    )


def _agreement(fp32: object, int8: object, margins: list[float]) -> dict[str, object]:
    """int8 against fp32 logits: top-1 agreement, int8 top-1 within the fp32 top-5, and
    for each re-check margin the share of rows re-run in float and the agreement then
    (``int8_sweep.cascade``)."""
    import numpy as np
    from int8_sweep import cascade

    f, q = np.asarray(fp32), np.asarray(int8)
    agree = f.argmax(1) == q.argmax(1)
    top5_f = np.argsort(-f, axis=1)[:, :5]
    return {
        "images": len(f),
        "top1_agreement": float(agree.mean()),
        "int8_top1_in_fp32_top5": float(np.mean([a in b for a, b in zip(q.argmax(1), top5_f)])),
        "recheck": [
            {"margin": c["margin"], "share": c["share"], "top1_agreement": c["agreement"]}
            for c in cascade(q, agree, tuple(margins))
        ],
    }


def int8_agreement(
    models: dict[str, str], n: int, margins: list[float], folder: Path | None = None
) -> dict[str, object]:
    """int8 against fp32 (:func:`_agreement`) on ``n`` held-out photos (never used for
    calibration) and, given ``folder``, on the benchmark's own photos, decoded as the
    limit decodes them."""
    import numpy as np
    import variants as V
    from PIL import Image

    from deepspark.runtime._cpu import exact_int8_dot

    def logits(key: str, pixels: np.ndarray) -> np.ndarray:
        sess = V.ort_session(models[key], V.cpus())
        return np.concatenate(
            [V.ort_predict(sess, pixels[i : i + 32]) for i in range(0, len(pixels), 32)]
        )

    def both(pixels: np.ndarray) -> dict[str, object]:
        return _agreement(logits("fused", pixels), logits("int8", pixels), margins)

    photos = bench_data.held_out_arrays(n, seed=1)
    held = np.stack(
        [np.asarray(Image.fromarray(p).resize(V.SIZE, Image.Resampling.BILINEAR)) for p in photos]
    )
    out: dict[str, object] = {
        "weights": "8-bit" if exact_int8_dot() else "7-bit",
        **both(held),
    }
    if folder is not None:
        bench = np.stack([V.decode_best(p.read_bytes()) for p in bench_data.files(folder)])
        out["benchmark_set"] = both(bench)
    return out


def _quality_lines(quality: dict) -> list[str]:
    """The report's sentences on int8 agreement."""

    def rechecks(q: dict) -> str:
        return "".join(
            f"; re-checking below margin {r['margin']} re-runs {r['share']:.1%} of rows in "
            f"float and agrees on {r['top1_agreement']:.1%}"
            for r in q.get("recheck", [])
        )

    lines = [
        "",
        (
            f"int8 ({quality.get('weights', '7-bit')} weights, the copy this CPU runs) vs "
            f"fp32 on {quality['images']} held-out photos (crops of photos never used for "
            f"calibration): top-1 agreement {quality['top1_agreement']:.1%}, int8 top-1 "
            f"within fp32 top-5 {quality['int8_top1_in_fp32_top5']:.1%}{rechecks(quality)}."
        ),
    ]
    bench = quality.get("benchmark_set")
    if bench:
        lines += [
            "",
            (
                f"On the {bench['images']} benchmark photos themselves: top-1 agreement "
                f"{bench['top1_agreement']:.1%}{rechecks(bench)}."
            ),
        ]
    return lines


# ---------------------------------------------------------------------- reporting
def machine() -> dict[str, str]:
    import importlib.metadata as md

    info = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in lscpu.splitlines()
                if line.startswith("Model name")
            ),
            "?",
        )
        flags = next((line for line in lscpu.splitlines() if line.startswith("Flags")), "")
        info["cpu"] = f"{model}, {len(os.sched_getaffinity(0))} cores available"
        info["bf16"] = (
            "yes" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "no (no avx512_bf16/amx)"
        )
    except OSError:
        info["cpu"] = platform.processor()
    try:
        import psutil

        info["memory"] = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
        info["load_average_at_start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    except ImportError:
        pass
    for pkg in ("pyspark", "onnxruntime", "numpy", "pillow", "simplejpeg", "torch"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = "-"
    if PEERS_PYTHON.exists():
        code = "import importlib.metadata as m\nfor p in ('ray','daft'):\n  try: print(p, m.version(p))\n  except Exception: print(p, '-')"
        res = subprocess.run([str(PEERS_PYTHON), "-c", code], capture_output=True, text=True)
        for line in res.stdout.splitlines():
            k, _, v = line.partition(" ")
            info[k] = v
    return info


def summarise(runs: list[Run], variants: list[Variant], baseline: str = "limit") -> list[dict]:
    """Median, min-max, start-up and peak RSS per variant; ``ratio`` = median / ``baseline``'s.

    ``variants`` need only ``name`` and ``label`` (``modalities.py`` passes its own).
    """
    rows = []
    limit = [r.rate for r in runs if r.variant == baseline and r.ok]
    limit_med = statistics.median(limit) if limit else 0.0
    for v in variants:
        mine = [r for r in runs if r.variant == v.name]
        ok = [r for r in mine if r.ok]
        rates = [r.rate for r in ok]
        row = {
            "variant": v.name,
            "label": v.label,
            "runs": len(mine),
            "ok": len(ok),
            "median": statistics.median(rates) if rates else None,
            "min": min(rates) if rates else None,
            "max": max(rates) if rates else None,
            "startup_s": statistics.median([r.startup_s for r in ok]) if ok else None,
            "peak_rss_mb": max((r.peak_rss_mb for r in mine), default=0.0),
            "errors": sorted({r.error for r in mine if not r.ok}),
        }
        row["ratio"] = row["median"] / limit_med if rates and limit_med else None
        rows.append(row)
    return rows


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def table_row(r: dict, unit: str = "") -> str:
    """One row of a results table from a ``summarise`` row; ``unit`` follows the median."""
    ok = f"{r['ok']}/{r['runs']}"
    if r["errors"]:
        ok += " (" + "; ".join(e[:120] for e in r["errors"]) + ")"
    median = _fmt(r["median"]) + (f" {unit}" if unit else "")
    return (
        f"| {r['label']} | {median} | {_fmt(r['min'])}-{_fmt(r['max'])} | "
        f"{_fmt(r['ratio'], '.2f')} | {_fmt(r['startup_s'])} | {r['peak_rss_mb']:.0f} | {ok} |"
    )


def _sizes_table(memory: list[dict], key: str, title: str, spec: str) -> list[str]:
    """A markdown table of ``m[key][variant]`` per memory size (one column per size)."""
    lines = [
        "",
        f"| {title} | " + " | ".join(f"{m['n']} images" for m in memory) + " |",
        "|---|" + "---:|" * len(memory),
    ]
    for name in sorted({k for m in memory for k in m[key]}):
        cells = " | ".join(_fmt(m[key].get(name), spec) for m in memory)
        lines.append(f"| {name} | {cells} |")
    return lines


def markdown(
    summary: list[dict], info: dict, a: argparse.Namespace, quality: dict | None, memory: list[dict]
) -> str:
    lines = [
        START,
        f"Generated by `python benchmarks/run.py -n {a.n} --reps {a.reps}` on {info['date']}.",
        "",
        f"N = {a.n} JPEG photos (~500x375, q90), {a.reps} repetition(s) per variant, interleaved; "
        "EfficientNet-Lite0, top-5 per file written to Parquet. images/s = N / job seconds "
        "(engine start-up excluded and shown separately); ratio = median / median of `limit`.",
        "",
        "| variant | images/s (median) | min-max | ratio to limit | start-up s | peak RSS MB | runs ok |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [table_row(r) for r in summary]
    if quality:
        lines += _quality_lines(quality)
    if memory:
        lines += _sizes_table(memory, "rss", "peak RSS (MB)", ".0f")
        if all(m.get("rate") for m in memory):
            # The same single runs, timed: the fixed cost per job weighs less at 10x N.
            lines += _sizes_table(memory, "rate", "images/s (1 run each)", ".1f")
    lines += ["", "Machine and versions:", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_doc(doc: Path, section: str, start: str = START, end: str = END) -> None:
    """Replace the text between the ``start`` and ``end`` markers of ``doc`` by ``section``.

    ``section`` includes the markers; without them in ``doc`` it is appended.
    """
    text = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{start}\n{end}\n"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + section.rstrip("\n") + tail
    else:
        text += "\n" + section
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def chart(summary: list[dict], path: Path, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary if r["median"]]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.5))
    names = [r["label"] for r in rows][::-1]
    med = [r["median"] for r in rows][::-1]
    err = [
        [r["median"] - r["min"] for r in rows][::-1],
        [r["max"] - r["median"] for r in rows][::-1],
    ]
    colors = ["tab:blue" if r["variant"].startswith("deepspark") else "tab:gray" for r in rows][
        ::-1
    ]
    ax.barh(names, med, xerr=err, color=colors)
    ax.set_xlabel("images/s (median, min-max); higher is better")
    ax.set_title(f"EfficientNet-Lite0 on {n} JPEGs, top-5 to Parquet")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def report_only(a: argparse.Namespace) -> int:
    """Rebuild the doc section and chart from a (possibly partial) results file."""
    saved = json.loads(a.results.read_text())
    runs = [Run(**r) for r in saved["runs"]]
    names = {r.variant for r in runs}
    chosen = [v for v in VARIANTS if v.name in names]
    a.n, a.reps = saved["n"], saved["reps"]
    summary = summarise(runs, chosen)
    write_doc(
        a.doc, markdown(summary, saved["machine"], a, saved.get("quality"), saved.get("memory", []))
    )
    chart(summary, a.chart, a.n)
    print(f"[bench] wrote {a.doc}, {a.chart}")
    return 0


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-n", type=int, default=2000, help="number of photos (default 2000)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per variant (default 3)")
    p.add_argument("--variants", default="", help="comma-separated subset (default: all)")
    p.add_argument(
        "--timeout",
        type=float,
        default=1800,
        help="seconds per variant run before it counts as hung",
    )
    p.add_argument("--data-dir", type=Path, default=ROOT / "bench-data")
    p.add_argument("--peers-python", type=Path, default=PEERS_PYTHON)
    p.add_argument(
        "--setup-peers",
        action="store_true",
        help="run benchmarks/setup_peers.sh first if bench-venv is missing",
    )
    p.add_argument(
        "--quality-n", type=int, default=200, help="held-out photos for the int8 agreement"
    )
    p.add_argument("--memory", action="store_true", help="also measure peak RSS at --memory-sizes")
    p.add_argument("--memory-sizes", default="2000,20000")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--chart", type=Path, default=ROOT / "docs" / "benchmarks.png")
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results.json")
    p.add_argument(
        "--report-only", action="store_true", help="rewrite the doc and chart from --results"
    )
    p.add_argument(
        "--modalities",
        action="store_true",
        help="afterwards run the text and audio benchmarks (benchmarks/modalities.py, same --reps)",
    )
    p.add_argument("--text-n", type=int, default=20000, help="with --modalities: sentences")
    p.add_argument("--audio-minutes", type=int, default=60, help="with --modalities: minutes")
    a = p.parse_args(argv)
    if a.report_only:
        return report_only(a)

    chosen = [v for v in VARIANTS if not a.variants or v.name in a.variants.split(",")]
    if not chosen:
        p.error(f"no such variant; choose from {', '.join(v.name for v in VARIANTS)}")
    if a.setup_peers and not a.peers_python.exists() and any(v.peer for v in chosen):
        subprocess.run(
            ["bash", str(ROOT / "benchmarks" / "setup_peers.sh"), sys.executable], check=False
        )

    info = machine()
    print(f"[bench] {info.get('cpu')}; generating {a.n} photos", flush=True)
    folder = bench_data.generate(a.data_dir, a.n)
    need_int8 = any(v.model == "int8" for v in chosen)
    models = prepare_models(need_int8)
    quality = (
        int8_agreement(models, a.quality_n, recheck_margins(chosen), folder)
        if need_int8 and a.quality_n > 0
        else None
    )
    if quality:
        print(f"[bench] int8 agreement: {quality}", flush=True)

    runs: list[Run] = []
    results: dict = {
        "machine": info,
        "n": a.n,
        "reps": a.reps,
        "quality": quality,
        "runs": runs,
        "memory": [],
    }

    def save() -> None:
        a.results.parent.mkdir(parents=True, exist_ok=True)
        payload = dict(results, runs=[r.__dict__ for r in runs])
        a.results.write_text(json.dumps(payload, indent=1))

    for rep in range(a.reps):
        for v in chosen:
            t0 = time.time()
            r = run_variant(v, rep, folder, models, a)
            runs.append(r)
            status = f"{r.rate:.1f} img/s, start-up {r.startup_s:.1f}s" if r.ok else r.error
            print(
                f"[bench] rep {rep + 1} {v.name}: {status}, peak RSS {r.peak_rss_mb:.0f} MB ({time.time() - t0:.0f}s)",
                flush=True,
            )
            save()

    memory = []
    if a.memory:
        for size in [int(s) for s in a.memory_sizes.split(",") if s]:
            mfolder = bench_data.generate(a.data_dir, size)
            rss, rate = {}, {}
            for v in [x for x in VARIANTS if x.name in ("limit", "deepspark-api")]:
                r = run_variant(v, 0, mfolder, models, a)
                rss[v.name] = r.peak_rss_mb if r.ok else None
                rate[v.name] = r.rate if r.ok else None
                print(
                    f"[bench] memory {size} {v.name}: {r.peak_rss_mb:.0f} MB, {r.rate:.1f} img/s "
                    f"{'' if r.ok else r.error}",
                    flush=True,
                )
            memory.append({"n": size, "rss": rss, "rate": rate})
        results["memory"] = memory
        save()

    summary = summarise(runs, chosen)
    results["summary"] = summary
    save()
    write_doc(a.doc, markdown(summary, info, a, quality, memory))
    chart(summary, a.chart, a.n)
    print(f"[bench] wrote {a.doc}, {a.chart}, {a.results}", flush=True)
    if a.modalities:
        import modalities

        return modalities.main(
            [
                *("--text-n", str(a.text_n), "--audio-minutes", str(a.audio_minutes)),
                *("--reps", str(a.reps), "--timeout", str(a.timeout)),
                *("--data-dir", str(a.data_dir), "--doc", str(a.doc)),
            ]
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""deepspark's text and audio benchmarks against their single-process references.

Text: embed N sentences with all-MiniLM-L6-v2; the reference is sentence-transformers'
``encode`` in one process on all cores. Audio: Silero VAD over M minutes of speech;
the reference is silero-vad's own loop (``load_silero_vad(onnx=True)`` +
``get_speech_timestamps``, file by file). Every variant runs in its own process tree
(``modal_variants.py``), repetitions interleaved, with its peak RSS sampled, as in
``run.py``, whose helpers this module uses. Then the outputs of the first repetition
are compared side by side (embedding cosine, speech segments) and the results go to
``benchmarks/results-modalities.json`` and the "Text and audio" block of
``docs/benchmarks.md``.

Examples
--------
    python benchmarks/modalities.py                                   # 20,000 sentences, 60 min, 3 reps
    python benchmarks/modalities.py --text-n 2000 --audio-minutes 5 --reps 2
    python benchmarks/modalities.py --variants text-reference,text-deepspark
    python benchmarks/modalities.py --report-only                      # rebuild the doc block
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import modal_data
import run as bench

START, END = "<!-- modalities:start -->", "<!-- modalities:end -->"
#: Silero VAD's window (512 samples at 16 kHz): segments may differ by this much.
VAD_WINDOW_S = 512 / modal_data.RATE


@dataclass(frozen=True)
class ModalVariant:
    """One variant of ``modal_variants.py``; ``group`` names its data set and reference."""

    name: str
    group: str  # "text" or "audio"
    label: str


VARIANTS = [
    ModalVariant(
        "text-reference", "text", "reference: sentence-transformers encode, 1 process, all cores"
    ),
    ModalVariant(
        "text-reference-ort",
        "text",
        "reference on ONNX Runtime: tokenizers + deepspark's ONNX export, 1 process, all cores",
    ),
    ModalVariant(
        "text-deepspark", "text", "deepspark: read_text(unit='line') + TextEmbedder, local[*]"
    ),
    ModalVariant(
        "audio-reference",
        "audio",
        "reference: silero-vad get_speech_timestamps (ONNX), file by file, 1 process",
    ),
    ModalVariant("audio-deepspark", "audio", "deepspark: read_audio + SpeechDetector, local[*]"),
    ModalVariant(
        "audio-deepspark-paths",
        "audio",
        "deepspark: list_paths + SpeechDetector(inputCol='path'), local[*]",
    ),
]
REFERENCE = {"text": "text-reference", "audio": "audio-reference"}
UNIT = {"text": "sentences/s", "audio": "x real time (audio s/s)"}


# ---------------------------------------------------------------------- running
def run_one(v: ModalVariant, rep: int, folder: Path, out: Path, a: argparse.Namespace) -> bench.Run:
    """One run of ``v`` over ``folder`` in its own process tree; output left in ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        str(bench.ROOT / "benchmarks" / "modal_variants.py"),
        v.name,
        "--data",
        str(folder),
        "--out",
        str(out),
    ]
    r = bench.measure(v.name, rep, cmd, bench.bench_env(sys.executable), a.timeout)
    if not r.ok:
        return r
    rows = int(r.extra["rows"])
    expected = a.text_n if v.group == "text" else a.audio_minutes
    if rows != expected:
        r.ok, r.error = False, f"wrote {rows} rows, expected {expected}"
    # Run.images holds the units of the rate: sentences, or seconds of audio.
    r.images = rows if v.group == "text" else rows * modal_data.FILE_SECONDS
    return r


# ---------------------------------------------------------------------- checking
def _embeddings(folder: Path) -> dict[str, np.ndarray]:
    """text -> embedding of a variant's Parquet output (a list or an ml Vector struct)."""
    import pyarrow.parquet as pq

    table = pq.read_table(folder)
    column = table.column("embedding")
    if hasattr(column.type, "get_field_index") and column.type.get_field_index("values") >= 0:
        vectors = [None if v is None else v["values"] for v in column.to_pylist()]
    else:
        vectors = column.to_pylist()
    return {
        t: np.asarray(v, dtype=np.float64)
        for t, v in zip(table.column("text").to_pylist(), vectors)
        if v is not None
    }


def check_text(ref: Path, other: Path) -> dict[str, Any]:
    """Cosine of every sentence's embedding in ``other`` against the reference's."""
    want, got = _embeddings(ref), _embeddings(other)
    common = sorted(set(want) & set(got))
    if not common:
        return {"compared": 0, "missing": len(want)}
    a = np.stack([want[t] for t in common])
    b = np.stack([got[t] for t in common])
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {
        "compared": len(common),
        "missing": len(want) - len(common),
        "min_cosine": float(cos.min()),
        "share_ge_0_999": float((cos >= 0.999).mean()),
    }


def _segments(folder: Path) -> dict[str, list[tuple[float, float]]]:
    import pyarrow.parquet as pq

    table = pq.read_table(folder, columns=["origin", "speech"]).to_pylist()
    return {
        Path(r["origin"]).name: [(s["start"], s["end"]) for s in r["speech"] or []] for r in table
    }


def check_audio(ref: Path, other: Path) -> dict[str, Any]:
    """Files whose speech segments equal the reference's within one VAD window."""
    want, got = _segments(ref), _segments(other)
    same, worst, segments = 0, 0.0, 0
    for name, segs in want.items():
        mine = got.get(name)
        segments += len(segs)
        if mine is None or len(mine) != len(segs):
            continue
        diff = float(np.abs(np.array(mine) - np.array(segs)).max()) if segs else 0.0
        worst = max(worst, diff)
        same += diff <= VAD_WINDOW_S + 1e-9
    return {
        "files": len(want),
        "files_equal_within_window": same,
        "reference_segments": segments,
        "max_boundary_diff_s": worst,
    }


# ---------------------------------------------------------------------- reporting
def markdown(results: dict[str, Any]) -> str:
    """The generated "Text and audio" block of docs/benchmarks.md, markers included."""
    n, minutes, reps = results["text_n"], results["audio_minutes"], results["reps"]
    lines = [
        START,
        (
            f"Generated by `python benchmarks/modalities.py --text-n {n} --audio-minutes "
            f"{minutes} --reps {reps}` on {results['machine']['date']}."
        ),
        "",
        (
            f"Text: {n} distinct English sentences (6-54 words, mean ~19) in 40 files, one per "
            "line; all-MiniLM-L6-v2 embeddings written to Parquet. Audio: "
            f"{minutes} WAV files of 60 s (16 kHz mono, espeak-ng speech between pauses and "
            "noise bursts), Silero VAD speech segments written to Parquet. Rates are per second "
            "of job time (start-up excluded: the SparkSession for deepspark, importing torch / "
            "sentence-transformers / silero-vad / ONNX Runtime for the references); "
            f"{reps} repetition(s), interleaved; ratio = median / median of the group's "
            "reference."
        ),
        "",
        "| variant | rate (median) | min-max | ratio to reference | start-up s | peak RSS MB | runs ok |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for group in ("text", "audio"):
        lines += [bench.table_row(r, UNIT[group]) for r in results["summary"].get(group, [])]
    checks = results.get("checks", {})
    lines.append("")
    for name, c in checks.items():
        if "min_cosine" in c:
            lines.append(
                f"- {name}: {c['compared']} sentences compared with sentence-transformers, "
                f"{c['missing']} missing; min cosine {c['min_cosine']:.6f}, "
                f"{c['share_ge_0_999']:.1%} >= 0.999."
            )
        elif "files" in c:
            lines.append(
                f"- {name}: {c['files_equal_within_window']}/{c['files']} files with the same "
                f"speech segments as silero-vad within one window ({VAD_WINDOW_S * 1000:.0f} ms; "
                f"{c['reference_segments']} reference segments, largest boundary difference "
                f"{c['max_boundary_diff_s'] * 1000:.0f} ms)."
            )
        else:
            lines.append(f"- {name}: not compared ({c})")
    lines += ["", "Machine and versions:", ""]
    lines += [f"- {k}: {v}" for k, v in results["machine"].items()]
    lines.append(END)
    return "\n".join(lines) + "\n"


def summarise(runs: list[bench.Run], chosen: list[ModalVariant]) -> dict[str, list[dict]]:
    """``run.summarise`` per group, each against its own reference."""
    out = {}
    for group in ("text", "audio"):
        mine = [v for v in chosen if v.group == group]
        if mine:
            out[group] = bench.summarise(runs, mine, baseline=REFERENCE[group])  # type: ignore[arg-type]
    return out


def machine() -> dict[str, str]:
    """``run.machine()`` plus the versions of the text and audio stacks."""
    import importlib.metadata as md

    info = bench.machine()
    for pkg in ("sentence-transformers", "transformers", "tokenizers", "silero-vad", "soundfile"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = "-"
    return info


# ---------------------------------------------------------------------- main
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--text-n", type=int, default=20000, help="sentences (default 20000)")
    p.add_argument(
        "--audio-minutes", type=int, default=60, help="1-minute audio files (default 60)"
    )
    p.add_argument("--reps", type=int, default=3, help="repetitions per variant (default 3)")
    p.add_argument("--variants", default="", help="comma-separated subset (default: all)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per variant run")
    p.add_argument("--data-dir", type=Path, default=bench.ROOT / "bench-data")
    p.add_argument("--doc", type=Path, default=bench.ROOT / "docs" / "benchmarks.md")
    p.add_argument(
        "--results", type=Path, default=bench.ROOT / "benchmarks" / "results-modalities.json"
    )
    p.add_argument("--report-only", action="store_true", help="rewrite the doc from --results")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    a = p.parse_args(argv)
    if a.report_only:
        results = json.loads(a.results.read_text())
        # Summarised again from the runs, so that a results file cut short (or edited to
        # drop runs) still gives a consistent block.
        runs = [bench.Run(**r) for r in results["runs"]]
        names = {r.variant for r in runs}
        results["summary"] = summarise(runs, [v for v in VARIANTS if v.name in names])
        bench.write_doc(a.doc, markdown(results), START, END)
        print(f"[modalities] wrote {a.doc}")
        return 0
    chosen = [v for v in VARIANTS if not a.variants or v.name in a.variants.split(",")]
    if not chosen:
        p.error(f"no such variant; choose from {', '.join(v.name for v in VARIANTS)}")

    info = machine()
    folders: dict[str, Path] = {}
    if any(v.group == "text" for v in chosen):
        folders["text"] = modal_data.text_files(a.data_dir, a.text_n)
    if any(v.group == "audio" for v in chosen):
        print(f"[modalities] making {a.audio_minutes} minutes of audio (cached)", flush=True)
        folders["audio"] = modal_data.audio_files(a.data_dir, a.audio_minutes)
    # The first repetition's outputs are kept for the side-by-side check.
    kept = Path(tempfile.mkdtemp(prefix="bench-modal-"))
    runs: list[bench.Run] = []
    results: dict[str, Any] = {
        "machine": info,
        "text_n": a.text_n,
        "audio_minutes": a.audio_minutes,
        "reps": a.reps,
        "units": UNIT,
        "runs": runs,
    }

    def save() -> None:
        a.results.parent.mkdir(parents=True, exist_ok=True)
        a.results.write_text(json.dumps(dict(results, runs=[r.__dict__ for r in runs]), indent=1))

    try:
        for rep in range(a.reps):
            for v in chosen:
                t0 = time.time()
                out = kept / v.name if rep == 0 else kept / "scratch"
                r = run_one(v, rep, folders[v.group], out, a)
                runs.append(r)
                status = (
                    f"{r.rate:.1f} {UNIT[v.group]}, start-up {r.startup_s:.1f}s"
                    if r.ok
                    else r.error
                )
                print(
                    f"[modalities] rep {rep + 1} {v.name}: {status}, peak RSS "
                    f"{r.peak_rss_mb:.0f} MB ({time.time() - t0:.0f}s)",
                    flush=True,
                )
                save()
        checks: dict[str, Any] = {}
        for v in chosen:
            ref = kept / REFERENCE[v.group]
            if v.name == REFERENCE[v.group] or not (kept / v.name).is_dir() or not ref.is_dir():
                continue
            check = check_text if v.group == "text" else check_audio
            checks[v.name] = check(ref, kept / v.name)
            print(f"[modalities] check {v.name}: {checks[v.name]}", flush=True)
    finally:
        shutil.rmtree(kept, ignore_errors=True)
    results["checks"] = checks
    results["summary"] = summarise(runs, chosen)
    save()
    bench.write_doc(a.doc, markdown(results), START, END)
    print(f"[modalities] wrote {a.doc}, {a.results}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

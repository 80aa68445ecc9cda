"""Which convolution, kept in float, gains the most int8 top-1 agreement?

For each quantized convolution of EfficientNet-Lite0 this makes the int8 copy (the
settings this CPU runs, bias-corrected) with that one node kept in float
(``Int8Settings.float_nodes``) and measures its top-1 agreement with the float model
on ``-n`` held-out photos (as ``int8_sweep.py``), and on ``--validation`` crops of ten
other scikit-image photos (mostly grayscale, never used for calibration or for the
held-out set): a layer chosen on one set should help on the other too.

The copies go to a temporary cache folder (one ~5 MB file per convolution).

Examples
--------
    python benchmarks/int8_sensitivity.py -n 600 --json /tmp/sensitivity.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deepspark.models.optimize import EXTRA_CALIBRATION_PHOTOS

#: Crops of these photos check that a choice made on the held-out photos carries over
#: (the "varied" calibration photos, never used by the shipped settings, and four more).
VALIDATION_PHOTOS = (
    *EXTRA_CALIBRATION_PHOTOS,
    "clock_motion.png",
    "page.png",
    "cell.png",
    "color.png",
)


def photo_sets(n: int, validation: int, pre: object) -> dict[str, np.ndarray]:
    """The float model's input for ``n`` held-out photos and ``validation`` crops of
    :data:`VALIDATION_PHOTOS`."""
    import int8_sweep as sweep

    from deepspark.models.optimize import calibration_pixels
    from deepspark.runtime.preprocess import to_batch

    return {
        "held_out": sweep.held_out(n, pre),
        "validation": to_batch(
            calibration_pixels(pre, validation, seed=11, photos=VALIDATION_PHOTOS),
            pre,  # type: ignore[arg-type]
        ),
    }


def agreements(
    sess: object, sets: dict[str, np.ndarray], refs: dict[str, np.ndarray]
) -> dict[str, float]:
    """Top-1 agreement of ``sess`` with the float model's ``refs``, per photo set."""
    import int8_sweep as sweep

    return {k: float(np.mean(sweep.logits(sess, x).argmax(1) == refs[k])) for k, x in sets.items()}


@dataclasses.dataclass
class Reference:
    """The float model, its photo sets and its top-1 on them: what agreement is
    measured against."""

    plain: Path  # the float ONNX file
    pre: Any  # its ImagePreprocess
    threads: int
    fp32: Any  # its ONNX Runtime session
    sets: dict[str, np.ndarray]
    refs: dict[str, np.ndarray]  # the float top-1 per set


def reference(n: int, validation: int) -> Reference:
    """EfficientNet-Lite0 in float and its top-1 on :func:`photo_sets`."""
    import int8_sweep as sweep

    from deepspark.models.zoo import get_named_model

    named = get_named_model("efficientnet_lite0")
    plain, pre = named.export(), named.preprocess
    threads = len(os.sched_getaffinity(0))
    sets = photo_sets(n, validation, pre)
    fp32 = sweep.session(plain, threads)
    refs = {k: sweep.logits(fp32, x).argmax(1) for k, x in sets.items()}
    return Reference(plain, pre, threads, fp32, sets, refs)


def photo_set_parser(doc: str | None) -> argparse.ArgumentParser:
    """The options of the scripts that measure on :func:`photo_sets`."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-n", type=int, default=600, help="held-out photos")
    p.add_argument("--validation", type=int, default=400, help="validation crops")
    p.add_argument("--json", type=Path, help="also write the results here")
    return p


def main() -> None:
    p = photo_set_parser(__doc__)
    p.add_argument(
        "--accumulate",
        type=int,
        default=0,
        metavar="K",
        help="then keep the K layers that gained most on the held-out photos in float "
        "together (the best 1, 2, ..., K) and measure agreement, speed and float re-runs",
    )
    p.add_argument("--reps", type=int, default=5, help="timed runs per model (--accumulate)")
    a = p.parse_args()
    # Before deepspark is imported: every copy goes to a throwaway cache.
    os.environ["DEEPSPARK_CACHE_DIR"] = tempfile.mkdtemp(prefix="int8-sensitivity-")

    import int8_sweep as sweep
    import onnx

    from deepspark.models.optimize import Int8Settings, int8_settings_here, quantize_int8

    ref = reference(a.n, a.validation)
    plain, pre, threads, fp32, sets, refs = (
        ref.plain, ref.pre, ref.threads, ref.fp32, ref.sets, ref.refs
    )  # fmt: skip
    base = int8_settings_here()
    convs = [n.name for n in onnx.load(str(plain)).graph.node if n.op_type == "Conv"]

    def agreement(settings: Int8Settings) -> dict[str, float]:
        sess = sweep.session(quantize_int8(plain, pre, "input", settings=settings), threads)
        return agreements(sess, sets, refs)

    def together(names: tuple[str, ...]) -> dict[str, object]:
        settings = dataclasses.replace(base, float_nodes=names)
        sess = sweep.session(quantize_int8(plain, pre, "input", settings=settings), threads)
        held = sweep.logits(sess, sets["held_out"])
        agree = held.argmax(1) == refs["held_out"]
        return {
            "float": list(names),
            **agreements(sess, sets, refs),
            "speed_ratio": sweep.speed_ratio(fp32, sess, sets["held_out"][:64], a.reps),
            "cascade": sweep.cascade(held, agree),
        }

    rows = [{"float": "(none)", **agreement(base)}]
    print(f"# {sweep.cpu_flags()}; {a.n} held-out photos, {a.validation} validation crops")
    print("| kept in float | held-out agreement | validation agreement |")
    print("|---|---:|---:|")
    print(f"| (none) | {rows[0]['held_out']:.1%} | {rows[0]['validation']:.1%} |", flush=True)
    for name in convs[1:]:  # the first convolution is float in every setting
        row = {"float": name, **agreement(dataclasses.replace(base, float_nodes=(name,)))}
        rows.append(row)
        print(f"| `{name}` | {row['held_out']:.1%} | {row['validation']:.1%} |", flush=True)
    ranked = sorted(rows[1:], key=lambda r: -r["held_out"])[: a.accumulate]
    if ranked:
        print(
            "\n| kept in float together | held-out | validation | speed vs fp32 | re-run for 99% |"
        )
        print("|---|---:|---:|---:|---|")
    cumulative = []
    for k in range(len(ranked) + 1 if ranked else 0):
        row = together(tuple(r["float"] for r in ranked[:k]))
        cumulative.append(row)
        reach = next((c for c in row["cascade"] if c["agreement"] >= 0.99), None)
        rerun = f"{reach['share']:.1%} (margin {reach['margin']})" if reach else "-"
        print(
            f"| best {k} | {row['held_out']:.1%} | {row['validation']:.1%} "
            f"| {row['speed_ratio']:.2f}x | {rerun} |",
            flush=True,
        )
    if a.json:
        a.json.write_text(
            json.dumps({"cpu": sweep.cpu_flags(), "rows": rows, "together": cumulative}, indent=1)
        )


if __name__ == "__main__":
    main()

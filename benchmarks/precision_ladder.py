"""How much numeric precision do the held-out photos need for 99% top-1 agreement?

int8 is judged by its top-1 agreement with the float model (issue 6 asks for 99%).
This script asks how far *any* narrower number format gets on the same photos: it
rounds EfficientNet-Lite0 (the fused float ONNX file deepspark runs) to ``k`` mantissa
bits and measures top-1 agreement with the unrounded model, for several ``k``:

``weights``
    every Conv and Gemm weight rounded to ``k`` mantissa bits (round to nearest even),
    biases and all arithmetic in float32: the error of storing weights narrowly.
``weights+inputs``
    also each Conv and Gemm *input* rounded to ``k`` bits (graph ops inserted before
    them), products accumulated in float32: how bf16 (``k = 7``) and fp16 (``k = 10``)
    matrix units compute. Element-wise ops (Add, Clip) stay float32, so real bf16 or
    fp16 inference loses at least as much.

int8 has 7 bits plus a sign per value but one scale per channel or tensor, so for
values well below the largest it is coarser than ``k = 7``; the rows show whether
the photos' 99% lies within reach of 8-bit formats at all. The photos are the ones
``int8_sweep.py`` and ``int8_sensitivity.py`` measure: ``-n`` held-out photos, and
``--validation`` crops of ten other scikit-image photos.

Examples
--------
    python benchmarks/precision_ladder.py -n 600 --per-layer 300 \\
        --json benchmarks/results-precision-ladder.json
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Mantissa bits measured (bf16 keeps 7, fp16 10, float32 23).
BITS = (7, 8, 10, 12, 14, 16)
#: Operators whose weights and inputs are rounded: the matrix products.
MATMUL_OPS = ("Conv", "Gemm")


def round_mantissa(w: np.ndarray, bits: int) -> np.ndarray:
    """``w`` (float32) rounded to ``bits`` mantissa bits, to nearest, ties to even.

    >>> round_mantissa(np.array([1.0, 1.3, 1.75], np.float32), 1).tolist()
    [1.0, 1.5, 2.0]
    """
    drop = 23 - bits
    u = np.ascontiguousarray(w, np.float32).view(np.uint32).astype(np.uint64)
    u += (1 << (drop - 1)) - 1 + ((u >> drop) & 1)
    u &= ~np.uint64((1 << drop) - 1)
    return u.astype(np.uint32).view(np.float32)


def int8_grid(w: np.ndarray) -> np.ndarray:
    """``w`` on a symmetric 8-bit grid per output channel (scale max|w| / 127),
    rounded to nearest: the weights of deepspark's int8 copy before bias correction.

    >>> (int8_grid(np.array([[1.0, 0.3], [0.0, -2.0]], np.float32)) * 127).tolist()
    [[127.0, 38.0], [0.0, -254.0]]
    """
    scale = np.abs(w).reshape(len(w), -1).max(1) / 127
    scale = np.where(scale == 0, 1, scale).reshape(-1, *([1] * (w.ndim - 1)))
    return (np.round(w / scale) * scale).astype(np.float32)


def int8_weights_model(plain: Path, out: Path, only: str | None = None) -> Path:
    """A copy of ``plain`` with the Conv weights deepspark's int8 copy quantizes (all
    but the first; or only the convolution named ``only``) on the 8-bit grid;
    activations and everything else float32."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(plain))
    inits = {t.name: t for t in model.graph.initializer}
    for node in [n for n in model.graph.node if n.op_type == "Conv"][1:]:
        if only is not None and node.name != only:
            continue
        t = inits[node.input[1]]
        t.CopyFrom(numpy_helper.from_array(int8_grid(numpy_helper.to_array(t)), t.name))
    onnx.save(model, str(out))
    return out


def rounded_model(plain: Path, bits: int, inputs: bool, out: Path) -> Path:
    """A copy of ``plain`` with Conv/Gemm weights (and inputs) rounded to ``bits``."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(plain))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    nodes = list(graph.node)
    consts = [
        numpy_helper.from_array(np.array(v, np.float32), name)
        for name, v in (
            ("_ladder_tiny", 1e-30),
            ("_ladder_inv_ln2", 1 / math.log(2)),
            ("_ladder_two", 2.0),
            ("_ladder_bits", float(bits)),
        )
    ]
    new_nodes = []
    for i, node in enumerate(nodes):
        if node.op_type in MATMUL_OPS:
            t = inits[node.input[1]]
            t.CopyFrom(
                numpy_helper.from_array(round_mantissa(numpy_helper.to_array(t), bits), t.name)
            )
            if inputs:
                # y = Round(x / s) * s with s = 2^(floor(log2|x|) - bits): x keeps `bits`
                # mantissa bits (a power of two misjudged by Log's rounding only moves
                # that one value to bits +- 1).
                x, p = node.input[0], f"_ladder{i}_"
                new_nodes += [
                    helper.make_node("Abs", [x], [p + "abs"]),
                    helper.make_node("Max", [p + "abs", "_ladder_tiny"], [p + "pos"]),
                    helper.make_node("Log", [p + "pos"], [p + "ln"]),
                    helper.make_node("Mul", [p + "ln", "_ladder_inv_ln2"], [p + "log2"]),
                    helper.make_node("Floor", [p + "log2"], [p + "exp"]),
                    helper.make_node("Sub", [p + "exp", "_ladder_bits"], [p + "e"]),
                    helper.make_node("Pow", ["_ladder_two", p + "e"], [p + "step"]),
                    helper.make_node("Div", [x, p + "step"], [p + "q"]),
                    helper.make_node("Round", [p + "q"], [p + "r"]),
                    helper.make_node("Mul", [p + "r", p + "step"], [p + "x"]),
                ]
                node.input[0] = p + "x"
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    if inputs:
        graph.initializer.extend(consts)
    onnx.save(model, str(out))
    return out


def per_layer(
    plain: Path, x: np.ndarray, ref: np.ndarray, tmp: Path, threads: int
) -> list[dict[str, object]]:
    """Per quantized convolution: agreement on ``x`` with only its weights on the int8
    grid, and its weights' relative rounding error on that grid and in bf16."""
    if not len(x):
        return []
    import int8_sweep as sweep
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(plain))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    print(f"\n| int8 grid on one convolution | agreement ({len(x)}) | weight error, int8 | bf16 |")
    print("|---|---:|---:|---:|")
    out: list[dict[str, object]] = []
    for node in [n for n in model.graph.node if n.op_type == "Conv"][1:]:
        w = inits[node.input[1]]
        path = int8_weights_model(plain, tmp / "one.onnx", only=node.name)
        sess = sweep.session(path, threads)
        row = {
            "conv": node.name,
            "agreement": float(np.mean(sweep.logits(sess, x).argmax(1) == ref)),
            "error_int8": float(np.linalg.norm(int8_grid(w) - w) / np.linalg.norm(w)),
            "error_bf16": float(np.linalg.norm(round_mantissa(w, 7) - w) / np.linalg.norm(w)),
        }
        out.append(row)
        print(
            f"| `{node.name}` | {row['agreement']:.1%} | {row['error_int8']:.2%} "
            f"| {row['error_bf16']:.2%} |",
            flush=True,
        )
    return out


def main() -> None:
    from int8_sensitivity import photo_set_parser

    p = photo_set_parser(__doc__)
    p.add_argument(
        "--per-layer",
        type=int,
        default=0,
        metavar="N",
        help="also put one convolution at a time on the int8 grid (the others float) "
        "and measure agreement on the first N held-out photos",
    )
    a = p.parse_args()

    import int8_sweep as sweep
    from int8_sensitivity import agreements, reference

    ref = reference(a.n, a.validation)
    plain, pre, threads, sets, refs = ref.plain, ref.pre, ref.threads, ref.sets, ref.refs
    tmp = Path(tempfile.mkdtemp(prefix="precision-ladder-"))
    print(f"# {sweep.cpu_flags()}; {a.n} held-out photos, {a.validation} validation crops")
    print("| rounded | mantissa bits | held-out agreement | validation agreement |")
    print("|---|---:|---:|---:|")
    rows = []
    for inputs in (False, True):
        what = "weights+inputs" if inputs else "weights"
        for bits in BITS:
            path = rounded_model(plain, bits, inputs, tmp / f"{what}-{bits}.onnx")
            sess = sweep.session(path, threads)
            row = {"rounded": what, "bits": bits, **agreements(sess, sets, refs)}
            rows.append(row)
            print(
                f"| {what} | {bits} | {row['held_out']:.1%} | {row['validation']:.1%} |",
                flush=True,
            )
            path.unlink()
    from deepspark.models.optimize import int8_settings_here, quantize_int8

    for what, path in (
        ("int8 grid, weights only", int8_weights_model(plain, tmp / "int8-weights.onnx")),
        ("int8 copy run here", quantize_int8(plain, pre, "input", settings=int8_settings_here())),
    ):
        sess = sweep.session(path, threads)
        row = {"rounded": what, "bits": None, **agreements(sess, sets, refs)}
        rows.append(row)
        print(f"| {what} | - | {row['held_out']:.1%} | {row['validation']:.1%} |", flush=True)
    n = a.per_layer
    layers = per_layer(plain, sets["held_out"][:n], refs["held_out"][:n], tmp, threads)
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "cpu": sweep.cpu_flags(),
                    "n": a.n,
                    "validation": a.validation,
                    "rows": rows,
                    "per_layer_n": a.per_layer,
                    "per_layer": layers,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

"""GPTQ rounding of int8 weights (``Int8Settings.weight_rounding="gptq"``, the default).

The unfolding is checked against ONNX Runtime's own convolution; the rounding against
rounding to nearest, on what it is for: a layer's output on real photos, on the
photos it was calibrated on and on others. The effect on the real model's agreement
with its float model is tested in tests/runtime/test_fast_path.py and measured by
benchmarks/int8_sweep.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepspark.models._int8_gptq import conv_columns, conv_hessian, gptq_round
from deepspark.models.optimize import (
    EXACT_INT8_SETTINGS,
    Int8Settings,
    calibration_pixels,
    quantize_int8,
)
from deepspark.runtime.preprocess import ImagePreprocess, to_batch
from tests.models._int8_helpers import PRE, tiny_conv_classifier
from tests.reliability._reliability import tiny_onnx_classifier

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("skimage")
numpy_helper = onnx.numpy_helper

#: scikit-image photos the calibration crops never come from.
OTHER_PHOTOS = ("chelsea.png", "rocket.jpg", "motorcycle_right.png", "retina.jpg")


def _ort_conv(x: np.ndarray, w: np.ndarray, **attrs: Any) -> np.ndarray:
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], **attrs)
    graph = onnx.helper.make_graph(
        [node],
        "conv",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
        [onnx.helper.make_empty_tensor_value_info("y")],
        [numpy_helper.from_array(w, "w")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(["y"], {"x": x})[0]


@pytest.mark.parametrize(
    "attrs",
    [
        {"pads": [1, 1, 1, 1]},
        {"strides": [2, 2], "pads": [0, 1, 1, 0]},
        {"dilations": [2, 2], "pads": [2, 2, 2, 2]},
        {"group": 2, "pads": [1, 1, 1, 1]},
        {"group": 4, "strides": [2, 2], "auto_pad": "SAME_UPPER"},
        {"group": 4, "strides": [2, 2], "auto_pad": "SAME_LOWER"},
        {"auto_pad": "VALID", "strides": [1, 2]},
    ],
    ids=[
        "pads",
        "stride-asymmetric",
        "dilation",
        "grouped",
        "depthwise-same",
        "same-lower",
        "valid",
    ],
)
def test_columns_times_weights_is_onnx_runtimes_convolution(attrs: dict[str, Any]) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 4, 9, 8)).astype(np.float32)
    group = attrs.get("group", 1)
    w = rng.normal(size=(6 if group != 4 else 4, 4 // group, 3, 3)).astype(np.float32)
    want = _ort_conv(x, w, **attrs)  # (n, out, h, w)
    cols = conv_columns(x, attrs, w.shape)  # (group, n * h * w, d)
    per = w.shape[0] // group
    got = np.concatenate(
        [cols[g] @ w[g * per : (g + 1) * per].reshape(per, -1).T for g in range(group)], axis=1
    )
    out = want.shape[1]
    np.testing.assert_allclose(got, want.transpose(0, 2, 3, 1).reshape(-1, out), atol=1e-4)
    hessian, rows = conv_hessian(x, attrs, w.shape)
    assert rows == cols.shape[1] == want.shape[0] * want.shape[2] * want.shape[3]
    assert hessian.shape == (group, cols.shape[2], cols.shape[2])
    np.testing.assert_allclose(hessian[0], cols[0].T.astype(np.float64) @ cols[0], rtol=1e-4)
    # Made a few output rows at a time (bounded memory on large images): the same sums.
    chunked, chunked_rows = conv_hessian(x, attrs, w.shape, max_elements=40)
    assert chunked_rows == rows
    np.testing.assert_allclose(chunked, hessian, rtol=1e-5, atol=1e-5 * np.abs(hessian).max())


def _photo_columns(photos: tuple[str, ...] | None, count: int, seed: int) -> np.ndarray:
    """Rows a 3x3 convolution multiplies on real photos: correlated neighbours, as
    every image model's first layers see them."""
    x = to_batch(calibration_pixels(PRE, count, seed=seed, photos=photos), PRE)
    return conv_columns(x, {"pads": [1, 1, 1, 1]}, (8, 3, 3, 3))[0].astype(np.float64)


def test_gptq_reproduces_a_layers_output_better_than_rounding_to_nearest() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(0, 0.2, size=(8, 27))
    scale = np.abs(w).max(1) / 127  # the quantizer's symmetric per-channel grid
    zero = np.zeros(8, np.int64)
    calibration = _photo_columns(None, 16, seed=0)
    q = gptq_round(w, calibration.T @ calibration[None], scale, zero, -127, 127, damp=0.1)
    nearest = np.round(w / scale[:, None])
    assert q.dtype == np.int64 and q.shape == w.shape
    assert q.min() >= -127 and q.max() <= 127
    assert (q != nearest).any()  # it really rounds differently
    assert np.abs(q - w / scale[:, None]).max() < 8  # still near: the same grid

    def error(ints: np.ndarray, x: np.ndarray) -> float:
        return float(np.mean((x @ (ints * scale[:, None] - w).T) ** 2))

    # Better on the photos it saw, and on crops of other photos.
    assert error(q, calibration) < 0.8 * error(nearest, calibration)
    other = _photo_columns(OTHER_PHOTOS, 16, seed=7)
    assert error(q, other) < 0.8 * error(nearest, other)


def test_gptq_keeps_zero_point_range_and_silent_inputs() -> None:
    """An asymmetric (uint8) grid: integers stay in its range around its zero point; an
    input never seen in calibration (all zeros) has its weights rounded to nearest."""
    rng = np.random.default_rng(4)
    w = rng.normal(0.1, 0.2, size=(4, 27))
    lo, hi = w.min(1), w.max(1)
    scale = (hi - lo) / 255
    zero = np.round(-lo / scale).astype(np.int64)
    x = _photo_columns(None, 8, seed=1)
    x[:, 5] = 0.0
    q = gptq_round(w, x.T @ x[None], scale, zero, 0, 255)
    assert q.min() >= 0 and q.max() <= 255
    nearest = np.clip(np.round(w / scale[:, None]) + zero[:, None], 0, 255)
    assert (q[:, 5] == nearest[:, 5]).all()
    assert (q != nearest).any()  # the other inputs are GPTQ's


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_conv_classifier(tmp_path_factory.mktemp("gptq") / "tiny.onnx")


def _logits(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_outputs()[0].name
    return sess.run([name], {"input": x})[0]


@pytest.mark.parametrize(
    "settings",
    [
        Int8Settings(),
        EXACT_INT8_SETTINGS,
        Int8Settings(per_channel=False),
        Int8Settings(weights="uint8", method="minmax", reduce_range=False),
    ],
    ids=["7bit", "8bit", "per-tensor", "uint8-weights"],
)
def test_gptq_copy_same_grid_closer_to_float(model: Path, settings: Int8Settings) -> None:
    """The GPTQ copy has the nearest-rounded copy's operators, scales and zero points;
    only integer weights and int32 biases differ, the weights within the grid's range;
    and its logits are closer to the float model's, on the calibration photos and on
    other photos. Also with one scale per tensor, and with asymmetric uint8 weights
    (zero points)."""
    copies = {
        r: quantize_int8(
            model, PRE, "input", settings=dataclasses.replace(settings, weight_rounding=r)
        )
        for r in ("nearest", "gptq")
    }
    near, gptq = (onnx.load(str(copies[r])) for r in ("nearest", "gptq"))
    ops = [(n.op_type, list(n.input), list(n.output)) for n in gptq.graph.node]
    assert ops == [(n.op_type, list(n.input), list(n.output)) for n in near.graph.node]
    before = {i.name: numpy_helper.to_array(i) for i in near.graph.initializer}
    changed = {
        i.name: numpy_helper.to_array(i)
        for i in gptq.graph.initializer
        if not np.array_equal(numpy_helper.to_array(i), before[i.name])
    }
    kind = np.dtype(np.int8 if settings.weights == "int8" else np.uint8)
    weights = {k: v for k, v in changed.items() if v.dtype == kind}
    assert weights, "no weight was rounded differently"
    assert {v.dtype for v in changed.values()} <= {kind, np.dtype(np.int32)}
    for name, v in weights.items():
        if kind == np.int8:  # symmetric: +-127, or +-64 for 7-bit weights
            top = 64 if settings.reduce_range else 127
            assert np.abs(v.astype(int)).max() <= top, name
        else:  # the nearest-rounded copy's range, per tensor
            assert before[name].min() <= v.min() and v.max() <= before[name].max(), name

    def error(x: np.ndarray) -> dict[str, float]:
        want = _logits(model, x)
        return {r: float(np.mean((_logits(p, x) - want) ** 2)) for r, p in copies.items()}

    seen = error(to_batch(calibration_pixels(PRE, 32), PRE))
    other = error(to_batch(calibration_pixels(PRE, 32, seed=9, photos=OTHER_PHOTOS), PRE))
    assert seen["gptq"] < seen["nearest"]
    assert other["gptq"] < other["nearest"]


def test_bad_gptq_settings_are_refused(model: Path) -> None:
    from deepspark.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="weight_rounding must be 'gptq' or 'nearest'"):
        quantize_int8(model, PRE, "input", settings=Int8Settings(weight_rounding="adaround"))
    with pytest.raises(InvalidParameterError, match="gptq_damping must be >= 0"):
        quantize_int8(model, PRE, "input", settings=Int8Settings(gptq_damping=-0.1))


def test_too_few_calibration_rows_keep_rounding_to_nearest(tmp_path: Path) -> None:
    """On 4x4 images each 3x3 convolution of 16 channels has 144 weights per output
    channel and 16 rows per image: 8 calibration images (128 rows) cannot pin them
    down, so GPTQ leaves the weights as rounded to nearest; 32 images (512) can."""
    small = ImagePreprocess(size=(4, 4), scale=1 / 255, mean=(0.5,) * 3, std=(0.25,) * 3)
    model = tiny_onnx_classifier(
        tmp_path / "small.onnx", size=4, seed=5, conv_channels=16, conv_layers=4
    )

    def int_weights(count: int, rounding: str) -> dict[str, np.ndarray]:
        path = quantize_int8(
            model,
            small,
            "input",
            calibration=calibration_pixels(small, count),
            settings=Int8Settings(weight_rounding=rounding),
        )
        inits = onnx.load(str(path)).graph.initializer
        return {
            i.name: numpy_helper.to_array(i) for i in inits if i.data_type == onnx.TensorProto.INT8
        }

    def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    assert same(int_weights(8, "gptq"), int_weights(8, "nearest"))
    assert not same(int_weights(32, "gptq"), int_weights(32, "nearest"))


def test_no_damping_on_inputs_that_move_together() -> None:
    """``damp=0`` with two identical inputs (a singular ``H``): GPTQ adds the least
    damping that makes it usable instead of failing, and their weights' sum (all the
    output sees) is still rounded better than to nearest."""
    x = _photo_columns(None, 4, seed=2)[:, :3]
    x = np.concatenate([x, x[:, :1]], axis=1)  # the fourth input repeats the first
    w = np.array([[0.3, 0.2, -0.1, 0.3]])
    scale = np.array([1 / 10])
    q = gptq_round(w, x.T @ x[None], scale, np.zeros(1, np.int64), -127, 127, damp=0.0)
    nearest = np.round(w / scale)

    def error(ints: np.ndarray) -> float:
        return float(np.mean((x @ (ints * scale - w).T) ** 2))

    assert error(q) <= error(nearest)


def _shared_weights_model(path: Path) -> Path:
    """conv0 (float, the first) -> convA -> convB -> convC -> pool -> Gemm, where convA
    and convB read the same weight initializer (as detection heads share theirs
    across scales)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(21)

    def weights(name: str, cin: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.2, (8, cin, 3, 3)).astype(np.float32), name)

    inits = [weights("w0", 3), weights("ws", 8), weights("wc", 8)]
    nodes, x = [], "input"
    for name, w in (("conv0", "w0"), ("convA", "ws"), ("convB", "ws"), ("convC", "wc")):
        nodes.append(helper.make_node("Conv", [x, w], [f"{name}_out"], name=name, pads=[1] * 4))
        nodes.append(helper.make_node("Relu", [f"{name}_out"], [name], name=f"{name}_relu"))
        x = name
    fc = numpy_helper.from_array(rng.normal(0, 1, (8, 10)).astype(np.float32), "fc_w")
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flat", axis=1),
        helper.make_node("Gemm", ["flat", "fc_w"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "shared",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [*inits, fc],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _weight_ints(path: Path) -> dict[str, np.ndarray]:
    """Conv name -> its integer weights, in a quantized copy."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    return {
        n.name: inits[producer[n.input[1]].input[0]]
        for n in model.graph.node
        if n.op_type == "Conv" and n.input[1] in producer
    }


def test_weights_shared_by_two_convolutions_keep_rounding_to_nearest(tmp_path: Path) -> None:
    """One set of integers cannot be GPTQ's choice for two layers (rounding it for the
    second would undo what the first was corrected for): shared weights stay as
    rounded to nearest, the others are GPTQ's."""
    model = _shared_weights_model(tmp_path / "shared.onnx")
    near, gptq = (
        _weight_ints(quantize_int8(model, PRE, "input", settings=Int8Settings(weight_rounding=r)))
        for r in ("nearest", "gptq")
    )
    assert np.array_equal(gptq["convA"], near["convA"])
    assert np.array_equal(gptq["convB"], gptq["convA"])
    assert not np.array_equal(gptq["convC"], near["convC"])


def test_uint8_weights_with_zero_point_zero_do_not_wrap() -> None:
    """uint8 weights, one scale per tensor, all >= 0 and half of them 0: ONNX Runtime
    puts the zero point at 0, the bottom of the grid, where GPTQ's compensation would
    push many weights below it. Its integers stay in 0-255 (a -1 would wrap to 255)."""
    from onnx import helper

    from deepspark.models._int8_bias import _gptq_weights

    rng = np.random.default_rng(0)
    for _ in range(5):
        w = np.abs(rng.normal(0, 0.2, (8, 8, 3, 3))) * (rng.random((8, 8, 3, 3)) < 0.5)
        w = w.astype(np.float32)
        scale = np.float32(w.max() / 255)
        nearest = np.clip(np.round(w / scale), 0, 255).astype(np.uint8)
        graph = helper.make_graph(
            [
                helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["w"]),
                helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1] * 4),
            ],
            "uint8",
            [],
            [],
            [
                numpy_helper.from_array(nearest, "wq"),
                numpy_helper.from_array(np.array(scale), "s"),
                numpy_helper.from_array(np.array(0, np.uint8), "z"),
            ],
        )
        model = helper.make_model(graph)
        mix = rng.normal(size=(8, 8))
        x = np.einsum("nchw,cd->ndhw", rng.normal(size=(8, 8, 12, 12)), mix) + 0.5
        x = np.maximum(x, 0).astype(np.float32)
        dequantized = _gptq_weights(model, model.graph.node[1], [x], w, 0.01)
        q = numpy_helper.to_array(model.graph.initializer[0]).astype(int)
        assert dequantized is not None and (q != nearest).any()
        assert np.abs(q - nearest.astype(int)).max() < 32  # no wrap-around
        np.testing.assert_allclose(dequantized, q * scale, rtol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_calibration_inputs_keep_rounding_to_nearest(model: Path, bad: float) -> None:
    from deepspark.models._int8_bias import _gptq_weights

    path = quantize_int8(model, PRE, "input", settings=Int8Settings(weight_rounding="nearest"))
    qdq, float_model = onnx.load(str(path)), onnx.load(str(model))
    conv = [n for n in qdq.graph.node if n.op_type == "Conv"][1]  # a quantized one
    before = _weight_ints(path)[conv.name]
    x = np.ones((2, 16, 32, 32), np.float32)
    x[0, 3, 5, 5] = bad
    float_weights = {i.name: numpy_helper.to_array(i) for i in float_model.graph.initializer}
    # The same convolution in the float model: the second, in graph order.
    weights = float_weights[[n for n in float_model.graph.node if n.op_type == "Conv"][1].input[1]]
    assert _gptq_weights(qdq, conv, [x], weights, 0.1) is None
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    producer = {o: n for n in qdq.graph.node for o in n.output}
    assert np.array_equal(inits[producer[conv.input[1]].input[0]], before)


def test_copies_made_by_other_code_are_made_again(
    model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The int8 cache key includes a digest of the code that makes copies: a copy
    made by an older deepspark (or an edited checkout) is not reused."""
    from deepspark.models import optimize

    first = quantize_int8(model, PRE, "input")
    assert quantize_int8(model, PRE, "input") == first  # the same code: reused
    monkeypatch.setattr(optimize, "_int8_code_digest", lambda: "other-code")
    second = quantize_int8(model, PRE, "input")
    assert second != first and second.is_file() and first.is_file()

"""int8 bias correction (``Int8Settings.bias_correction``): after quantizing, each
quantized convolution's mean output per channel equals the float model's on the
calibration photos, with nothing but the int32 biases changed.

What it is for, the real model's top-1 agreement with its float model on held-out
photos, is tested in tests/runtime/test_fast_path.py and measured by
benchmarks/int8_sweep.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from deepspark.models.optimize import (
    EXACT_INT8_SETTINGS,
    Int8Settings,
    calibration_pixels,
    quantize_int8,
)
from deepspark.runtime.preprocess import to_batch
from tests.models._int8_helpers import PRE, tiny_conv_classifier

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("skimage")
numpy_helper = onnx.numpy_helper


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_conv_classifier(tmp_path_factory.mktemp("bias") / "tiny.onnx")


def _quantized(model: Path, settings: Int8Settings, correct: bool) -> Path:
    return quantize_int8(
        model, PRE, "input", settings=dataclasses.replace(settings, bias_correction=correct)
    )


def _conv_means(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """Per-channel mean output of every Conv, in graph order, computed as written
    (ONNX Runtime's optimizations off: the quantized values multiplied in float)."""
    m = onnx.load(str(path))
    convs = [n.output[0] for n in m.graph.node if n.op_type == "Conv"]
    m.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in convs)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [out.mean(axis=(0, 2, 3)) for out in sess.run(convs, {"input": x})]


def _bias_steps(path: Path) -> dict[int, np.ndarray]:
    """Conv index (graph order) -> the float value of one step of its int32 bias."""
    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    producer = {o: n for n in m.graph.node for o in n.output}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    return {
        k: inits[producer[n.input[2]].input[1]]
        for k, n in enumerate(convs)
        if len(n.input) > 2 and n.input[2] in producer
    }


@pytest.mark.parametrize("settings", [Int8Settings(), EXACT_INT8_SETTINGS], ids=["7bit", "8bit"])
def test_corrected_convolutions_match_the_float_means(model: Path, settings: Int8Settings) -> None:
    x = to_batch(calibration_pixels(PRE, 32), PRE)  # what quantize_int8 calibrates on
    want = _conv_means(model, x)
    plain = _conv_means(_quantized(model, settings, correct=False), x)
    corrected = _conv_means(_quantized(model, settings, correct=True), x)
    steps = _bias_steps(_quantized(model, settings, correct=True))
    assert len(steps) == 3  # the three quantized convolutions (the first stays float)
    for k, step in steps.items():
        # Within half a bias step (the rounding of an integer bias) of the float mean.
        assert np.all(np.abs(corrected[k] - want[k]) <= step / 2 + 1e-5), k
    shifted = max(np.abs(plain[k] - want[k]).max() / steps[k].max() for k in steps)
    assert shifted > 2  # without the correction, means are several steps off


def test_only_the_int32_biases_change(model: Path, tmp_path: Path) -> None:
    from deepspark.models._int8_bias import add_zero_biases

    # The same model with its biases written out (zeros), as exported models have them.
    biased = onnx.load(str(model))
    assert add_zero_biases(biased) == 4
    onnx.save(biased, str(tmp_path / "biased.onnx"))
    # Weights rounded to nearest in both (GPTQ, the default, rounds from the corrected
    # layers' outputs: tests/models/test_int8_gptq.py).
    nearest = Int8Settings(weight_rounding="nearest")
    before = onnx.load(str(_quantized(tmp_path / "biased.onnx", nearest, correct=False)))
    after = onnx.load(str(_quantized(tmp_path / "biased.onnx", nearest, correct=True)))
    # Same operators in the same order: ONNX Runtime fuses both into the same kernels.
    ops = [(n.op_type, list(n.input), list(n.output)) for n in after.graph.node]
    assert ops == [(n.op_type, list(n.input), list(n.output)) for n in before.graph.node]
    old = {i.name: numpy_helper.to_array(i) for i in before.graph.initializer}
    changed = {
        i.name: numpy_helper.to_array(i)
        for i in after.graph.initializer
        if not np.array_equal(numpy_helper.to_array(i), old[i.name])
    }
    assert changed and all(v.dtype == np.int32 for v in changed.values())


def _branchy_model(path: Path) -> Path:
    """conv0 -> (conv1 | conv2) -> Concat -> conv3 (+ conv0's output, a residual Add) ->
    pool -> Gemm: parallel branches and a tensor read again several layers later."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(11)

    def conv(name: str, x: str, cin: int, cout: int) -> list:
        w = numpy_helper.from_array(
            rng.normal(0, 0.3, (cout, cin, 3, 3)).astype(np.float32), f"{name}_w"
        )
        b = numpy_helper.from_array(rng.normal(0, 0.1, cout).astype(np.float32), f"{name}_b")
        node = helper.make_node(
            "Conv", [x, w.name, b.name], [f"{name}_out"], name=name, pads=[1] * 4
        )
        relu = helper.make_node("Relu", [f"{name}_out"], [name], name=f"{name}_relu")
        return [node, relu, w, b]

    parts = (
        conv("conv0", "input", 3, 8)
        + conv("conv1", "conv0", 8, 4)
        + conv("conv2", "conv0", 8, 4)
        + conv("conv3", "cat", 8, 8)
    )
    nodes = [p for p in parts if isinstance(p, onnx.NodeProto)]
    inits = [p for p in parts if isinstance(p, onnx.TensorProto)]
    fc = numpy_helper.from_array(rng.normal(0, 1, (8, 10)).astype(np.float32), "fc_w")
    nodes += [
        helper.make_node("Concat", ["conv1", "conv2"], ["cat"], name="cat", axis=1),
        helper.make_node("Add", ["conv3", "conv0"], ["res"], name="res"),
        helper.make_node("GlobalAveragePool", ["res"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flat", axis=1),
        helper.make_node("Gemm", ["flat", "fc_w"], ["logits"], name="fc"),
    ]
    # Topological order: the Concat before conv3.
    order = ["conv0", "conv0_relu", "conv1", "conv1_relu", "conv2", "conv2_relu", "cat"]
    nodes.sort(key=lambda n: order.index(n.name) if n.name in order else len(order))
    graph = helper.make_graph(
        nodes,
        "branchy",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [*inits, fc],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_branches_and_residuals_are_corrected(tmp_path: Path) -> None:
    """A tensor read by two later segments (conv0's output: both branches and the Add)
    stays available until its last reader."""
    model = _branchy_model(tmp_path / "branchy.onnx")
    x = to_batch(calibration_pixels(PRE, 32), PRE)
    want = _conv_means(model, x)
    corrected = _quantized(model, Int8Settings(), correct=True)
    got = _conv_means(corrected, x)
    steps = _bias_steps(corrected)
    assert sorted(steps) == [1, 2, 3]  # conv0, the first, stays float
    for k, step in steps.items():
        assert np.all(np.abs(got[k] - want[k]) <= step / 2 + 1e-5), k


def test_float_nodes_stay_float_and_unknown_names_are_refused(tmp_path: Path) -> None:
    """Int8Settings.float_nodes keeps the named nodes in float (their weights stay float
    initializers) and refuses a name the model does not have, naming its convolutions."""
    from deepspark.errors import InvalidParameterError

    model = _branchy_model(tmp_path / "branchy.onnx")
    kept = onnx.load(
        str(quantize_int8(model, PRE, "input", settings=Int8Settings(float_nodes=("conv2",))))
    )
    inits = {i.name: i for i in kept.graph.initializer}
    conv = {n.name: n for n in kept.graph.node if n.op_type == "Conv"}
    assert conv["conv2"].input[1] == "conv2_w"  # the float weights, read directly
    assert inits["conv2_w"].data_type == onnx.TensorProto.FLOAT
    assert conv["conv1"].input[1] != "conv1_w"  # its neighbour is quantized
    with pytest.raises(InvalidParameterError, match="no node of the model: convX.*conv0"):
        quantize_int8(model, PRE, "input", settings=Int8Settings(float_nodes=("convX",)))

"""Nodes an int8 copy keeps in float run in float.

ONNX Runtime's ``WeightBiasQuantization`` rewrite quantizes, per tensor, the float
weights of a convolution whose input comes from a ``DequantizeLinear``: exactly the
layers ``Int8Settings.float_nodes`` keeps in float. deepspark's int8 copies ask for it
to be skipped (file metadata), and :class:`OnnxModel` does so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepspark.models.cache import ShippedFile, file_sha256
from deepspark.models.loader import ModelRef
from deepspark.models.onnx import DISABLED_OPTIMIZERS_KEY, KEEP_FLOAT_NODES_FLOAT, OnnxModel
from deepspark.models.optimize import Int8Settings, calibration_pixels, quantize_int8
from deepspark.runtime.preprocess import to_batch
from tests.models._int8_helpers import PRE

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("skimage")


def _model(path: Path) -> Path:
    """input -> conv0 -> conv1 -> conv2 -> conv3 (each + Relu) -> pool -> Gemm.

    conv1's last channel is always 0 (negative weights and bias on non-negative inputs),
    and conv2 reads it with weights of 1000. Harmless in float; but one int8 scale for
    all of conv2's weights would be ~1000/127, rounding every other weight (~0.2) to 0.
    """
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    nodes, inits, x, cin = [], [], "input", 3
    for k in range(4):
        w = rng.normal(0, 0.2, (8, cin, 3, 3)).astype(np.float32)
        b = rng.normal(0, 0.05, 8).astype(np.float32)
        if k == 1:
            w[7], b[7] = -np.abs(w[7]), -1.0
        if k == 2:
            w[:, 7] = 1000.0
        inits += [numpy_helper.from_array(w, f"w{k}"), numpy_helper.from_array(b, f"b{k}")]
        nodes += [
            helper.make_node(
                "Conv", [x, f"w{k}", f"b{k}"], [f"c{k}"], name=f"conv{k}", pads=[1] * 4
            ),
            helper.make_node("Relu", [f"c{k}"], [f"r{k}"], name=f"relu{k}"),
        ]
        x, cin = f"r{k}", 8
    inits.append(numpy_helper.from_array(rng.normal(0, 1, (8, 10)).astype(np.float32), "fc"))
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flat"),
        helper.make_node("Gemm", ["flat", "fc"], ["logits"], name="gemm"),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def _ort(path: Path, level: object, config: tuple[str, str] | None = None) -> object:
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    if config:
        so.add_session_config_entry(*config)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_float_node_runs_in_float_in_onnx_model(tmp_path: Path) -> None:
    """OnnxModel runs conv2, kept in float, in float (as ONNX Runtime computes the file
    with its optimizations off); ONNX Runtime's default session quantizes its weights
    per tensor and gets a very different answer."""
    path = quantize_int8(
        _model(tmp_path / "chain.onnx"),
        PRE,
        "input",
        settings=Int8Settings(float_nodes=("conv2",)),
    )
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta[DISABLED_OPTIMIZERS_KEY] == KEEP_FLOAT_NODES_FLOAT[1]

    x = to_batch(calibration_pixels(PRE, 16, seed=4), PRE)
    levels = ort.GraphOptimizationLevel
    written = _ort(path, levels.ORT_DISABLE_ALL).run(["logits"], {"input": x})[0]

    def error(logits: np.ndarray) -> float:
        return float(np.abs(logits - written).max() / np.abs(written).max())

    ours = OnnxModel(path, threads=1).predict({"input": x})["logits"]
    default = _ort(path, levels.ORT_ENABLE_ALL).run(["logits"], {"input": x})[0]
    fixed = _ort(path, levels.ORT_ENABLE_ALL, KEEP_FLOAT_NODES_FLOAT).run(["logits"], {"input": x})
    nothing_disabled = OnnxModel(path, threads=1, disabled_optimizers=()).predict({"input": x})
    assert error(ours) < 0.05, error(ours)  # int8 kernels' rounding at most
    assert error(fixed[0]) < 0.05
    assert error(default) > 0.3, error(default)  # conv2's weights rounded to ~0
    # The difference is the rewrite: with none disabled, OnnxModel computes the same.
    assert error(nothing_disabled["logits"]) > 0.3

    # What executors load: a ModelRef's options reach OnnxModel (the int8 transformers
    # pass the setting up front; an empty one here shows it is not ignored).
    shipped = ShippedFile(file_sha256(path), path.name, str(path))
    for options, off in (
        ((("disabled_optimizers", KEEP_FLOAT_NODES_FLOAT[1:]),), False),
        ((("disabled_optimizers", ()),), True),
    ):
        got = ModelRef("onnx", shipped, options).load(threads=1).predict({"input": x})
        assert (error(got["logits"]) > 0.3) is off, options

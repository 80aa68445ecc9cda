"""A tiny real ONNX image model built in the tests (no weights to download).

``pixels`` (N, 3, 8, 8) -> ``mean``: per-channel mean (N, 3), and ``flat``: every
input value (N, 192). With preprocessing scale 1/255, mean 0, std 1, the ``mean``
output of a one-colour image is that colour / 255, which the tests check exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: preprocessing Params that match the model
TINY_PARAMS = {"inputSize": [8, 8], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


def write_tiny_onnx(path: Path) -> Path:
    """Write the model to ``path`` and return it."""
    import onnx
    from onnx import TensorProto, helper

    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, 8, 8])
    mean = helper.make_tensor_value_info("mean", TensorProto.FLOAT, ["N", 3])
    flat = helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["N", 192])
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["mean"], axis=1),
            helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        ],
        "tiny",
        [pixels],
        [mean, flat],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def solid_png(path: Path, rgb: tuple[int, int, int], size: int = 16) -> Path:
    """A one-colour PNG."""
    from PIL import Image

    Image.fromarray(np.full((size, size, 3), rgb, np.uint8)).save(path)
    return path

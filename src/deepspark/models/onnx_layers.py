"""Reading an inner layer of an ONNX model: the tensor made an extra graph output.

Transfer learning often wants a layer that is not a model output (the pooled features
before the classifier). For ONNX the value can be exposed without touching weights:
a copy of the graph lists it as one more output. The copy is cached on local disk by
the model's content hash and the layer name.

>>> from deepspark.models.onnx_layers import with_layer_output
>>> with_layer_output("classifier.onnx", "pool_out")            # doctest: +SKIP
PosixPath('/root/.cache/deepspark/layers/3f2a...-pool_out.onnx')
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from deepspark._deps import require
from deepspark.errors import InvalidParameterError
from deepspark.models.cache import cache_dir, file_sha256

__all__ = ["onnx_outputs", "with_layer_output"]


def onnx_outputs(path: str | Path) -> list[str]:
    """Names of the graph outputs of an ONNX file (weights are not loaded)."""
    onnx = require("onnx", "Reading ONNX model layers")
    model = onnx.load(str(path), load_external_data=False)
    return [o.name for o in model.graph.output]


def with_layer_output(path: str | Path, layer: str) -> Path:
    """An ONNX file like ``path`` whose outputs also include the tensor ``layer``.

    Returns ``path`` itself when ``layer`` already is an output. Raises
    :class:`InvalidParameterError`, listing some of the tensor names, when the graph has
    no tensor of that name.
    """
    onnx = require("onnx", "Reading ONNX model layers")
    path = Path(path)
    sha = file_sha256(path)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", layer)[:80]
    target = cache_dir("layers") / f"{sha[:16]}-{safe}.onnx"
    if target.is_file():
        return target

    model = onnx.load(str(path))
    if layer in (o.name for o in model.graph.output):
        return path
    produced = [out for node in model.graph.node for out in node.output if out]
    if layer not in produced:
        sample = ", ".join(produced[-12:])
        raise InvalidParameterError(
            f"model {path.name} has no output or layer {layer!r}; outputs are "
            f"{[o.name for o in model.graph.output]}, the last layers are: {sample} "
            "(Netron or onnx.load(...).graph.node show all names)"
        )
    try:
        typed = onnx.shape_inference.infer_shapes(model).graph.value_info
        info = next((v for v in typed if v.name == layer), None)
    except Exception:  # noqa: BLE001 - shapes are optional: ONNX Runtime infers them
        info = None
    model.graph.output.append(info or onnx.helper.make_empty_tensor_value_info(layer))
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, target)  # atomic: concurrent writers never see a partial file
    return target

"""Caffe models (``.prototxt`` + ``.caffemodel``) run by OpenCV's DNN module.

The two files travel together: the driver stages them in one folder named by their
content hash (:func:`deepspark.models.cache.bundle_files`), which is shipped and
cached as one model. Caffe2 models go through ONNX instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from deepspark._deps import require
from deepspark.errors import InvalidParameterError, ModelLoadError, ModelNotFoundError
from deepspark.models.base import Model, Signature, TensorSpec

__all__ = ["CAFFEMODEL", "PROTOTXT", "CaffeModel", "caffe_pair"]

#: names of the two files inside a shipped Caffe bundle folder
PROTOTXT = "deploy.prototxt"
CAFFEMODEL = "weights.caffemodel"


def caffe_pair(path: Path, prototxt: str | Path | None = None) -> tuple[Path, Path]:
    """The (prototxt, caffemodel) of a Caffe model given as either file, or a folder.

    A ``.caffemodel`` finds its prototxt next to it (same stem, or ``deploy.prototxt``)
    unless ``prototxt`` is given; a folder must hold exactly one of each.
    """
    if path.is_dir():
        protos = sorted(path.glob("*.prototxt"))
        weights = sorted(path.glob("*.caffemodel"))
        if len(protos) != 1 or len(weights) != 1:
            raise ModelNotFoundError(
                f"Caffe folder {path} must hold one .prototxt and one .caffemodel; found "
                f"{[p.name for p in protos + weights]}"
            )
        return protos[0], weights[0]
    if path.suffix.lower() == ".prototxt":
        proto, weights = path, Path(prototxt) if prototxt else path.with_suffix(".caffemodel")
    else:
        weights = path
        if prototxt:
            proto = Path(prototxt)
        else:
            candidates = [path.with_suffix(".prototxt"), path.with_name("deploy.prototxt")]
            proto = next((c for c in candidates if c.is_file()), candidates[0])
    for role, file in (
        ("network definition (.prototxt)", proto),
        ("weights (.caffemodel)", weights),
    ):
        if not file.is_file():
            raise ModelNotFoundError(
                f"Caffe {role} not found: {file}; a Caffe model needs both files "
                "(pass prototxt=<path> when it is not next to the .caffemodel)"
            )
    return proto, weights


_INPUT_LAYER = re.compile(
    r'layer\s*\{[^{}]*?type:\s*"Input"[^{}]*?top:\s*"([^"]+)"[^{}]*?input_param\s*\{\s*shape\s*\{([^}]*)\}',
    re.DOTALL,
)
_INPUT_LAYER_TOP_LAST = re.compile(
    r'layer\s*\{[^{}]*?top:\s*"([^"]+)"[^{}]*?type:\s*"Input"[^{}]*?input_param\s*\{\s*shape\s*\{([^}]*)\}',
    re.DOTALL,
)


def _prototxt_inputs(text: str) -> list[TensorSpec]:
    """Inputs declared by a deploy prototxt (``Input`` layers or top-level ``input:``)."""
    specs = []
    for pattern in (_INPUT_LAYER, _INPUT_LAYER_TOP_LAST):
        for name, dims in pattern.findall(text):
            shape = tuple(int(d) for d in re.findall(r"dim:\s*(\d+)", dims))
            if all(s.name != name for s in specs):
                specs.append(TensorSpec(name, "float32", (-1, *shape[1:])))
    if not specs:
        names = re.findall(r'^\s*input:\s*"([^"]+)"', text, re.MULTILINE)
        dims = [int(d) for d in re.findall(r"^\s*input_dim:\s*(\d+)", text, re.MULTILINE)]
        if not dims:
            block = re.search(r"input_shape\s*\{([^}]*)\}", text)
            dims = [int(d) for d in re.findall(r"dim:\s*(\d+)", block.group(1))] if block else []
        for i, name in enumerate(names):
            shape = tuple(dims[4 * i + 1 : 4 * i + 4]) if len(dims) >= 4 * (i + 1) else ()
            specs.append(TensorSpec(name, "float32", (-1, *shape) if shape else ()))
    return specs


class CaffeModel(Model):
    """A Caffe network run by OpenCV DNN (``cv2.dnn.readNetFromCaffe``).

    Parameters
    ----------
    path : str or Path
        A folder holding one ``.prototxt`` and one ``.caffemodel``, or either file (the
        other is looked up next to it, or given with ``prototxt``).
    threads : int, optional
        OpenCV threads (process-wide).
    prototxt : str or Path, optional

    Examples
    --------
    >>> m = CaffeModel("net.caffemodel", prototxt="deploy.prototxt")   # doctest: +SKIP
    >>> m.predict({"data": batch})["prob"].shape                       # doctest: +SKIP
    """

    framework = "caffe"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        prototxt: str | Path | None = None,
    ) -> None:
        cv2 = require("cv2", "Running Caffe models (OpenCV DNN)")
        if not hasattr(cv2.dnn, "readNetFromCaffe"):
            raise ModelLoadError(
                f"OpenCV {cv2.__version__} has no Caffe importer (OpenCV 5 dropped it); "
                "install opencv-python-headless<5 (pip install 'deepspark[caffe]')"
            )
        proto, weights = caffe_pair(Path(path), prototxt)
        if threads:
            cv2.setNumThreads(int(threads))
        try:
            self._net = cv2.dnn.readNetFromCaffe(str(proto), str(weights))
        except cv2.error as exc:
            reason = str(exc).strip().splitlines()[-1]
            raise ModelLoadError(
                f"OpenCV cannot load the Caffe model {proto.name} + {weights.name}: {reason} "
                "(are both files complete, and do the layer names match?)"
            ) from exc
        if self._net.empty():
            raise ModelLoadError(f"OpenCV loaded an empty network from {proto} + {weights}")
        inputs = _prototxt_inputs(proto.read_text(encoding="utf-8", errors="replace"))
        if not inputs:
            raise InvalidParameterError(
                f"cannot find the input of {proto}: declare it with an Input layer "
                "(input_param { shape { dim: ... } }) or input: / input_dim"
            )
        self._out_names = list(self._net.getUnconnectedOutLayersNames())
        self._signature = Signature(
            tuple(inputs), tuple(TensorSpec(n, "float32", ()) for n in self._out_names)
        )
        self.path = Path(path)

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._signature.check_inputs(inputs)
        for spec in self._signature.inputs:
            arr = np.ascontiguousarray(inputs[spec.name], dtype=np.float32)
            self._net.setInput(arr, spec.name)
        outs = self._net.forward(self._out_names)
        return {n: np.array(o, copy=True) for n, o in zip(self._out_names, outs)}

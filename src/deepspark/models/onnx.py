"""ONNX models through ONNX Runtime."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepspark._deps import require
from deepspark.errors import ModelLoadError, ModelNotFoundError
from deepspark.models.base import Model, Signature, TensorSpec

__all__ = ["OnnxModel"]

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or ()))
    return TensorSpec(arg.name, _ORT_TYPES.get(arg.type, arg.type), shape)


class OnnxModel(Model):
    """An ``.onnx`` file run by ONNX Runtime.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file.
    threads : int, optional
        Intra-op threads; defaults to ONNX Runtime's choice (all cores). On Spark the
        runtime passes the task's CPU share so concurrent tasks do not oversubscribe.
    providers : list, optional
        Execution providers, each a name or ``(name, options)``, e.g.
        ``[("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]``;
        default CPU. Providers this ONNX Runtime build lacks are skipped (CPU remains).

    Examples
    --------
    >>> m = OnnxModel("model.onnx", threads=1)                 # doctest: +SKIP
    >>> m.predict({"input": batch})["logits"].shape            # doctest: +SKIP
    """

    framework = "onnx"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        providers: list[Any] | None = None,
    ) -> None:
        ort = require("onnxruntime", "Running ONNX models")
        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"ONNX model file not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        chosen = [
            p
            for p in (providers or ["CPUExecutionProvider"])
            if (p[0] if isinstance(p, tuple) else p) in available
        ]
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=chosen or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types
            raise ModelLoadError(
                f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]} "
                "(is the file complete and a valid .onnx model?)"
            ) from exc
        self.path = path
        self._signature = Signature(
            tuple(_spec(a) for a in self._session.get_inputs()),
            tuple(_spec(a) for a in self._session.get_outputs()),
        )

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def providers(self) -> list[str]:
        return list(self._session.get_providers())

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._signature.check_inputs(inputs)
        feed = {
            spec.name: np.ascontiguousarray(inputs[spec.name], dtype=spec.dtype)
            if spec.dtype != "str"
            else inputs[spec.name]
            for spec in self._signature.inputs
        }
        outputs = self._session.run(None, feed)
        return dict(zip(self._signature.output_names, outputs))

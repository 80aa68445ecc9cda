"""The model interface every backend implements: :class:`Model` and its :class:`Signature`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepspark.errors import SignatureError

__all__ = ["Model", "Signature", "TensorSpec"]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model.

    Parameters
    ----------
    name : str
    dtype : str
        numpy dtype name, e.g. ``"float32"``.
    shape : tuple of int
        ``-1`` marks a dimension of any size (the batch, usually the first).
    """

    name: str
    dtype: str
    shape: tuple[int, ...]

    def __str__(self) -> str:
        dims = ", ".join("?" if d < 0 else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass(frozen=True)
class Signature:
    """Inputs and outputs of a model, in order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default_factory=tuple)

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def __str__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        return f"({ins}) -> ({outs})"

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        """Plain data for a JSON record; :meth:`from_json` reads it back.

        >>> sig = Signature((TensorSpec("x", "float32", (-1, 3)),))
        >>> Signature.from_json(sig.to_json()) == sig
        True
        """
        return {
            side: [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in tensors]
            for side, tensors in (("inputs", self.inputs), ("outputs", self.outputs))
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Signature:
        """The signature :meth:`to_json` wrote (KeyError/TypeError/ValueError if malformed)."""

        def specs(side: str) -> tuple[TensorSpec, ...]:
            return tuple(
                TensorSpec(str(t["name"]), str(t["dtype"]), tuple(int(d) for d in t["shape"]))
                for t in data[side]
            )

        return cls(inputs=specs("inputs"), outputs=specs("outputs"))

    def check_inputs(self, batch: Mapping[str, np.ndarray]) -> None:
        """Raise :class:`SignatureError` when ``batch`` does not fit the inputs."""
        missing = [n for n in self.input_names if n not in batch]
        if missing:
            raise SignatureError(f"model input(s) {missing} not given; the model expects {self}")
        for spec in self.inputs:
            arr = batch[spec.name]
            if len(spec.shape) and arr.ndim != len(spec.shape):
                raise SignatureError(
                    f"input '{spec.name}' has shape {arr.shape} but the model expects "
                    f"{len(spec.shape)} dimensions ({spec}); the model's signature is {self}"
                )
            for got, want in zip(arr.shape, spec.shape):
                if want >= 0 and got != want:
                    raise SignatureError(
                        f"input '{spec.name}' has shape {arr.shape} but the model expects "
                        f"{spec}; the model's signature is {self}"
                    )


class Model(ABC):
    """A loaded model: a signature and a batched ``predict``.

    Backends (ONNX Runtime, PyTorch, TensorFlow/Keras, OpenCV-Caffe) subclass it. A
    ``Model`` lives in one process; to use a model on Spark, transformers store where
    the model is and each executor loads its own copy once per Python worker.
    """

    #: framework name, e.g. "onnx"
    framework: str = ""

    @property
    @abstractmethod
    def signature(self) -> Signature:
        """Names, dtypes and shapes of inputs and outputs."""

    @abstractmethod
    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch: input name -> array, to output name -> array."""

    def predict_rows(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """:meth:`predict` for any number of rows, inputs and outputs batch-major.

        A model exported with a fixed batch size (``torch.export`` without
        ``dynamic_shapes``, an ONNX file with a numeric first dimension) gets the rows
        in pieces of that size, the last one padded with copies of its last row (their
        outputs dropped), so a transformer's ``batchSize`` need not match it.

        Examples
        --------
        >>> model.signature                                  # doctest: +SKIP
        (x: float32[1, 3, 224, 224]) -> (logits: float32[1, 1000])
        >>> model.predict_rows({"x": batch_of_5})["logits"].shape   # doctest: +SKIP
        (5, 1000)
        """
        fixed = {s.shape[0] for s in self.signature.inputs if s.shape and s.shape[0] > 0}
        rows = {len(v) for v in inputs.values()}
        if len(fixed) != 1 or len(rows) != 1 or rows == fixed:
            return self.predict(inputs)
        (size,), (n,) = fixed, rows
        parts = []
        for start in range(0, n, size):
            part = {k: np.asarray(v[start : start + size]) for k, v in inputs.items()}
            real = min(size, n - start)
            if real < size:
                part = {
                    k: np.concatenate([v, np.repeat(v[-1:], size - real, axis=0)])
                    for k, v in part.items()
                }
            parts.append({k: np.asarray(v)[:real] for k, v in self.predict(part).items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.signature}>"

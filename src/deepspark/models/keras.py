"""Keras 3 models (``.keras`` and legacy ``.h5``) run by Keras on TensorFlow.

Loaded with ``safe_mode=True``: a model whose config holds Python code (a ``Lambda``
layer's lambda) is refused with :class:`UnsafeModelError` unless ``trust_pickle=True``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepspark._deps import require
from deepspark.errors import ModelLoadError, ModelNotFoundError, UnsafeModelError
from deepspark.models._tf import import_tensorflow, tf_dtype_name
from deepspark.models.base import Model, Signature, TensorSpec

__all__ = ["KerasModel", "save_keras_model"]


def _shape(shape: Any) -> tuple[int, ...]:
    return tuple(-1 if d is None else int(d) for d in shape)


def _import_keras(threads: int | None) -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import_tensorflow(threads, "Running Keras models")
    return require("keras", "Running Keras models")


class KerasModel(Model):
    """A Keras 3 model file (``.keras`` or ``.h5``).

    Parameters
    ----------
    path : str or Path
    threads : int, optional
        TensorFlow intra-op threads (the first model in a process sets them).
    custom_objects : dict, optional
        Custom layers/functions by name, as for ``keras.saving.load_model``.
    trust_pickle : bool, default False
        Allow configs that carry Python code (``Lambda`` layers); off by default.

    Examples
    --------
    >>> m = KerasModel("classifier.keras")                     # doctest: +SKIP
    >>> m.signature                                            # doctest: +SKIP
    (image: float32[?, 64, 64, 3]) -> (logits: float32[?, 10])
    """

    framework = "keras"

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        custom_objects: Mapping[str, Any] | None = None,
        trust_pickle: bool = False,
    ) -> None:
        keras = _import_keras(threads)
        path = Path(path)
        if not path.exists():
            raise ModelNotFoundError(f"Keras model file not found: {path}")
        try:
            model = keras.saving.load_model(
                str(path),
                custom_objects=dict(custom_objects or {}),
                compile=False,
                safe_mode=not trust_pickle,
            )
        except Exception as exc:
            text = str(exc)
            if "safe_mode" in text or "arbitrary code" in text:
                raise UnsafeModelError(
                    f"{path} holds Python code (e.g. a Lambda layer) that Keras refuses in "
                    "safe mode; pass trust_pickle=True (trustPickle=True on transformers) if "
                    "you trust the file's origin, or "
                    "replace the Lambda with a registered custom layer (custom_objects=)"
                ) from exc
            raise ModelLoadError(
                f"Keras cannot load {path}: {text.splitlines()[0] if text else type(exc).__name__}"
                " (is the file complete? custom layers need custom_objects=)"
            ) from exc
        self._model = model
        self.path = path
        inputs = [
            TensorSpec(_input_name(t), tf_dtype_name(t.dtype), _shape(t.shape))
            for t in model.inputs
        ]
        names = list(getattr(model, "output_names", None) or [])
        if len(names) != len(model.outputs):
            names = [f"output_{i}" for i in range(len(model.outputs))]
        outputs = [
            TensorSpec(n, tf_dtype_name(t.dtype), _shape(t.shape))
            for n, t in zip(names, model.outputs)
        ]
        self._signature = Signature(tuple(inputs), tuple(outputs))

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def keras_model(self) -> Any:
        return self._model

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._signature.check_inputs(inputs)
        args = [np.ascontiguousarray(inputs[s.name], dtype=s.dtype) for s in self._signature.inputs]
        out = self._model(args if len(args) > 1 else args[0], training=False)
        if isinstance(out, Mapping):
            out = [out[n] for n in self._signature.output_names]
        elif not isinstance(out, (list, tuple)):
            out = [out]
        return {n: np.asarray(t) for n, t in zip(self._signature.output_names, out)}


def _input_name(tensor: Any) -> str:
    # Keras 3 keeps the Input(name=...) on the tensor's history layer.
    history = getattr(tensor, "_keras_history", None)
    if history is not None and getattr(history, "operation", None) is not None:
        return str(history.operation.name)
    return str(tensor.name).split(":")[0]


def save_keras_model(model: Any, target: Path) -> Path:
    """Save a live Keras model as ``.keras`` at ``target`` (atomically)."""
    tmp = target.with_name(f"{os.getpid()}-{target.name}")  # keras needs the .keras suffix
    model.save(str(tmp))
    os.replace(tmp, target)
    return target

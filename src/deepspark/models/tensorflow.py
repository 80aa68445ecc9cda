"""TensorFlow SavedModel folders, run through one of their signatures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepspark.errors import InvalidParameterError, ModelLoadError, ModelNotFoundError
from deepspark.models._tf import import_tensorflow, tf_dtype_name
from deepspark.models.base import Model, Signature, TensorSpec

__all__ = ["SavedModelModel", "is_saved_model"]


def is_saved_model(path: Path) -> bool:
    """A folder with ``saved_model.pb`` (or ``.pbtxt``)."""
    return path.is_dir() and (
        (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()
    )


def _spec(name: str, spec: Any) -> TensorSpec:
    shape = tuple(-1 if d is None else int(d) for d in spec.shape) if spec.shape.rank else ()
    return TensorSpec(name, tf_dtype_name(spec.dtype), shape)


class SavedModelModel(Model):
    """A TensorFlow SavedModel folder, called through the signature ``signature``.

    Parameters
    ----------
    path : str or Path
        The SavedModel folder (with ``saved_model.pb`` and ``variables/``).
    threads : int, optional
    signature : str, default "serving_default"
        Which signature to run; the error lists the available ones.

    Examples
    --------
    >>> m = SavedModelModel("export/1")                         # doctest: +SKIP
    >>> m.predict({"image": batch})["output_0"].shape           # doctest: +SKIP
    """

    framework = "tensorflow"

    def __init__(
        self, path: str | Path, threads: int | None = None, signature: str = "serving_default"
    ) -> None:
        tf = import_tensorflow(threads, "Running TensorFlow SavedModels")
        path = Path(path)
        if not path.exists():
            raise ModelNotFoundError(f"SavedModel folder not found: {path}")
        if not is_saved_model(path):
            raise ModelLoadError(f"{path} is not a SavedModel folder (no saved_model.pb in it)")
        try:
            self._loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ModelLoadError(
                f"TensorFlow cannot load SavedModel {path}: {str(exc).splitlines()[0]} "
                "(are saved_model.pb and variables/ complete?)"
            ) from exc
        sigs = dict(self._loaded.signatures)
        if signature not in sigs:
            raise InvalidParameterError(
                f"SavedModel {path} has no signature {signature!r}; it has {sorted(sigs)} "
                "(choose one with signature=)"
            )
        self._fn = sigs[signature]
        self._tf = tf
        self.path = path
        _, kwargs = self._fn.structured_input_signature
        outputs = self._fn.structured_outputs
        self._signature = Signature(
            tuple(_spec(n, s) for n, s in kwargs.items()),
            tuple(_spec(n, s) for n, s in outputs.items()),
        )

    @property
    def signature(self) -> Signature:
        return self._signature

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._signature.check_inputs(inputs)
        feed = {
            s.name: self._tf.constant(np.ascontiguousarray(inputs[s.name], dtype=s.dtype))
            for s in self._signature.inputs
        }
        out = self._fn(**feed)
        return {n: out[n].numpy() for n in self._signature.output_names}

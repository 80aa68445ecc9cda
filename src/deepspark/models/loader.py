"""Picklable references to models, loaded on executors through the per-worker cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepspark.models.base import Model
from deepspark.models.cache import ShippedFile, worker_cached

__all__ = ["BACKENDS", "ModelRef"]


def _load_onnx(
    path: str,
    threads: int | None,
    gpu: int | None,
    disabled_optimizers: tuple[str, ...] | None = None,
    **_: Any,
) -> Model:
    from deepspark.models.onnx import OnnxModel

    return OnnxModel(path, threads=threads, gpu=gpu, disabled_optimizers=disabled_optimizers)


def _load_torchscript(path: str, threads: int | None, gpu: int | None, **options: Any) -> Model:
    from deepspark.models.torch import TorchScriptModel

    return TorchScriptModel(
        path, threads=threads, input_shapes=options.get("input_shapes"), gpu=gpu
    )


def _load_torch_export(path: str, threads: int | None, gpu: int | None, **_: Any) -> Model:
    from deepspark.models.torch import TorchExportModel

    return TorchExportModel(path, threads=threads, gpu=gpu)


# Keras, TensorFlow and OpenCV place work on a GPU themselves when their build has one
# (TensorFlow: its first visible GPU); ``gpu`` is not passed to them.
def _load_keras(path: str, threads: int | None, gpu: int | None, **options: Any) -> Model:
    from deepspark.models.keras import KerasModel

    return KerasModel(
        path,
        threads=threads,
        custom_objects=dict(options.get("custom_objects") or ()),
        trust_pickle=bool(options.get("trust_pickle", False)),
    )


def _load_tensorflow(path: str, threads: int | None, gpu: int | None, **options: Any) -> Model:
    from deepspark.models.tensorflow import SavedModelModel

    return SavedModelModel(
        path, threads=threads, signature=options.get("signature") or "serving_default"
    )


def _load_caffe(path: str, threads: int | None, gpu: int | None, **_: Any) -> Model:
    from deepspark.models.caffe import CaffeModel

    return CaffeModel(path, threads=threads)


#: backend name -> loader(path, threads, gpu, **options) -> Model. Backend names
#: are finer than frameworks: PyTorch files are "torchscript" or "torch_export".
BACKENDS: dict[str, Any] = {
    "onnx": _load_onnx,
    "torchscript": _load_torchscript,
    "torch_export": _load_torch_export,
    "keras": _load_keras,
    "tensorflow": _load_tensorflow,
    "caffe": _load_caffe,
}


@dataclass(frozen=True)
class ModelRef:
    """Where a model is and how to load it; what transformers send to executors.

    Small and picklable: it holds a :class:`ShippedFile` (hash, name), never a live
    framework object.

    ``exact_int8_file`` is an int8 model's other copy, with full 8-bit weights, for
    executors whose CPU sums int8 products without saturating (VNNI, AMX, ARM) or
    that run on a GPU; ``file`` (7-bit weights) runs everywhere else. Each executor
    picks for itself, so a cluster of mixed CPUs gets the better file on each. A local
    session ships one copy, the one its CPU runs, as ``file`` alone.
    """

    framework: str
    file: ShippedFile
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    exact_int8_file: ShippedFile | None = None

    def file_here(self, gpu: int | None = None) -> ShippedFile:
        """The file this process runs (see ``exact_int8_file``)."""
        if self.exact_int8_file is not None:
            from deepspark.runtime._cpu import exact_int8_dot

            if gpu is not None or exact_int8_dot():
                return self.exact_int8_file
        return self.file

    def load(self, threads: int | None = None, gpu: int | None = None) -> Model:
        """The model, loaded once per Python worker (cached by content hash and settings).

        ``gpu`` is a CUDA device index (the task's ``gpu`` resource), None for the CPU.
        """
        file = self.file_here(gpu)
        key = (self.framework, file.sha256, self.options, threads, gpu)

        def factory() -> Model:
            loader = BACKENDS[self.framework]
            return loader(file.local_path(), threads, gpu, **dict(self.options))

        return worker_cached(key, factory)

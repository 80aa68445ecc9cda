"""ONNX models through ONNX Runtime."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepspark._deps import require
from deepspark.errors import ModelLoadError, ModelNotFoundError
from deepspark.models.base import Model, Signature, TensorSpec

__all__ = [
    "DISABLED_OPTIMIZERS_KEY",
    "KEEP_FLOAT_NODES_FLOAT",
    "OnnxModel",
    "external_data_files",
    "gpu_providers",
    "model_file",
]

_WARNED: set[str] = set()

#: The ONNX Runtime session config entry that runs a quantized (QDQ) model's float
#: nodes in float. Without it, ONNX Runtime's ``WeightBiasQuantization`` rewrite (basic
#: optimization level) quantizes the float weights of every Conv, ConvTranspose or
#: Gemm whose input comes from a ``DequantizeLinear`` to int8 with *one scale per
#: tensor*, so a layer deliberately kept in float loses more precision than the
#: per-channel int8 layers around it (EfficientNet-Lite0 with its second depthwise
#: convolution kept in float: 84.7% top-1 agreement with the float model with the
#: rewrite, 94.7% without, 93.3% with every layer int8; docs/benchmarks.md).
#: deepspark's int8 copies record it in their metadata
#: (:data:`DISABLED_OPTIMIZERS_KEY`) and :class:`OnnxModel` applies it. In your own
#: ONNX Runtime sessions: ``options.add_session_config_entry(*KEEP_FLOAT_NODES_FLOAT)``.
KEEP_FLOAT_NODES_FLOAT = ("optimization.disable_specified_optimizers", "WeightBiasQuantization")

#: Model metadata key (``metadata_props``) naming ONNX Runtime graph rewrites to
#: disable when running the file, comma-separated; :class:`OnnxModel` honours it.
DISABLED_OPTIMIZERS_KEY = "deepspark.disabled_optimizers"


def model_file(path: Path) -> Path:
    """The ``.onnx`` file at ``path``, or the one inside the folder ``path`` (a model
    shipped with its external data files, see :func:`external_data_files`)."""
    if path.is_dir():
        found = sorted(path.glob("*.onnx"))
        if len(found) == 1:
            return found[0]
        raise ModelNotFoundError(
            f"expected one .onnx file in {path}, found {len(found)}: {[p.name for p in found]}"
        )
    if not path.is_file():
        raise ModelNotFoundError(f"ONNX model file not found: {path}")
    return path


#: How a tensor's external-data entry ``key: "location"`` is encoded in the protobuf
#: (StringStringEntryProto field 1, length 8). No such bytes: no external data.
_LOCATION_KEY = b"\n\x08location"


def _mentions_location(model: Path) -> bool:
    """Whether the file's bytes hold an external-data location entry (a byte search,
    much cheaper than parsing a large model's protobuf on the driver at every job)."""
    import mmap

    try:
        with open(model, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                return False
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return mm.find(_LOCATION_KEY) != -1
    except (OSError, ValueError):
        return True  # let the parser (and then ONNX Runtime) report what is wrong


def external_data_files(model: Path) -> list[str]:
    """The files, next to ``model``, that hold its external tensor data (models over
    2 GB must keep weights outside the protobuf; ``torch.onnx.export`` writes them to
    ``<name>.data``). Names only; paths with folders are not followed.
    """
    from deepspark._deps import available

    if not available("onnx"):
        guess = model.with_name(model.name + ".data")
        return [guess.name] if guess.is_file() else []
    if not _mentions_location(model):
        return []
    import onnx

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception:  # noqa: BLE001 - a broken file: ONNX Runtime says what is wrong
        return []
    tensors = list(proto.graph.initializer)
    tensors += [a.t for node in proto.graph.node for a in node.attribute if a.HasField("t")]
    names = {
        entry.value
        for tensor in tensors
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return sorted(n for n in names if "/" not in n and "\\" not in n and ".." not in n)


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


def gpu_providers(gpu: int, available: list[str]) -> list[Any]:
    """Execution providers for CUDA device ``gpu``, CPU where this build has no CUDA.

    Examples
    --------
    >>> gpu_providers(1, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    [('CUDAExecutionProvider', {'device_id': 1}), 'CPUExecutionProvider']
    """
    if "CUDAExecutionProvider" in available:
        return [("CUDAExecutionProvider", {"device_id": int(gpu)}), "CPUExecutionProvider"]
    if "onnx-cuda" not in _WARNED:
        _WARNED.add("onnx-cuda")
        # A warning, not a log record: nothing configures logging in a Python worker,
        # and warnings reach its stderr (the executor's log in the Spark UI).
        warnings.warn(
            f"this task was given GPU {gpu} but ONNX Runtime here has no "
            f"CUDAExecutionProvider (providers: {', '.join(available)}); running on the "
            "CPU. Install onnxruntime-gpu instead of onnxruntime on the executors to use "
            "the GPU.",
            RuntimeWarning,
            stacklevel=2,
        )
    return ["CPUExecutionProvider"]


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
    gpu : int, optional
        Run on this CUDA device (``CUDAExecutionProvider``, CPU for operators it lacks)
        unless ``providers`` is given. Where this ONNX Runtime build has no CUDA
        provider (the ``onnxruntime`` package is CPU-only; ``onnxruntime-gpu`` has it)
        the model runs on the CPU and a warning says so, once per process.
    disabled_optimizers : sequence of str, optional
        ONNX Runtime graph rewrites to skip (session config
        ``optimization.disable_specified_optimizers``). Default: those the file's
        metadata names under :data:`DISABLED_OPTIMIZERS_KEY` (deepspark's int8 copies
        name ``WeightBiasQuantization``, see :data:`KEEP_FLOAT_NODES_FLOAT`), else none.

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
        gpu: int | None = None,
        disabled_optimizers: Sequence[str] | None = None,
    ) -> None:
        ort = require("onnxruntime", "Running ONNX models")
        if providers is None and gpu is not None:
            providers = gpu_providers(gpu, ort.get_available_providers())
        path = model_file(Path(path))
        available = ort.get_available_providers()
        chosen = [
            p
            for p in (providers or ["CPUExecutionProvider"])
            if (p[0] if isinstance(p, tuple) else p) in available
        ] or ["CPUExecutionProvider"]
        self._session = self._load(ort, path, threads, chosen, disabled_optimizers or ())
        if disabled_optimizers is None:
            # The file may ask for rewrites to be skipped. Its metadata is only readable
            # from a session, so such a file given by path (an int8 copy made by
            # quantize_int8) is loaded a second time, with them skipped.
            meta = self._session.get_modelmeta().custom_metadata_map
            wanted = [n for n in meta.get(DISABLED_OPTIMIZERS_KEY, "").split(",") if n]
            if wanted:
                self._session = self._load(ort, path, threads, chosen, wanted)
        self.path = path
        self._signature = Signature(
            tuple(_spec(a) for a in self._session.get_inputs()),
            tuple(_spec(a) for a in self._session.get_outputs()),
        )

    @staticmethod
    def _load(
        ort: Any, path: Path, threads: int | None, providers: list[Any], disabled: Sequence[str]
    ) -> Any:
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if disabled:
            options.add_session_config_entry(KEEP_FLOAT_NODES_FLOAT[0], ",".join(disabled))
        try:
            return ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf types
            raise ModelLoadError(
                f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]} "
                "(is the file complete and a valid .onnx model?)"
            ) from exc

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

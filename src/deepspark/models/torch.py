"""PyTorch models: TorchScript files, ``torch.export`` programs, and live ``nn.Module``\\ s.

Executors never unpickle anything: TorchScript (``torch.jit.save``) and ``torch.export``
(``.pt2``) files hold code and weights without pickled Python objects, and a live
``nn.Module`` is exported on the driver (to ONNX, else TorchScript) so only a file
travels. A file written by ``torch.save(module)`` (a pickled full model) is refused
unless ``trust_pickle=True``; then it is unpickled once on the driver and exported.

Output names are ``output`` for a single tensor and ``output_0``, ``output_1``... for a
tuple, the same whichever engine (native PyTorch or ONNX Runtime) runs the model.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepspark._deps import require
from deepspark.errors import (
    InvalidParameterError,
    ModelLoadError,
    ModelNotFoundError,
    SignatureError,
    UnsafeModelError,
)
from deepspark.models.base import Model, Signature, TensorSpec

__all__ = [
    "TorchExportModel",
    "TorchScriptModel",
    "check_weights_only",
    "export_module",
    "flatten_outputs",
    "load_pickled_module",
    "output_names",
    "torch_device",
    "torch_file_kind",
]

_WARNED: set[str] = set()

_DTYPES = {
    "torch.float32": "float32",
    "torch.float64": "float64",
    "torch.float16": "float16",
    "torch.int64": "int64",
    "torch.int32": "int32",
    "torch.uint8": "uint8",
    "torch.bool": "bool",
}


def _torch() -> Any:
    return require("torch", "Running PyTorch models")


def output_names(count: int) -> tuple[str, ...]:
    """``("output",)`` for one output, ``("output_0", "output_1", ...)`` for several."""
    return ("output",) if count == 1 else tuple(f"output_{i}" for i in range(count))


def flatten_outputs(out: Any) -> list[Any]:
    if isinstance(out, Mapping):
        return list(out.values())
    if isinstance(out, (tuple, list)):
        flat: list[Any] = []
        for item in out:
            flat.extend(flatten_outputs(item))
        return flat
    return [out]


def torch_file_kind(path: Path) -> str:
    """What a PyTorch file holds: "torchscript", "export", "pickle" (torch.save) or "legacy".

    Decided from the zip archive's member names, without loading anything.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile:
        # torch.save's pre-1.6 format is a bare pickle stream: never load it blindly.
        return "legacy"
    except OSError as exc:
        raise ModelLoadError(f"cannot read PyTorch file {path}: {exc}") from None
    members = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if "archive_format" in members or any(m.startswith("models/") for m in members):
        return "export"
    if "constants.pkl" in members or any(m.startswith("code/") for m in members):
        return "torchscript"
    if "data.pkl" in members:
        return "pickle"
    raise ModelLoadError(
        f"{path} is a zip archive but not a PyTorch model (no TorchScript code, torch.export "
        "program or torch.save data); is the file complete?"
    )


def torch_device(gpu: int | None) -> str:
    """``"cuda:N"`` when ``gpu`` is given and PyTorch sees that GPU, else ``"cpu"``.

    A GPU that this PyTorch cannot use (a CPU-only build, no driver, an index past the
    device count) falls back to the CPU with a warning, once per process. On a GPU,
    float32 stays float32 (TF32 off), so answers match the CPU's.
    """
    if gpu is None:
        return "cpu"
    torch = _torch()
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpu < count:
        # PyTorch runs float32 convolutions in TF32 on Ampere and later GPUs by default:
        # measured on an H100, 0.8% of EfficientNet-Lite0's top-1 answers then differed
        # from the CPU's. deepspark promises the CPU's answers wherever a task runs, so
        # full float32 it is (process-wide; a Python worker runs only deepspark's tasks).
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        return f"cuda:{gpu}"
    if "torch-cuda" not in _WARNED:
        _WARNED.add("torch-cuda")
        warnings.warn(  # a warning reaches a Python worker's stderr; a log record not
            f"this task was given GPU {gpu} but PyTorch {torch.__version__} sees {count} "
            "CUDA device(s); running on the CPU. Install a CUDA build of torch on the "
            "executors to use the GPU.",
            RuntimeWarning,
            stacklevel=2,
        )
    return "cpu"


def _full_fp32_convolutions(module: Any) -> int:
    """Turn off TF32 in a TorchScript module's convolutions; returns how many changed.

    Tracing records ``torch.backends.cudnn.allow_tf32`` as a constant argument of every
    ``aten::_convolution``, so the global switch in :func:`torch_device` does not reach
    a file traced with PyTorch's default (TF32 on). Rewriting the constant before the
    first run gives a GPU the CPU's float32 answers; on the CPU the flag does nothing.
    """
    changed = 0
    for sub in module.modules():
        try:
            graph = sub.graph
        except (AttributeError, RuntimeError):  # a container without forward()
            continue
        for node in graph.findAllNodes("aten::_convolution"):
            args = list(node.inputs())
            flag = args[-1]
            if not str(node.schema()).endswith("bool allow_tf32) -> Tensor"):
                continue  # an unknown overload: leave it as traced
            if flag.node().kind() == "prim::Constant" and flag.toIValue() is True:
                with graph.insert_point_guard(node):
                    off = graph.insertConstant(False)
                node.replaceInput(len(args) - 1, off)
                changed += 1
    return changed


class _TorchModel(Model):
    framework = "torch"

    def __init__(
        self, module: Any, signature: Signature, threads: int | None, device: str = "cpu"
    ) -> None:
        self._module = module
        self._signature = signature
        self.device = device
        if threads:
            # One PyTorch thread pool per Python worker: the task's CPU share.
            _torch().set_num_threads(int(threads))

    @property
    def signature(self) -> Signature:
        return self._signature

    @property
    def module(self) -> Any:
        """The underlying callable PyTorch module."""
        return self._module

    def _call(self, args: list[Any]) -> Any:
        return self._module(*args)

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = _torch()
        self._signature.check_inputs(inputs)
        args = [
            torch.from_numpy(np.ascontiguousarray(inputs[spec.name], dtype=spec.dtype)).to(
                self.device
            )
            for spec in self._signature.inputs
        ]
        with torch.inference_mode():
            out = flatten_outputs(self._call(args))
        names = self._signature.output_names or list(output_names(len(out)))
        return {name: t.detach().cpu().numpy() for name, t in zip(names, out)}


def _shapes_signature(
    names: Sequence[str],
    shapes: Sequence[Sequence[int]] | None,
    dtypes: Sequence[str] | None,
    outputs: Sequence[TensorSpec] = (),
) -> Signature:
    specs = []
    for i, name in enumerate(names):
        shape = tuple(int(d) for d in shapes[i]) if shapes else ()
        specs.append(TensorSpec(name, dtypes[i] if dtypes else "float32", shape))
    return Signature(tuple(specs), tuple(outputs))


def _probe_outputs(module: Any, sig: Signature, device: str = "cpu") -> tuple[TensorSpec, ...]:
    """Output specs found by running a 1-row batch (only when every input shape is known)."""
    torch = _torch()
    if not sig.inputs or any(not s.shape or min(s.shape[1:], default=1) < 0 for s in sig.inputs):
        return ()
    args = [
        torch.zeros((1, *s.shape[1:]), dtype=getattr(torch, s.dtype), device=device)
        for s in sig.inputs
    ]
    try:
        with torch.inference_mode():
            out = flatten_outputs(module(*args))
    except Exception as exc:  # TorchScript raises its own error types
        shapes = [list(s.shape) for s in sig.inputs]
        raise SignatureError(
            f"the TorchScript model fails on inputs of shape {shapes}: "
            f"{str(exc).strip().splitlines()[-1]} (check inputSize/channelOrder/layout or "
            "input_shapes)"
        ) from exc
    return tuple(
        TensorSpec(name, _DTYPES.get(str(t.dtype), "float32"), (-1, *t.shape[1:]))
        for name, t in zip(output_names(len(out)), out)
    )


class TorchScriptModel(_TorchModel):
    """A TorchScript file (``torch.jit.save``), run by PyTorch.

    TorchScript does not record input shapes: pass ``input_shapes`` (with -1 for the
    batch) to get a full signature; input names come from ``forward``'s arguments.

    Examples
    --------
    >>> m = TorchScriptModel("net.pt", input_shapes=[(-1, 3, 64, 64)])   # doctest: +SKIP
    >>> m.predict({"x": batch})["output"].shape                          # doctest: +SKIP

    ``gpu=N`` runs it on CUDA device N (see :func:`torch_device`).
    """

    def __init__(
        self,
        path: str | Path,
        threads: int | None = None,
        input_shapes: Sequence[Sequence[int]] | None = None,
        gpu: int | None = None,
    ) -> None:
        torch = _torch()
        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"TorchScript file not found: {path}")
        device = torch_device(gpu)
        try:
            module = torch.jit.load(str(path), map_location=device)
        except Exception as exc:
            raise ModelLoadError(
                f"PyTorch cannot load TorchScript file {path}: {str(exc).splitlines()[0]} "
                "(is the file complete and written by torch.jit.save?)"
            ) from exc
        module.eval()
        if device != "cpu":
            _full_fp32_convolutions(module)
        # A method's schema starts with the module itself, whatever its parameter is
        # called (``def forward(s, x)`` made "s" an input).
        args = list(module.forward.schema.arguments)[1:]
        names = [a.name for a in args]
        if input_shapes is not None and len(input_shapes) != len(names):
            raise InvalidParameterError(
                f"input_shapes has {len(input_shapes)} shape(s) but {path.name} takes "
                f"{len(names)} input(s) {names}"
            )
        sig = _shapes_signature(names, input_shapes, None)
        with torch.jit.optimized_execution(device == "cpu"):
            outputs = _probe_outputs(module, sig, device)
        super().__init__(module, Signature(sig.inputs, outputs), threads, device)
        self.path = path

    def _call(self, args: list[Any]) -> Any:
        # On a GPU, TorchScript's profiling executor profiles and compiles fused kernels
        # for each new input shape: measured on an H200 (EfficientNet-Lite0), 2.2 s for
        # each of the first two batches and for a new batch size (a task's last, smaller
        # batch), against 15 ms per 64-image batch, in every Python worker. Without
        # graph optimisation the same cuDNN kernels run at the same 15 ms, and a new
        # shape costs ~50 ms (docs/benchmarks.md, "GPU"). The CPU keeps PyTorch's
        # default. A process-wide switch, set only around the call.
        with _torch().jit.optimized_execution(self.device == "cpu"):
            return self._module(*args)


class TorchExportModel(_TorchModel):
    """A ``torch.export`` program (``torch.export.save``, ``.pt2``), run by PyTorch.

    Input names, dtypes and shapes (dynamic dimensions as -1) come from the program.
    ``gpu=N`` runs it on CUDA device N (see :func:`torch_device`).
    """

    def __init__(
        self, path: str | Path, threads: int | None = None, gpu: int | None = None
    ) -> None:
        torch = _torch()
        path = Path(path)
        if not path.is_file():
            raise ModelNotFoundError(f"torch.export file not found: {path}")
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ModelLoadError(
                f"PyTorch cannot load torch.export program {path}: {str(exc).splitlines()[0]} "
                "(is the file complete and written by torch.export.save?)"
            ) from exc
        user_inputs = list(program.graph_signature.user_inputs)
        inputs = []
        outputs: list[TensorSpec] = []
        for node in program.graph.nodes:
            if node.op == "placeholder" and node.name in user_inputs:
                inputs.append(_fake_spec(node.name, node.meta.get("val")))
            elif node.op == "output":
                vals = [a.meta.get("val") if hasattr(a, "meta") else None for a in node.args[0]]
                names = output_names(len(vals))
                outputs = [_fake_spec(n, v) for n, v in zip(names, vals)]
        device = torch_device(gpu)
        module = program.module()
        if device != "cpu":
            module = module.to(device)
        super().__init__(module, Signature(tuple(inputs), tuple(outputs)), threads, device)
        self.program = program
        self.path = path


def _fake_spec(name: str, val: Any) -> TensorSpec:
    """A TensorSpec from an exported graph's FakeTensor (symbolic sizes become -1)."""
    if val is None or not hasattr(val, "shape"):
        return TensorSpec(name, "float32", ())
    shape = tuple(d if isinstance(d, int) else -1 for d in val.shape)
    return TensorSpec(name, _DTYPES.get(str(val.dtype), "float32"), shape)


def load_pickled_module(path: Path, trust_pickle: bool) -> Any:
    """Unpickle a ``torch.save(module)`` file on the driver, only with ``trust_pickle``."""
    torch = _torch()
    if not trust_pickle:
        raise UnsafeModelError(
            f"{path} was written by torch.save and loading it would unpickle arbitrary Python "
            "code. Save it with torch.jit.save / torch.export.save, pass the nn.Module object "
            "itself, or pass trust_pickle=True (trustPickle=True on transformers) if you "
            "trust the file's origin"
        )
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelLoadError(f"PyTorch cannot load {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(obj, torch.nn.Module):
        raise ModelLoadError(
            f"{path} holds a {type(obj).__name__}, not an nn.Module (a state_dict has no "
            "architecture: build the module, load_state_dict, and pass the module)"
        )
    return obj


def check_weights_only(path: Path) -> None:
    """Raise UnsafeModelError for pickled objects, ModelLoadError for plain state dicts."""
    torch = _torch()
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            load_pickled_module(path, trust_pickle=False)  # raises UnsafeModelError
        raise ModelLoadError(f"PyTorch cannot load {path}: {str(exc).splitlines()[0]}") from exc
    raise ModelLoadError(
        f"{path} holds only weights ({type(obj).__name__}), not a model: build the module, "
        "load_state_dict, and pass the nn.Module (or save it with torch.jit.save)"
    )


def _example_args(shapes: Sequence[Sequence[int]], dtypes: Sequence[str] | None) -> list[Any]:
    torch = _torch()
    rng = np.random.default_rng(0)
    out = []
    for i, shape in enumerate(shapes):
        dims = [2 if d < 0 else int(d) for d in shape]
        dtype = (dtypes[i] if dtypes else "float32") or "float32"
        arr = rng.standard_normal(dims).astype(dtype) if "float" in dtype else np.zeros(dims, dtype)
        out.append(torch.from_numpy(arr))
    return out


def export_module(
    module: Any,
    target: Path,
    input_names: Sequence[str],
    input_shapes: Sequence[Sequence[int]],
    fmt: str = "onnx",
    dtypes: Sequence[str] | None = None,
) -> Path:
    """Export a PyTorch module to ONNX or TorchScript at ``target`` (atomically).

    Dimensions given as -1 stay dynamic in the ONNX graph (the batch, usually).
    """
    torch = _torch()
    if hasattr(module, "eval") and not isinstance(module, torch.fx.GraphModule):
        module.eval()
    args = tuple(_example_args(input_shapes, dtypes))
    with torch.no_grad():
        n_out = len(flatten_outputs(module(*args)))
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter deprecation and tracer chatter
        if fmt == "onnx":
            outs = output_names(n_out)
            dynamic = {
                name: {i: f"{name}_d{i}" for i, d in enumerate(shape) if d < 0}
                for name, shape in zip(input_names, input_shapes)
            }
            dynamic.update({name: {0: "batch"} for name in outs})
            torch.onnx.export(
                module,
                args,
                str(tmp),
                input_names=list(input_names),
                output_names=list(outs),
                dynamic_axes=dynamic,
                opset_version=17,
                dynamo=False,
            )
        else:
            traced = (
                module
                if isinstance(module, torch.jit.ScriptModule)
                else (torch.jit.trace(module, args, check_trace=False))
            )
            torch.jit.save(traced, str(tmp))
    os.replace(tmp, target)
    return target

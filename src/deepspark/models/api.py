"""``deepspark.load_model``: any framework's model behind one interface, checked on the driver.

:func:`prepare_model` turns a source (a path, a Caffe pair, a live ``nn.Module`` or Keras
model) into a :class:`ModelSpec` -- a file or folder plus the backend that loads it --
and the loaded :class:`~deepspark.models.base.Model`. Transformers ship the spec's file
to executors; nothing live is pickled.

``engine="auto"`` converts PyTorch models (and TensorFlow/Keras ones when ``tf2onnx``
is installed) to ONNX and keeps the conversion only when its outputs match the native
framework's on a probe batch (max abs diff <= 1e-4); ONNX Runtime is usually the
fastest CPU engine.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspark._deps import available
from deepspark._logging import get_logger
from deepspark.errors import (
    InvalidParameterError,
    ModelError,
    ModelLoadError,
    ModelNotFoundError,
)
from deepspark.models.base import Model
from deepspark.models.cache import (
    bundle_files,
    cache_dir,
    path_sha256,
    read_record,
    ship_file,
    write_record,
)
from deepspark.models.loader import BACKENDS, ModelRef

if TYPE_CHECKING:  # pragma: no cover
    from pyspark import SparkContext

    from deepspark.models.base import Signature

__all__ = [
    "ENGINES",
    "PROBE_TOLERANCE",
    "ModelSpec",
    "checked_model",
    "load_model",
    "prepare_model",
]

log = get_logger(__name__)

ENGINES = ("auto", "native", "onnxruntime")
#: largest max-abs difference between native and ONNX Runtime outputs accepted by "auto"
PROBE_TOLERANCE = 1e-4

Shapes = tuple[tuple[int, ...], ...]

#: backend options load_model accepts besides input_shapes
_OPTIONS = {"signature", "custom_objects", "prototxt"}


@dataclass(frozen=True)
class ModelSpec:
    """A model as a file (or folder) plus the backend that loads it; driver side.

    Attributes
    ----------
    backend : str
        Key of :data:`deepspark.models.loader.BACKENDS` (``"onnx"``, ``"torchscript"``,
        ``"torch_export"``, ``"keras"``, ``"tensorflow"``, ``"caffe"``).
    path : Path
    options : tuple of (name, value)
        Backend options (hashable), e.g. ``(("signature", "serving_default"),)``.
    """

    backend: str
    path: Path
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def load(self, threads: int | None = None) -> Model:
        """Load the model in this process (not cached)."""
        model = BACKENDS[self.backend](str(self.path), threads, None, **dict(self.options))
        model.spec = self  # type: ignore[attr-defined]
        return model

    def ship(self, sc: SparkContext) -> ModelRef:
        """Register the file with Spark once; the picklable reference executors load."""
        return ModelRef(self.backend, ship_file(sc, self.path), self.options)


# ------------------------------------------------------------------------ helpers


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    return value


def _norm_shapes(shapes: Any) -> Shapes | None:
    """``[[-1, 3, 8, 8]]`` or ``(-1, 3, 8, 8)`` -> ``((-1, 3, 8, 8),)``."""
    if shapes is None:
        return None
    shapes = list(shapes)
    if shapes and all(isinstance(d, (int, np.integer)) for d in shapes):
        shapes = [shapes]
    return tuple(tuple(int(d) for d in s) for s in shapes)


def _is_torch_module(obj: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)


def _is_keras_model(obj: Any) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(obj, keras.Model)


def _check_file(path: Path) -> None:
    """Missing / empty / unreadable model files fail here with the file and the reason."""
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        return
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {exc.strerror}") from None
    if size == 0:
        raise ModelLoadError(f"model file {path} is empty (0 bytes); was the copy interrupted?")


def _content_name(path: Path, suffix: str) -> Path:
    """Move a freshly exported file to ``<sha16><suffix>`` next to it (cache by content)."""
    target = path.with_name(path_sha256(path)[:16] + suffix)
    os.replace(path, target)
    return target


def _first_line(exc: BaseException) -> str:
    """Exporters put whole graphs in their messages: keep the first line."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _input_names(module: Any, count: int | None) -> list[str]:
    try:
        params = [
            p.name
            for p in inspect.signature(module.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    n = count if count is not None else len(params)
    return params[:n] if len(params) >= n else [f"input_{i}" for i in range(n)]


# ------------------------------------------------------------------ conversions


def _export_torch_module(module: Any, shapes: Shapes | None, engine: str) -> ModelSpec:
    """A live nn.Module -> an ONNX (engine auto/onnxruntime) or TorchScript file."""
    from deepspark.models.torch import export_module

    out_dir = cache_dir("exported")
    if not shapes:
        return _script_torch_module(module, out_dir)
    names = _input_names(module, len(shapes))
    if engine != "native":
        try:
            tmp = export_module(module, out_dir / f"{os.getpid()}.onnx", names, shapes, "onnx")
            onnx = ModelSpec("onnx", _content_name(tmp, ".onnx"))
            if engine == "onnxruntime" or _outputs_match(
                _TorchCallable(module, names), onnx, shapes
            ):
                return onnx
            log.info("ONNX export of the nn.Module differs from PyTorch; using TorchScript")
        except ModelError:
            raise
        except Exception as exc:  # the exporter raises many types
            if engine == "onnxruntime":
                raise ModelLoadError(
                    f"cannot export the nn.Module to ONNX: {_first_line(exc)}"
                ) from exc
            log.info("nn.Module does not export to ONNX (%s); using TorchScript", _first_line(exc))
    tmp = export_module(module, out_dir / f"{os.getpid()}.pt", names, shapes, "torchscript")
    return ModelSpec("torchscript", _content_name(tmp, ".pt"), (("input_shapes", shapes),))


def _script_torch_module(module: Any, out_dir: Path) -> ModelSpec:
    """Without input shapes a module cannot be traced or exported: TorchScript-compile it
    (``torch.jit.script`` needs no example input); the signature then has no shapes."""
    import torch

    module.eval()
    try:
        scripted = torch.jit.script(module)
    except Exception as exc:  # the TorchScript compiler raises many types
        raise InvalidParameterError(
            "this PyTorch nn.Module cannot be compiled with torch.jit.script "
            f"({_first_line(exc)}); pass input_shapes=[(-1, 3, 224, 224)] (-1 for the "
            "batch) so it can be exported by tracing"
        ) from exc
    tmp = out_dir / f"{os.getpid()}.pt"
    torch.jit.save(scripted, str(tmp))
    return ModelSpec("torchscript", _content_name(tmp, ".pt"))


class _TorchCallable(Model):
    """A live nn.Module as a Model, only to compare outputs with an export."""

    framework = "torch"

    def __init__(self, module: Any, names: Sequence[str]) -> None:
        from deepspark.models.base import Signature, TensorSpec

        self._module = module
        self._sig = Signature(tuple(TensorSpec(n, "float32", ()) for n in names))

    @property
    def signature(self) -> Any:
        return self._sig

    def predict(self, inputs: Any) -> dict[str, np.ndarray]:
        import torch

        from deepspark.models.torch import flatten_outputs, output_names

        args = [torch.from_numpy(np.asarray(inputs[n])) for n in self._sig.input_names]
        with torch.inference_mode():
            out = flatten_outputs(self._module(*args))
        return {n: t.numpy() for n, t in zip(output_names(len(out)), out)}


def _probe_inputs(model: Model, shapes: Shapes | None) -> dict[str, np.ndarray] | None:
    """A deterministic 2-row batch for every input, or None when a shape is unknown."""
    rng = np.random.default_rng(1234)
    batch: dict[str, np.ndarray] = {}
    specs = model.signature.inputs
    for i, spec in enumerate(specs):
        shape = shapes[i] if shapes and i < len(shapes) else spec.shape
        if not shape or any(d < 0 for d in shape[1:]):
            return None
        dims = (2, *shape[1:])
        dtype = spec.dtype if spec.dtype not in ("", "str") else "float32"
        batch[spec.name] = (
            rng.random(dims).astype(dtype) if "float" in dtype else np.zeros(dims, dtype)
        )
    return batch


def _outputs_match(native: Model, converted: ModelSpec, shapes: Shapes | None) -> bool:
    """Whether the converted model gives the native outputs (<= PROBE_TOLERANCE)."""
    onnx = converted.load(threads=1)
    feed = _probe_inputs(onnx, shapes)
    if feed is None:
        return False
    # Either may take a fixed batch size (the other not): predict_rows feeds each its own.
    ref = native.predict_rows(feed)
    got = onnx.predict_rows(feed)
    for name, want in ref.items():
        have = got.get(name)
        if have is None or np.shape(have) != np.shape(want):
            return False
        diff = float(np.max(np.abs(np.asarray(have, np.float64) - np.asarray(want, np.float64))))
        if not diff <= PROBE_TOLERANCE:
            log.info("ONNX conversion differs from the native model by %g on %s", diff, name)
            return False
    return True


def _to_onnx(spec: ModelSpec, native: Model, shapes: Shapes | None) -> ModelSpec | None:
    """Convert a loaded native model to ONNX; None when it cannot be converted."""
    target = cache_dir("converted") / (
        f"{path_sha256(spec.path)[:16]}-"
        f"{hashlib.sha256(repr((spec.options, shapes)).encode()).hexdigest()[:8]}.onnx"
    )
    if not target.is_file():
        if spec.backend in ("torchscript", "torch_export"):
            from deepspark.models.torch import export_module

            io_shapes = shapes or tuple(s.shape for s in native.signature.inputs)
            if not io_shapes or any(not s or min(s[1:], default=1) < 0 for s in io_shapes):
                return None  # no probe shapes: cannot export
            module = native.module  # type: ignore[attr-defined]
            if spec.backend == "torch_export":
                import torch

                # The legacy exporter cannot take an unlifted GraphModule: trace it first.
                args = [torch.zeros((1, *s[1:])) for s in io_shapes]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # tracer chatter about guards
                    module = torch.jit.trace(module, tuple(args), check_trace=False)
            export_module(
                module,
                target,
                native.signature.input_names,
                io_shapes,
                "onnx",
                [s.dtype for s in native.signature.inputs],
            )
        elif spec.backend in ("keras", "tensorflow") and available("tf2onnx"):
            import tf2onnx

            if spec.backend == "keras":
                tf2onnx.convert.from_keras(native.keras_model, output_path=str(target))  # type: ignore[attr-defined]
            else:
                tf2onnx.convert.from_saved_model(str(spec.path), output_path=str(target))
        else:
            return None
    return ModelSpec("onnx", target)


# -------------------------------------------------------------------- resolving


def _caffe_spec(proto_or_weights: Any, prototxt: Any = None) -> ModelSpec:
    from deepspark.models.caffe import CAFFEMODEL, PROTOTXT, caffe_pair

    proto, weights = caffe_pair(Path(proto_or_weights), prototxt)
    for f in (proto, weights):
        _check_file(f)
    return ModelSpec("caffe", bundle_files({PROTOTXT: proto, CAFFEMODEL: weights}, "caffe"))


def _file_spec(
    path: Path, framework: str, options: dict[str, Any], shapes: Shapes | None, trust: bool
) -> tuple[ModelSpec | None, Any]:
    """(spec, live module to export) for a model file or folder."""
    from deepspark.models.resolve import canonical_framework, detect_framework

    fw = canonical_framework(framework) if framework else detect_framework(path)
    if fw == "onnx":
        from deepspark.models.onnx import external_data_files

        data = external_data_files(path) if path.is_file() else []
        if data:
            # Shipped with its weights: executors get the .onnx and its data files in
            # one folder (addFile alone would send the .onnx without them).
            files = {path.name: path, **{n: path.parent / n for n in data}}
            return ModelSpec("onnx", bundle_files(files, "onnx")), None
        return ModelSpec("onnx", path), None
    if fw == "caffe":
        return _caffe_spec(path, options.pop("prototxt", None)), None
    if fw == "tensorflow":
        sig = str(options.pop("signature", "serving_default"))
        return ModelSpec("tensorflow", path, (("signature", sig),)), None
    if fw == "keras":
        opts: list[tuple[str, Any]] = []
        if options.get("custom_objects"):
            opts.append(("custom_objects", _hashable(options.pop("custom_objects"))))
        if trust:
            opts.append(("trust_pickle", True))
        return ModelSpec("keras", path, tuple(opts)), None
    # PyTorch: what the file holds decides the backend.
    from deepspark.models.torch import check_weights_only, load_pickled_module, torch_file_kind

    kind = torch_file_kind(path)
    if kind == "torchscript":
        return ModelSpec("torchscript", path, (("input_shapes", shapes),) if shapes else ()), None
    if kind == "export":
        return ModelSpec("torch_export", path), None
    if not trust:
        check_weights_only(path)  # raises: UnsafeModelError, or "only weights"
    return None, load_pickled_module(path, trust_pickle=True)


def prepare_model(
    source: Any,
    *,
    framework: str | None = None,
    engine: str = "auto",
    trust_pickle: bool = False,
    input_shapes: Any = None,
    **options: Any,
) -> tuple[ModelSpec, Model]:
    """Resolve ``source`` on the driver: the spec to ship and the loaded model.

    Raises deepspark errors for missing/truncated/unreadable files, unsafe pickles and
    unknown frameworks, before any Spark task starts. See :func:`load_model`.
    """
    if engine not in ENGINES:
        raise InvalidParameterError(f"engine must be one of {ENGINES}, got {engine!r}")
    unknown = set(options) - _OPTIONS
    if unknown:
        raise InvalidParameterError(
            f"unknown model option(s) {sorted(unknown)}; options are input_shapes, "
            f"{', '.join(sorted(_OPTIONS))}"
        )
    shapes = _norm_shapes(input_shapes)
    spec = getattr(source, "spec", None)
    live = None
    if isinstance(source, Model) and isinstance(spec, ModelSpec):
        return spec, source
    if _is_torch_module(source):
        live = source
    elif _is_keras_model(source):
        from deepspark.models.keras import save_keras_model

        tmp = save_keras_model(source, cache_dir("exported") / f"{os.getpid()}.keras")
        spec = ModelSpec("keras", _content_name(tmp, ".keras"))
    elif isinstance(source, (tuple, list)) and len(source) == 2:
        a, b = (Path(str(x)) for x in source)
        proto, weights = (a, b) if a.suffix.lower() == ".prototxt" else (b, a)
        spec = _caffe_spec(weights, proto)
    elif isinstance(source, (str, os.PathLike)):
        from deepspark.models.resolve import local_model_path

        path = local_model_path(os.fspath(source))
        _check_file(path)
        spec, live = _file_spec(path, framework or "", dict(options), shapes, trust_pickle)
    else:
        raise InvalidParameterError(
            f"cannot load a model from a {type(source).__name__}; pass a path, a "
            "(prototxt, caffemodel) pair, a torch.nn.Module or a keras.Model"
        )
    if live is not None:
        # ONNX was tried (and compared) during the export: no second conversion.
        spec = _export_torch_module(live, shapes, engine)
    assert spec is not None
    native = spec.load(threads=None)
    if engine == "native" or spec.backend == "onnx" or live is not None:
        return spec, native
    try:
        converted = _to_onnx(spec, native, shapes)
    except Exception as exc:  # converters raise many types
        if engine == "onnxruntime":
            raise ModelLoadError(
                f"cannot convert {spec.path} to ONNX: {_first_line(exc)}; use engine='auto' "
                "or 'native'"
            ) from exc
        log.info(
            "cannot convert %s to ONNX (%s); using %s", spec.path, _first_line(exc), spec.backend
        )
        converted = None
    if converted is not None and (
        engine == "onnxruntime" or _outputs_match(native, converted, shapes)
    ):
        return converted, converted.load(threads=None)
    if engine == "onnxruntime":
        raise InvalidParameterError(
            f"engine='onnxruntime' but {spec.path} ({spec.backend}) cannot be converted to "
            "ONNX here (TensorFlow/Keras need the tf2onnx package; PyTorch needs "
            "input_shapes); use engine='auto' or 'native'"
        )
    return spec, native


#: Frameworks whose check :func:`checked_model` remembers: slow to load in the driver
#: (TensorFlow's import alone is seconds) and whole in the file or folder it hashes. An
#: ONNX file may keep its weights in a separate file, a Caffe model its prototxt next to
#: it; both load in a fraction of a second and are checked every time.
_RECORDED_FRAMEWORKS = ("keras", "tensorflow", "torch")
#: bump when a record's content, or what a check decides, changes
_RECORD_VERSION = 1


def checked_model(
    source: str | os.PathLike[str],
    *,
    framework: str | None = None,
    engine: str = "auto",
    trust_pickle: bool = False,
    input_shapes: Any = None,
) -> tuple[ModelSpec, Signature]:
    """:func:`prepare_model` for a model file: the spec to ship and its signature.

    A transformer needs only these two. Loading a Keras or TensorFlow model for them
    costs the driver seconds (importing TensorFlow) and memory it never uses again, so
    the first check of a Keras, TensorFlow or PyTorch file keeps its outcome (which
    file and engine executors run, and the signature) in a record keyed by the file's
    content, the settings and the converters installed; later jobs and processes read
    it. A changed file has another hash and is checked again, and a record is only
    written for a file that passed.

    Examples
    --------
    >>> spec, sig = checked_model("classifier.keras")              # doctest: +SKIP
    >>> spec.backend, sig.input_names                              # doctest: +SKIP
    ('keras', ['image'])
    """
    from deepspark.models.base import Signature
    from deepspark.models.resolve import canonical_framework, detect_framework, local_model_path

    path = local_model_path(os.fspath(source))
    _check_file(path)
    fw = canonical_framework(framework) if framework else detect_framework(path)
    shapes = _norm_shapes(input_shapes)
    key = None
    if fw in _RECORDED_FRAMEWORKS and engine in ENGINES:
        from deepspark import __version__

        converters = [available(m) for m in ("torch", "onnx", "onnxruntime", "tf2onnx")]
        key = hashlib.sha256(
            repr(
                (_RECORD_VERSION, __version__, path_sha256(path), fw, engine, trust_pickle)
                + (shapes, converters)
            ).encode()
        ).hexdigest()
        data = read_record("checked-models", key)
        if data is not None:
            try:
                recorded = Path(data["path"]) if data["path"] else path
                spec = ModelSpec(
                    str(data["backend"]),
                    recorded,
                    tuple((str(k), v) for k, v in data["options"]),
                )
                if spec.backend in BACKENDS and recorded.exists():
                    return spec, Signature.from_json(data["signature"])
            except (KeyError, TypeError, ValueError):
                pass  # a damaged record: check the file and write it again
    spec, model = prepare_model(
        path, framework=fw, engine=engine, trust_pickle=trust_pickle, input_shapes=shapes
    )
    options = [[k, v] for k, v in spec.options]
    if key is not None and all(isinstance(v, (str, int, float, bool)) for _, v in options):
        record = {
            "backend": spec.backend,
            # The source itself by "" (it may be moved or renamed: the hash still holds);
            # an export or conversion in deepspark's cache by its path.
            "path": "" if spec.path == path else str(spec.path),
            "options": options,
            "signature": model.signature.to_json(),
        }
        write_record("checked-models", key, record)
    return spec, model.signature


def load_model(
    source: Any,
    *,
    framework: str | None = None,
    engine: str = "auto",
    trust_pickle: bool = False,
    **options: Any,
) -> Model:
    """Load a model from any supported framework, checked on the driver.

    Parameters
    ----------
    source : str, Path, tuple, torch.nn.Module or keras.Model
        A model file or folder (``.onnx``; ``.keras``/``.h5``; a SavedModel folder;
        TorchScript ``.pt``; ``torch.export`` ``.pt2``; a Caffe ``.caffemodel`` with its
        ``.prototxt`` next to it, a ``(prototxt, caffemodel)`` pair or a folder with
        both), or a live PyTorch/Keras model (written to a file here).
    framework : str, optional
        ``onnx``, ``torch``, ``keras``, ``tensorflow`` or ``caffe``; detected when None.
    engine : {"auto", "native", "onnxruntime"}
        ``auto`` runs the model with ONNX Runtime when it converts and the converted
        outputs match the native ones (max abs diff <= 1e-4 on a probe batch).
    trust_pickle : bool, default False
        Allow loading that runs pickled Python code (a ``torch.save(module)`` file, a
        Keras ``Lambda`` layer). Only for files you trust.
    **options
        ``input_shapes`` (shapes with -1 for the batch; needed for ``nn.Module``
        objects and to convert TorchScript), ``signature`` (SavedModel, default
        ``serving_default``), ``custom_objects`` (Keras), ``prototxt`` (Caffe).

    Returns
    -------
    Model
        ``.signature`` and ``.predict(dict) -> dict``; ``.spec`` says which file and
        backend executors will use.

    Examples
    --------
    >>> m = deepspark.load_model("classifier.keras")               # doctest: +SKIP
    >>> m.signature                                                # doctest: +SKIP
    (image: float32[?, 64, 64, 3]) -> (logits: float32[?, 10])
    >>> m.predict({"image": batch})["logits"].shape                # doctest: +SKIP
    (8, 10)
    """
    _, model = prepare_model(
        source, framework=framework, engine=engine, trust_pickle=trust_pickle, **options
    )
    return model

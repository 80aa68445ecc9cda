"""Driver-side resolution: a named model or a model path -> what executors need.

Everything that can go wrong with a model (unknown name, missing or truncated file,
wrong framework, input shape that does not fit the preprocessing) is raised here, on
the driver, before any task starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deepspark.errors import InvalidParameterError, ModelNotFoundError, SignatureError
from deepspark.models.base import Signature
from deepspark.models.cache import ship_file
from deepspark.models.labels import ClassLabel, load_labels
from deepspark.models.loader import ModelRef
from deepspark.models.zoo import NamedModel, get_named_model
from deepspark.runtime.preprocess import ImagePreprocess

if TYPE_CHECKING:  # pragma: no cover
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

__all__ = [
    "ResolvedImageModel",
    "canonical_framework",
    "detect_framework",
    "local_model_path",
    "resolve_image_model",
]


@dataclass(frozen=True)
class ResolvedImageModel:
    ref: ModelRef
    preprocess: ImagePreprocess
    input_name: str
    output_name: str
    labels: tuple[ClassLabel, ...] | None
    #: With ``float_copy``: the float model an int8 ``ref`` was made from, shipped.
    float_ref: ModelRef | None = None


def _named_or_none(name: str) -> NamedModel | None:
    """The named model ``name``, or None where no named model has that name."""
    try:
        return get_named_model(name)
    except ModelNotFoundError:
        return None


def local_model_path(model: str) -> Path:
    """A local path for ``model`` (plain path or ``file:`` URI)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(model)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme and len(parts.scheme) > 1:
        raise InvalidParameterError(
            f"model {model!r}: only local paths are supported here; copy the model file to "
            "the driver (Spark ships it to the executors)"
        )
    return Path(model).expanduser()


#: user-facing framework names (and aliases) -> canonical name
FRAMEWORKS = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "torch": "torch",
    "pytorch": "torch",
    "torchscript": "torch",
    "keras": "keras",
    "tensorflow": "tensorflow",
    "tf": "tensorflow",
    "savedmodel": "tensorflow",
    "caffe": "caffe",
}

_TORCH_SUFFIXES = {".pt", ".pth", ".pt2", ".ts", ".torchscript", ".jit"}


def canonical_framework(name: str) -> str:
    """``"pytorch"`` -> ``"torch"`` etc.; raises on an unknown name."""
    key = name.strip().lower()
    if key not in FRAMEWORKS:
        raise InvalidParameterError(
            f"unknown framework {name!r}; use one of onnx, torch, keras, tensorflow, caffe"
        )
    return FRAMEWORKS[key]


def detect_framework(path: Path) -> str:
    """Framework of a model file or folder from its name, then its content.

    ``.onnx`` -> onnx; ``.keras``/``.h5`` -> keras; ``.pt``/``.pth``/``.pt2``/``.ts`` ->
    torch; ``.prototxt``/``.caffemodel`` (or a folder with both) -> caffe; a folder with
    ``saved_model.pb`` -> tensorflow. Unknown suffixes are recognised by their first
    bytes (HDF5 signature, zip archives of Keras or PyTorch).
    """
    import zipfile

    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return "tensorflow"
        if any(path.glob("*.prototxt")) and any(path.glob("*.caffemodel")):
            return "caffe"
        raise InvalidParameterError(
            f"cannot tell the framework of folder {path}: it is neither a TensorFlow "
            "SavedModel (saved_model.pb) nor a Caffe model (.prototxt + .caffemodel); "
            "pass framework="
        )
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    if suffix in _TORCH_SUFFIXES:
        return "torch"
    if suffix in (".prototxt", ".caffemodel"):
        return "caffe"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
        if head.startswith(b"\x89HDF"):
            return "keras"
        if zipfile.is_zipfile(path):
            names = zipfile.ZipFile(path).namelist()
            if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
                return "keras"
            return "torch"
    except OSError:
        pass
    raise InvalidParameterError(
        f"cannot tell the framework of {path}: give the file its framework's extension "
        "(.onnx, .keras/.h5, .pt/.pt2, .caffemodel) or, in Python, pass framework= (onnx, "
        "torch, keras, tensorflow, caffe)"
    )


_FLOAT_DTYPES = ("float16", "float32", "float64", "bfloat16")


def check_image_input(name: str, sig: Signature, preprocess: ImagePreprocess) -> None:
    """Raise :class:`SignatureError` unless the preprocessed tensor fits input 0 of ``sig``.

    Checks the rank, every fixed dimension (channels, height, width) and the dtype; the
    message gives the model's signature and the Params that set the tensor.
    """
    spec = sig.inputs[0]
    want = preprocess.input_shape()
    setting = (
        f"inputSize={list(preprocess.size)}, channelOrder={preprocess.channel_order}, "
        f"layout={preprocess.layout}"
    )
    problem = None
    if spec.shape and len(spec.shape) != len(want):
        problem = (
            f"a {len(spec.shape)}-dimensional input, not an image batch of shape "
            f"{_dims(want)}; it is not an image model"
        )
    elif any(s >= 0 and w >= 0 and s != w for s, w in zip(spec.shape[1:], want[1:])):
        problem = (
            f"input shape {_dims(spec.shape)} but the preprocessing gives {_dims(want)} "
            f"({setting}); set those Params to match"
        )
    elif spec.dtype != preprocess.dtype and not (
        spec.dtype in _FLOAT_DTYPES and preprocess.dtype in _FLOAT_DTYPES
    ):
        problem = (
            f"{spec.dtype} input but the preprocessing gives {preprocess.dtype} "
            "(normalised pixels); export the model with a float input"
        )
    if problem is not None:
        raise SignatureError(f"model {name} expects {problem}. Model signature: {sig}")


def _dims(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in shape) + "]"


def resolve_image_model(
    spark: SparkSession,
    *,
    model_name: str | None,
    model: str | None,
    framework: str,
    labels: list[str] | None,
    preprocess: ImagePreprocess,
    output_name: str | None,
    role: str,
    engine: str = "auto",
    trust_pickle: bool = False,
    quantize: str = "none",
    float_copy: bool = False,
) -> ResolvedImageModel:
    """Resolve, validate and ship an image model; ``role`` is "logits" or "features".

    ``model`` is a path of any supported framework (see :func:`deepspark.load_model`);
    it is checked here, on the driver, so a bad file fails before any task starts (a
    Keras, TensorFlow or PyTorch file once per content: :func:`~deepspark.models.api.checked_model`).
    ``quantize="int8"`` ships a static int8 copy of the model (ONNX only, made once and
    cached); with ``float_copy`` the float model is shipped as well (``float_ref``,
    taking the same input). Named models also get their normalisation fused into the
    graph so that executors feed raw uint8 pixels (see :mod:`deepspark.models.optimize`).
    """
    from deepspark.models.api import checked_model
    from deepspark.models.optimize import QUANTIZE_MODES

    quantize = (quantize or "none").lower()
    if quantize not in QUANTIZE_MODES:
        raise InvalidParameterError(
            f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}"
        )
    sc = spark.sparkContext
    if model:
        path = local_model_path(model)
        named = None if path.exists() else _named_or_none(model)
        if named is not None:
            what = "" if named.task == "image-classification" else f" ({named.task}, not images)"
            raise InvalidParameterError(
                f"model={model!r} names no file, but {named.name!r} is a named model{what}; "
                "named models go in modelName=..., model= takes a file"
            )
        # The preprocessing fixes the input shape: it lets TorchScript models (which do
        # not record shapes) be converted to ONNX and probed.
        model_spec, sig = checked_model(
            str(path),
            framework=framework or None,
            engine=engine,
            trust_pickle=trust_pickle,
            input_shapes=[preprocess.input_shape()],
        )
        if len(sig.inputs) != 1:
            raise SignatureError(
                f"an image model needs exactly one input; {path} has {sig}; use "
                "ModelTransformer for models with several inputs"
            )
        spec = sig.inputs[0]
        check_image_input(path.name, sig, preprocess)
        names = sig.output_names
        out = output_name or names[0]
        if out not in names:
            raise InvalidParameterError(f"model has no output {out!r}; outputs are {names}")
        classes = load_labels(labels)
        width = sig.outputs[names.index(out)].shape[-1:]
        if classes and width and width[0] > 0 and len(classes) != width[0]:
            raise SignatureError(
                f"{len(classes)} labels for model {path.name}, whose output {out!r} has "
                f"{width[0]} classes; give one label per class, in the model's order"
            )
        if quantize == "int8":
            if model_spec.backend == "onnx" and model_spec.path.is_dir():
                raise InvalidParameterError(
                    f"quantize='int8' does not take {path.name}, whose weights are in "
                    "external data files; quantize it yourself, or leave quantize='none'"
                )
            if model_spec.backend != "onnx":
                raise InvalidParameterError(
                    f"quantize='int8' needs an ONNX model; {path.name} runs on "
                    f"{model_spec.backend} (export it to ONNX, or leave quantize='none')"
                )
            ref = _int8_ref(spark, model_spec.path, preprocess, spec.name, fuse=False)[0]
            float_ref = model_spec.ship(sc) if float_copy else None
        else:
            ref, float_ref = model_spec.ship(sc), None  # only a model that fits is shipped
        return ResolvedImageModel(ref, preprocess, spec.name, out, classes, float_ref)

    named = get_named_model(model_name or "efficientnet_lite0")
    if named.preprocess is None or named.task != "image-classification":
        raise InvalidParameterError(f"model '{named.name}' is not an image model")
    out = output_name or named.outputs.get(role)
    if out is None:
        raise InvalidParameterError(f"model '{named.name}' has no {role} output")
    exported = named.export()
    if quantize == "int8":
        ref, pre, input_name = _int8_ref(spark, exported, named.preprocess, "input")
        # The fused float file takes the same input as the int8 copies.
        float_ref = _float_ref(sc, exported, named.preprocess)[0] if float_copy else None
    else:
        (ref, pre, input_name), float_ref = _float_ref(sc, exported, named.preprocess), None
    pre = dataclasses.replace(pre, fast_decode=preprocess.fast_decode)
    named_labels = named.labels() if named.labels else None
    return ResolvedImageModel(
        ref, pre, input_name, out, load_labels(labels) or named_labels, float_ref
    )


def _optimised(
    path: Path, pre: ImagePreprocess, input_name: str
) -> tuple[Path, ImagePreprocess, str]:
    """A named model's file for executors: normalisation fused in."""
    from deepspark.errors import MissingDependencyError
    from deepspark.models.optimize import fuse_preprocessing

    try:
        return fuse_preprocessing(path, pre, input_name)
    except MissingDependencyError:  # no `onnx` package: the float input works as well
        return path, pre, input_name


def _float_ref(
    sc: SparkContext, path: Path, pre: ImagePreprocess
) -> tuple[ModelRef, ImagePreprocess, str]:
    """A named model's float file for executors (normalisation fused in), shipped."""
    path, pre, input_name = _optimised(path, pre, "input")
    return ModelRef("onnx", ship_file(sc, path)), pre, input_name


def _int8_ref(
    spark: SparkSession, path: Path, pre: ImagePreprocess, input_name: str, fuse: bool = True
) -> tuple[ModelRef, ImagePreprocess, str]:
    """The int8 copies of an ONNX model, shipped; each executor picks the one its CPU runs
    best (:attr:`ModelRef.exact_int8_file`).

    A local session's executors share the driver's CPU: only the copy it runs is made.
    ``fuse`` also moves the normalisation into the graph (named models).
    """
    from deepspark.models.onnx import KEEP_FLOAT_NODES_FLOAT
    from deepspark.models.optimize import (
        EXACT_INT8_SETTINGS,
        Int8Settings,
        int8_settings_here,
        quantize_int8,
    )
    from deepspark.session import local_master

    sc = spark.sparkContext
    if local_master(sc.master):
        settings = [int8_settings_here()]
    else:
        settings = [Int8Settings(), EXACT_INT8_SETTINGS]
    files = [quantize_int8(path, pre, input_name, settings=s) for s in settings]
    if fuse:  # fusing changes the input (uint8 pixels) the same way for every copy
        fused = [_optimised(f, pre, input_name) for f in files]
        files, (_, pre, input_name) = [f for f, _, _ in fused], fused[0]
    shipped = [ship_file(sc, f) for f in files]
    exact = shipped[1] if len(shipped) > 1 else None
    # What the copies' metadata asks for, given up front: no second load per worker.
    options = (("disabled_optimizers", (KEEP_FLOAT_NODES_FLOAT[1],)),)
    return ModelRef("onnx", shipped[0], options, exact_int8_file=exact), pre, input_name

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
from deepspark.models.cache import ship_file
from deepspark.models.labels import ClassLabel, load_labels
from deepspark.models.loader import ModelRef
from deepspark.models.zoo import get_named_model
from deepspark.runtime.preprocess import ImagePreprocess

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = ["ResolvedImageModel", "resolve_image_model", "detect_framework", "local_model_path"]


@dataclass(frozen=True)
class ResolvedImageModel:
    ref: ModelRef
    preprocess: ImagePreprocess
    input_name: str
    output_name: str
    labels: tuple[ClassLabel, ...] | None


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


def detect_framework(path: Path) -> str:
    """Framework of a model file from its name and content."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    raise InvalidParameterError(
        f"cannot tell the framework of {path}; pass framework= (supported: onnx)"
    )


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
    quantize: str = "none",
) -> ResolvedImageModel:
    """Resolve, validate and ship an image model; ``role`` is "logits" or "features".

    ``quantize="int8"`` ships a static int8 copy of the model (ONNX only, made once and
    cached). Named models also get their normalisation fused into the graph so that
    executors feed raw uint8 pixels (see :mod:`deepspark.models.optimize`).
    """
    from deepspark.models.optimize import QUANTIZE_MODES, quantize_int8

    quantize = (quantize or "none").lower()
    if quantize not in QUANTIZE_MODES:
        raise InvalidParameterError(
            f"quantize must be one of {', '.join(QUANTIZE_MODES)}, got {quantize!r}"
        )
    sc = spark.sparkContext
    if model:
        path = local_model_path(model)
        if not path.exists():
            raise ModelNotFoundError(f"model file not found: {path}")
        fw = (framework or detect_framework(path)).lower()
        ref = ModelRef(fw, ship_file(sc, path))
        loaded = ref.load(threads=1)  # on the driver: fails here, not in a task
        sig = loaded.signature
        if len(sig.inputs) != 1:
            raise SignatureError(
                f"an image model needs exactly one input; {path} has {sig}; use "
                "ModelTransformer for models with several inputs"
            )
        spec = sig.inputs[0]
        want = preprocess.input_shape()
        if len(spec.shape) == len(want) and any(
            s >= 0 and w >= 0 and s != w for s, w in zip(spec.shape[1:], want[1:])
        ):
            raise SignatureError(
                f"model {path.name} expects input {spec} but the preprocessing gives "
                f"{want} (inputSize={list(preprocess.size)}, channelOrder="
                f"{preprocess.channel_order}, layout={preprocess.layout}); set those Params "
                f"to match. Model signature: {sig}"
            )
        names = sig.output_names
        out = output_name or names[0]
        if out not in names:
            raise InvalidParameterError(f"model has no output {out!r}; outputs are {names}")
        if quantize == "int8":
            if fw != "onnx":
                raise InvalidParameterError(
                    f"quantize='int8' needs an ONNX model; {path.name} is {fw} "
                    "(export it to ONNX, or leave quantize='none')"
                )
            ref = ModelRef(fw, ship_file(sc, quantize_int8(path, preprocess, spec.name)))
        return ResolvedImageModel(ref, preprocess, spec.name, out, load_labels(labels))

    named = get_named_model(model_name or "efficientnet_lite0")
    if named.preprocess is None or named.task != "image-classification":
        raise InvalidParameterError(f"model '{named.name}' is not an image model")
    out = output_name or named.outputs.get(role)
    if out is None:
        raise InvalidParameterError(f"model '{named.name}' has no {role} output")
    path, pre, input_name = _optimised(named.export(), named.preprocess, "input", quantize)
    pre = dataclasses.replace(pre, fast_decode=preprocess.fast_decode)
    ref = ModelRef("onnx", ship_file(sc, path))
    named_labels = named.labels() if named.labels else None
    return ResolvedImageModel(ref, pre, input_name, out, load_labels(labels) or named_labels)


def _optimised(
    path: Path, pre: ImagePreprocess, input_name: str, quantize: str
) -> tuple[Path, ImagePreprocess, str]:
    """A named model's file for executors: int8 when asked, normalisation fused in."""
    from deepspark.errors import MissingDependencyError
    from deepspark.models.optimize import fuse_preprocessing, quantize_int8

    if quantize == "int8":
        path = quantize_int8(path, pre, input_name)
    try:
        return fuse_preprocessing(path, pre, input_name)
    except MissingDependencyError:  # no `onnx` package: the float input works as well
        return path, pre, input_name

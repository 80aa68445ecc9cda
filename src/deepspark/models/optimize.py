"""Faster variants of ONNX image models, made once on the driver and cached on disk.

* :func:`fuse_preprocessing` moves ``(x * scale - mean) / std`` and the NHWC -> NCHW
  transpose into the graph, so executors feed raw ``uint8`` pixels: no float copy of
  the batch in Python (4x less memory per batch) and the arithmetic runs in ONNX
  Runtime's threads. The outputs are the same to the last bit of float32.
* :func:`quantize_int8` makes a static int8 (QDQ) copy calibrated on a small set of
  real photos (:class:`Int8Settings` says how). It is faster but changes some
  answers: see its docstring for what to expect.

Both are keyed by the content hash of their input file and their settings, so a
second call returns the cached file immediately.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepspark._deps import require
from deepspark._logging import get_logger
from deepspark.errors import InvalidParameterError
from deepspark.models.cache import cache_dir, file_sha256
from deepspark.runtime.preprocess import ImagePreprocess

__all__ = [
    "EXACT_INT8_SETTINGS",
    "QUANTIZE_MODES",
    "Int8Settings",
    "calibration_pixels",
    "fuse_preprocessing",
    "quantize_int8",
]

log = get_logger(__name__)

#: Accepted values of ``quantize``.
QUANTIZE_MODES = ("none", "int8")

#: Name of the uint8 input of a fused model.
PIXELS_INPUT = "pixels"


def _cached_name(path: Path, tag: str) -> Path:
    digest = hashlib.sha256(f"{file_sha256(path)}|{tag}".encode()).hexdigest()[:16]
    return cache_dir("models") / f"{path.stem.split('-')[0]}-{tag.split('|')[0]}-{digest}.onnx"


#: The modules whose code decides what an int8 copy contains.
_INT8_MODULES = ("optimize.py", "_int8_bias.py", "_int8_gptq.py")


@functools.lru_cache(maxsize=1)
def _int8_code_digest() -> str:
    """A digest of the code that makes int8 copies, part of their cache key: a copy
    made by other code (an older deepspark, or an edited checkout) is made again
    rather than reused. Falls back to deepspark's version where the sources cannot be
    read."""
    digest = hashlib.sha256()
    try:
        for name in _INT8_MODULES:
            digest.update((Path(__file__).parent / name).read_bytes())
    except OSError:
        from deepspark import __version__

        return f"version-{__version__}"
    return digest.hexdigest()[:12]


def _atomic_save(model: object, target: Path) -> Path:
    onnx = require("onnx", "Optimising ONNX models")
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, target)  # concurrent writers never expose a partial file
    return target


def fuse_preprocessing(
    path: str | Path, pre: ImagePreprocess, input_name: str
) -> tuple[Path, ImagePreprocess, str]:
    """A copy of ``path`` that takes ``uint8`` NHWC pixels and normalises them itself.

    Parameters
    ----------
    path : str or Path
        ONNX model whose input ``input_name`` is the float tensor ``pre`` produces.
    pre : ImagePreprocess
        The model's preprocessing (float32 output).
    input_name : str

    Returns
    -------
    (Path, ImagePreprocess, str)
        The fused model, the preprocessing to use with it (``dtype="uint8"``,
        ``layout="NHWC"``) and its input name. Models already taking uint8 come back
        unchanged.

    Examples
    --------
    >>> fused, pre2, name = fuse_preprocessing(model_path, pre, "input")  # doctest: +SKIP
    >>> pre2.dtype, pre2.layout, name                                      # doctest: +SKIP
    ('uint8', 'NHWC', 'pixels')
    """
    path = Path(path)
    if pre.dtype != "float32":
        return path, pre, input_name
    fused_pre = dataclasses.replace(pre, dtype="uint8", layout="NHWC")
    tag = f"u8|{pre.layout}|{pre.scale!r}|{pre.mean!r}|{pre.std!r}|{input_name}"
    target = _cached_name(path, tag)
    if target.is_file():  # made before: no need to import onnx (~0.1 s per job)
        return target, fused_pre, PIXELS_INPUT
    onnx = require("onnx", "Optimising ONNX models")
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inputs = [i.name for i in graph.input]
    weights = {t.name for t in graph.initializer}
    if [n for n in inputs if n not in weights] != [input_name]:
        raise InvalidParameterError(
            f"cannot fuse preprocessing into {path.name}: it must have the single input "
            f"{input_name!r}, it has {inputs}"
        )
    h, w = pre.size
    c = pre.channels
    std = np.asarray(pre.std, dtype=np.float32)
    a = (np.float32(pre.scale) / std).astype(np.float32)
    b = (-np.asarray(pre.mean, dtype=np.float32) / std).astype(np.float32)
    shape = (1, c, 1, 1) if pre.layout.upper() == "NCHW" else (1, 1, 1, c)
    a = np.broadcast_to(a, (c,)).reshape(shape)
    b = np.broadcast_to(b, (c,)).reshape(shape)
    nodes = []
    x = PIXELS_INPUT
    if pre.layout.upper() == "NCHW":
        nodes.append(helper.make_node("Transpose", [x], ["_ds_nchw"], perm=[0, 3, 1, 2]))
        x = "_ds_nchw"
    # The same float32 operations, in the same order, as runtime.preprocess.to_batch.
    nodes += [
        helper.make_node("Cast", [x], ["_ds_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["_ds_float", "_ds_a"], ["_ds_scaled"]),
        helper.make_node("Add", ["_ds_scaled", "_ds_b"], [input_name]),
    ]
    graph.initializer.extend(
        [numpy_helper.from_array(a.copy(), "_ds_a"), numpy_helper.from_array(b.copy(), "_ds_b")]
    )
    position = inputs.index(input_name)
    batch = graph.input[position].type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_param or (batch.dim_value if batch.dim_value > 0 else "batch")
    del graph.input[position]
    graph.input.insert(
        position,
        helper.make_tensor_value_info(PIXELS_INPUT, TensorProto.UINT8, [batch_dim, h, w, c]),
    )
    for node in reversed(nodes):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    return _atomic_save(model, target), fused_pre, PIXELS_INPUT


#: The scikit-image colour photos that calibration crops come from. The benchmark's
#: held-out photos (chelsea, rocket, motorcycle_right, ihc, retina) are never used.
CALIBRATION_PHOTOS = ("astronaut.png", "coffee.png", "motorcycle_left.png", "hubble_deep_field.jpg")
#: More real (grayscale) scikit-image photos for ``varied`` calibration sets.
EXTRA_CALIBRATION_PHOTOS = (
    "camera.png",
    "coins.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "moon.png",
)


def calibration_pixels(
    pre: ImagePreprocess,
    count: int = 32,
    seed: int = 0,
    varied: bool = False,
    photos: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """``count`` real photos at the model size: random crops/flips of scikit-image's photos.

    scikit-image (a test dependency) ships the photos; nothing is downloaded.

    Parameters
    ----------
    pre : ImagePreprocess
        Gives the size, resampling filter and channel order.
    count : int
        Number of crops.
    seed : int
        Seed of the crop positions.
    varied : bool
        Also crop :data:`EXTRA_CALIBRATION_PHOTOS` (grayscale photos, as RGB).
    photos : sequence of str, optional
        Crop these scikit-image photos instead (file names in ``skimage/data``); tests
        use it to make held-out photos.

    Returns
    -------
    list of numpy.ndarray
        ``uint8`` ``(h, w, c)`` images.
    """
    require("skimage", "Calibrating int8 quantization (its sample photos)")
    import random

    import skimage
    from PIL import Image

    from deepspark.runtime.preprocess import _RESAMPLE

    folder = Path(skimage.__file__).parent / "data"
    names = photos or CALIBRATION_PHOTOS + (EXTRA_CALIBRATION_PHOTOS if varied else ())
    sources = [Image.open(folder / n).convert("RGB") for n in names]
    rng = random.Random(seed)
    h, w = pre.size
    out = []
    for i in range(count):
        src = sources[i % len(sources)]
        sw, sh = src.size
        cw, ch = int(sw * rng.uniform(0.4, 1.0)), int(sh * rng.uniform(0.4, 1.0))
        x, y = rng.randint(0, sw - cw), rng.randint(0, sh - ch)
        img = src.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        img = img.resize((w, h), _RESAMPLE[pre.resample])
        if pre.channel_order.upper() == "L":
            img = img.convert("L")
        arr = np.asarray(img)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        elif pre.channel_order.upper() == "BGR":
            arr = arr[:, :, ::-1]
        out.append(arr)
    return out


@dataclasses.dataclass(frozen=True)
class Int8Settings:
    """How :func:`quantize_int8` quantizes (the defaults are the shipped setting).

    ``benchmarks/int8_sweep.py`` measures variants of these against the float model.

    Parameters
    ----------
    method : {"minmax", "entropy", "percentile"}
        Calibration method for activation ranges.
    percentile : float
        Percentile kept by ``method="percentile"``.
    per_channel : bool
        One weight scale per output channel (else one per tensor).
    reduce_range : bool
        7-bit weights. On x86 CPUs without VNNI, ONNX Runtime multiplies uint8 by int8
        with ``vpmaddubsw``, whose 16-bit sums saturate with full 8-bit weights.
    weights, activations : {"int8", "uint8"}
        Quantized types.
    symmetric_activations : bool
        Symmetric activation ranges (zero point 0).
    qdq : bool
        QDQ format (``QuantizeLinear``/``DequantizeLinear`` pairs that ONNX Runtime
        fuses); ``False`` writes ``QLinear*`` operators (QOperator format).
    float_ops : tuple of str
        Operator types kept in float.
    float_first_conv : bool
        Keep the first convolution, which sees the raw pixels, in float.
    float_last_convs : int
        Keep this many of the last convolutions (the head, which makes the features the
        classifier reads) in float.
    float_depthwise : bool
        Keep depthwise convolutions (``group > 1``) in float.
    float_nodes : tuple of str
        Names of more nodes to keep in float (``benchmarks/int8_sensitivity.py``
        measures each convolution's effect). On EfficientNet-Lite0, keeping its first
        depthwise convolution (``"/_blocks.0/_depthwise_conv/Conv"``) in float raised
        top-1 agreement from 93.3% to 95.8% at ~10% less int8 speed (not the default;
        measured with weights rounded to nearest, before GPTQ);
        its other layers alone change it by about a point, and each float layer between
        int8 ones costs speed. The copy's metadata asks ONNX Runtime to run float
        layers in float (:data:`deepspark.models.onnx.KEEP_FLOAT_NODES_FLOAT`; without
        it, ONNX Runtime quantizes their weights per tensor); :class:`OnnxModel` does.
    calibration_photos : int
        Number of calibration crops (see :func:`calibration_pixels`).
    varied_calibration : bool
        Calibrate on more (grayscale) photos as well.
    dynamic : bool
        Dynamic quantization (weights only, activation ranges computed at run time);
        the calibration settings are then unused.
    bias_correction : bool
        After quantizing (QDQ format), shift each quantized convolution's ``int32``
        bias so that its mean output per channel on the calibration images equals the
        float model's, layer after layer (:mod:`deepspark.models._int8_bias`). Same
        operators, same speed; on EfficientNet-Lite0 it raises top-1 agreement with
        the float model from 78.7% to 92.7% (7-bit weights) and from 86.8% to 93.3%
        (8-bit weights) on the 600 held-out photos of ``benchmarks/int8_sweep.py``.
        Convolutions without a bias get a zero one first. QDQ format only.
    weight_rounding : {"gptq", "nearest"}
        How convolution weights are put on their int8 grid (QDQ format, static).
        ``"nearest"``: ONNX Runtime's rounding to the nearest grid point. ``"gptq"``:
        GPTQ (:mod:`deepspark.models._int8_gptq`) chooses, layer after layer and
        before that layer's bias correction, the integers that best reproduce the
        layer's output on the calibration images (same grid, same operators, same
        speed; making the copy takes ~2x longer, ~25 s instead of ~10 s, once). On
        EfficientNet-Lite0 it raises top-1 agreement with the float model on the 600
        held-out photos of ``benchmarks/int8_sweep.py`` from 93.3% to 96.0% (8-bit
        weights) and from 92.7% to 93.2% (7-bit), and on crops of ten other photos
        from 89% to 91% and from 75% to 85% (differences of half a point come and go
        with any change in rounding: a point is 6 of the 600 photos). A layer that the calibration images give
        fewer rows (output positions) than it has weights per output channel keeps
        rounding to nearest (calibrate a model of your own on a few dozen images), as
        do weights shared by several convolutions.
    gptq_damping : float
        GPTQ's damping: the fraction of the mean diagonal of each layer's ``X X^T``
        added to it. Less fits the calibration photos more closely: 0.01 agreed less
        on the other photos (86% against 91%).
    """

    method: str = "percentile"
    percentile: float = 99.999
    per_channel: bool = True
    reduce_range: bool = True
    weights: str = "int8"
    activations: str = "uint8"
    symmetric_activations: bool = False
    qdq: bool = True
    float_ops: tuple[str, ...] = ("Gemm", "MatMul")
    float_first_conv: bool = True
    float_last_convs: int = 0
    float_depthwise: bool = False
    float_nodes: tuple[str, ...] = ()
    calibration_photos: int = 32
    varied_calibration: bool = False
    dynamic: bool = False
    bias_correction: bool = True
    weight_rounding: str = "gptq"
    gptq_damping: float = 0.1

    def tag(self) -> str:
        """A short string naming every setting: part of the cache key."""
        fields = (f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return ",".join(fields)


#: The int8 setting for CPUs whose int8 dot products do not saturate (VNNI, AMX, ARM;
#: see :func:`deepspark.runtime._cpu.exact_int8_dot`): full 8-bit weights. A GPU
#: executor also loads this copy, though int8 brings no speed there (docs/images.md).
#: On a VNNI CPU it agrees with the float top-1 on 96.0% of the held-out photos of
#: ``benchmarks/int8_sweep.py`` (``Int8Settings()``: 93.2%; rounded to nearest instead
#: of GPTQ 93.3% and 92.7%; without bias correction either 86.8% and 78.7%), at the
#: same speed.
EXACT_INT8_SETTINGS = Int8Settings(reduce_range=False)


def int8_settings_here() -> Int8Settings:
    """The int8 settings this process's CPU runs best: :data:`EXACT_INT8_SETTINGS`
    where int8 sums are exact, ``Int8Settings()`` (7-bit weights) elsewhere."""
    from deepspark.runtime._cpu import exact_int8_dot

    return EXACT_INT8_SETTINGS if exact_int8_dot() else Int8Settings()


def _prepared_graph(model_path: Path, zero_biases: bool) -> object:
    """The quantizer's input, loaded once and saved back if changed: unnamed nodes named
    (``onnx.helper`` leaves names empty; ONNX Runtime's quantizer excludes nodes by name,
    and excluding "" excluded them all), and with ``zero_biases`` a zero bias for each
    convolution without one (see ``Int8Settings.bias_correction``)."""
    onnx = require("onnx", "int8 quantization")
    from deepspark.models._int8_bias import add_zero_biases

    model = onnx.load(str(model_path))
    taken = {n.name for n in model.graph.node}
    unnamed = [n for n in model.graph.node if not n.name]
    for i, node in enumerate(unnamed):
        name = f"{node.op_type}_{i}"
        while name in taken:
            name += "_"
        node.name = name
        taken.add(name)
    added = add_zero_biases(model) if zero_biases else 0
    if unnamed or added:
        onnx.save(model, str(model_path))
    return model


def _excluded_nodes(model: object, settings: Int8Settings) -> list[str]:
    """Names of the nodes ``settings`` keeps in float."""
    nodes = model.graph.node  # type: ignore[attr-defined]
    convs = [n for n in nodes if n.op_type == "Conv"]
    excluded = [n.name for n in nodes if n.op_type in set(settings.float_ops)]
    if settings.float_first_conv:
        excluded += [n.name for n in convs[:1]]
    if settings.float_last_convs > 0:
        excluded += [n.name for n in convs[-settings.float_last_convs :]]
    unknown = sorted(set(settings.float_nodes) - {n.name for n in nodes})
    if unknown:
        convs_named = ", ".join(n.name for n in convs[:3])
        raise InvalidParameterError(
            f"float_nodes names no node of the model: {', '.join(unknown)}; use node names "
            f"as in the ONNX file (its convolutions: {convs_named}, ...)"
        )
    excluded += list(settings.float_nodes)
    if settings.float_depthwise:
        group = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1) for n in convs}
        excluded += [name for name, g in group.items() if g > 1]
    return excluded


def _keep_float_nodes_float(model: Any) -> None:
    """Ask, in the file's metadata, that ONNX Runtime run the nodes kept in float in
    float (:data:`deepspark.models.onnx.KEEP_FLOAT_NODES_FLOAT`; :class:`OnnxModel`
    reads it)."""
    from deepspark.models.onnx import DISABLED_OPTIMIZERS_KEY, KEEP_FLOAT_NODES_FLOAT

    props = model.metadata_props
    for i in reversed(range(len(props))):
        if props[i].key == DISABLED_OPTIMIZERS_KEY:
            del props[i]
    entry = props.add()
    entry.key, entry.value = DISABLED_OPTIMIZERS_KEY, KEEP_FLOAT_NODES_FLOAT[1]


def quantize_int8(
    path: str | Path,
    pre: ImagePreprocess,
    input_name: str,
    *,
    calibration: Sequence[np.ndarray] | None = None,
    settings: Int8Settings | None = None,
) -> Path:
    """A static int8 copy of an ONNX image model (QDQ, per-channel weights by default).

    What to expect (EfficientNet-Lite0, measured by ``benchmarks/int8_sweep.py`` on
    600 held-out photos that are hard for the model, see docs/benchmarks.md). With the
    default GPTQ rounding and bias correction (``Int8Settings.weight_rounding``,
    ``Int8Settings.bias_correction``) the int8 top-1 equals the float top-1 on about
    93-96% of them, on 100% of those where the float top-1 probability is >= 0.5,
    and is within the float top-5 on ~100%. The speed depends on the CPU's int8
    instructions:

    * without VNNI (x86 with AVX2 or AVX-512BW only), ONNX Runtime multiplies uint8
      activations by int8 weights with ``vpmaddubsw``, whose 16-bit sums saturate, so
      the default (``Int8Settings()``) keeps weights to 7 bits (``reduce_range``):
      1.3-1.5x the float images/s on a 2-core AVX2 CPU;
    * with VNNI, AMX or on ARM, :data:`EXACT_INT8_SETTINGS` (full 8-bit weights), ~2x
      the float images/s on a 2-core AVX-512 VNNI CPU. Transformers with
      ``quantize="int8"`` choose per executor
      (:class:`deepspark.models.loader.ModelRef`).

    Post-training quantization of this model does not reach 99% top-1 agreement with
    any setting tried: on these photos 99% takes about fp16's precision, and rounding
    to bf16's gives ~96% (``benchmarks/precision_ladder.py``).
    ``DeepImagePredictor(recheckMargin=...)`` gets there by re-running the near-ties
    with the float model, at a cost in speed.

    Parameters
    ----------
    path : str or Path
        Float ONNX model taking the tensor ``pre`` produces in ``input_name``.
    pre : ImagePreprocess
        The model's preprocessing (for the calibration photos).
    input_name : str
        The model's image input.
    calibration : sequence of uint8 (h, w, c) arrays, optional
        Real images at the model size; default :func:`calibration_pixels`.
    settings : Int8Settings, optional
        Quantization settings; default ``Int8Settings()``, the setting for every CPU.

    Returns
    -------
    Path
        The quantized model (cached by the source hash, the settings and a digest of
        the code that makes copies: a newer deepspark makes its own).
    """
    path = Path(path)
    settings = settings or Int8Settings()
    tag = f"int8|{input_name}|{settings.tag()}|{_int8_code_digest()}" + (
        "|custom" if calibration else ""
    )
    target = _cached_name(path, tag)
    if target.is_file() and calibration is None:
        # Before importing onnx and ORT's quantization tools: 0.25 s of every first
        # int8 job in a process (the driver's transform) for a file already made.
        return target
    onnx = require("onnx", "int8 quantization")
    ort = require("onnxruntime", "int8 quantization")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from deepspark.runtime.preprocess import to_batch

    types = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    if settings.weights not in types or settings.activations not in types:
        raise InvalidParameterError(f"int8 types must be 'int8' or 'uint8': {settings}")
    if settings.weight_rounding not in ("gptq", "nearest"):
        raise InvalidParameterError(
            f"weight_rounding must be 'gptq' or 'nearest', not {settings.weight_rounding!r}"
        )
    if not settings.gptq_damping >= 0:
        raise InvalidParameterError(
            f"gptq_damping must be >= 0 (0.1 by default), not {settings.gptq_damping!r}"
        )
    log.info("quantizing %s to int8 (once): %s", path.name, target)
    prepared = target.with_suffix(f".{os.getpid()}.pre.onnx")
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)
        gptq = settings.weight_rounding == "gptq"
        refine = (settings.bias_correction or gptq) and settings.qdq and not settings.dynamic
        float_model = _prepared_graph(prepared, zero_biases=refine)
        common = {
            "per_channel": settings.per_channel,
            "reduce_range": settings.reduce_range,
            "weight_type": types[settings.weights],
            "nodes_to_exclude": _excluded_nodes(float_model, settings),
        }
        if settings.dynamic:
            quantize_dynamic(str(prepared), str(tmp), **common)
        else:
            methods = {
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }
            if settings.method not in methods:
                raise InvalidParameterError(f"unknown calibration method: {settings.method!r}")
            pixels = (
                list(calibration)
                if calibration is not None
                else calibration_pixels(
                    pre, settings.calibration_photos, varied=settings.varied_calibration
                )
            )
            if not pixels:
                raise InvalidParameterError(
                    "int8 calibration needs at least one image; pass some real images "
                    "at the model size, or leave calibration=None for the built-in photos"
                )
            # Equal batches: ONNX Runtime's percentile and entropy calibrators stack the
            # batches' outputs and fail on a shorter last one.
            step = next(b for b in range(8, 0, -1) if len(pixels) % b == 0)
            batches = [to_batch(pixels[i : i + step], pre) for i in range(0, len(pixels), step)]

            class Reader(CalibrationDataReader):  # type: ignore[misc]
                def __init__(self) -> None:
                    self._it = iter(batches)

                def get_next(self) -> dict[str, np.ndarray] | None:
                    batch = next(self._it, None)
                    return None if batch is None else {input_name: batch}

            quantize_static(
                str(prepared),
                str(tmp),
                Reader(),
                quant_format=QuantFormat.QDQ if settings.qdq else QuantFormat.QOperator,
                activation_type=types[settings.activations],
                calibrate_method=methods[settings.method],
                extra_options={
                    "ActivationSymmetric": settings.symmetric_activations,
                    "CalibPercentile": settings.percentile,
                },
                **common,
            )
            quantized = onnx.load(str(tmp))
            if refine:
                from deepspark.models._int8_bias import refine_layers

                refine_layers(
                    quantized,
                    float_model,
                    batches,
                    input_name,
                    biases=settings.bias_correction,
                    gptq_damp=settings.gptq_damping if gptq else None,
                )
            _keep_float_nodes_float(quantized)
            onnx.save(quantized, str(tmp))
        ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])  # loads?
        os.replace(tmp, target)
    finally:
        for leftover in (prepared, tmp):
            leftover.unlink(missing_ok=True)
    return target

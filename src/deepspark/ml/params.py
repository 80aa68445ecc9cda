"""Params shared by deepspark's transformers (pyspark.ml style: typeConverter + defaults)."""

from __future__ import annotations

import os
from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasInputCols, HasOutputCol, HasOutputCols

from deepspark.errors import InvalidParameterError

__all__ = [
    "HasBatchSize",
    "HasErrorCol",
    "HasImagePreprocessing",
    "HasInputColumn",
    "HasInputColumns",
    "HasModelFile",
    "HasModelLoading",
    "HasModelSource",
    "HasNumThreads",
    "HasOutputColumn",
    "HasOutputColumns",
    "HasParamAccessors",
    "HasQuantize",
    "model_param_value",
]


class HasInputColumn(HasInputCol):
    """pyspark's ``inputCol`` with its setter (pyspark defines setters per class)."""

    def setInputCol(self, value: str) -> Any:
        """Set the column the transformer reads."""
        return self._set(inputCol=value)


class HasOutputColumn(HasOutputCol):
    """pyspark's ``outputCol`` with its setter."""

    def setOutputCol(self, value: str) -> Any:
        """Set the column the transformer adds."""
        return self._set(outputCol=value)


class HasInputColumns(HasInputCols):
    """pyspark's ``inputCols`` with its setter."""

    def setInputCols(self, value: list[str]) -> Any:
        """Set the columns the transformer reads."""
        return self._set(inputCols=value)


class HasOutputColumns(HasOutputCols):
    """pyspark's ``outputCols`` with its setter."""

    def setOutputCols(self, value: list[str]) -> Any:
        """Set the columns the transformer adds."""
        return self._set(outputCols=value)


class HasParamAccessors(Params):
    """``get<Name>()`` and ``set<Name>(value)`` for every Param without its own accessor,
    as pyspark's generated mixins give (``setInputSize([299, 299])``, ``getThreshold()``).

    A setter converts the value with the Param's ``typeConverter`` and returns the
    transformer, so calls chain. Explicit accessors, where a class defines them, win:
    this only answers names Python does not find.

    >>> from deepspark import SpeechDetector
    >>> SpeechDetector().setThreshold(0.7).getThreshold()
    0.7
    """

    def __getattr__(self, name: str) -> Any:
        if len(name) > 3 and name[:3] in ("get", "set") and name[3].isupper():
            param_name = name[3].lower() + name[4:]
            if isinstance(getattr(type(self), param_name, None), Param):
                if name.startswith("get"):
                    return lambda: self.getOrDefault(param_name)
                return lambda value: self._set(**{param_name: value})
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class HasErrorCol(HasParamAccessors):
    """``errorCol``: column for per-row errors (kept and extended when it already exists)."""

    errorCol: Param[str] = Param(
        Params._dummy(),
        "errorCol",
        "column holding a per-row error message (null when the row is fine); an existing "
        "column of that name keeps its errors",
        typeConverter=TypeConverters.toString,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(errorCol="error")

    def getErrorCol(self) -> str:
        return self.getOrDefault(self.errorCol)

    def setErrorCol(self, value: str) -> Any:
        return self._set(errorCol=value)


class HasBatchSize(Params):
    """``batchSize``: rows per model call."""

    batchSize: Param[int] = Param(
        Params._dummy(),
        "batchSize",
        "number of rows sent to the model in one call (> 0)",
        typeConverter=TypeConverters.toInt,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(batchSize=64)

    def getBatchSize(self) -> int:
        value = self.getOrDefault(self.batchSize)
        if value < 1:
            raise InvalidParameterError(f"batchSize must be > 0, got {value}")
        return value

    def setBatchSize(self, value: int) -> Any:
        return self._set(batchSize=value)


class HasNumThreads(Params):
    """``numThreads``: framework threads per task (0 = the task's CPU share)."""

    numThreads: Param[int] = Param(
        Params._dummy(),
        "numThreads",
        "threads the model may use in each Spark task; 0 uses spark.task.cpus so concurrent "
        "tasks do not oversubscribe the cores",
        typeConverter=TypeConverters.toInt,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(numThreads=0)

    def getNumThreads(self) -> int:
        value = self.getOrDefault(self.numThreads)
        if value < 0:
            raise InvalidParameterError(
                f"numThreads must be >= 0 (0 uses the task's CPU share), got {value}"
            )
        return value

    def setNumThreads(self, value: int) -> Any:
        return self._set(numThreads=value)


class HasModelFile(Params):
    """``model`` (a path) and its ``framework``: for transformers that run a user's model."""

    model: Param[str] = Param(
        Params._dummy(),
        "model",
        "path or URI of a model file or folder (used instead of modelName where the "
        "transformer has one)",
        typeConverter=TypeConverters.toString,
    )
    framework: Param[str] = Param(
        Params._dummy(),
        "framework",
        "framework of `model` (onnx, torch, keras, tensorflow, caffe); detected when empty",
        typeConverter=TypeConverters.toString,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(framework="")

    def getModel(self) -> str | None:
        return self.getOrDefault(self.model) if self.isDefined(self.model) else None

    def setModel(self, value: Any) -> Any:
        """Set ``model``: a path, or a live model where the constructor takes one.

        A live ``nn.Module``/``keras.Model`` goes through ``setParams``, which writes it
        to a file on the driver with the input shapes the transformer's Params give (as
        the constructor does); the Param keeps only the path.
        """
        if isinstance(value, (str, os.PathLike)) or not hasattr(self, "setParams"):
            return self._set(model=os.fspath(value) if isinstance(value, os.PathLike) else value)
        return self.setParams(model=value)

    def copy(self, extra: dict[Any, Any] | None = None) -> Any:
        """pyspark's ``copy``; a live model in ``extra`` is written to a file first (as
        :meth:`setModel` does), since the ``model`` Param holds a path."""
        extra = dict(extra or {})
        live = extra.get(self.model)
        if live is None or isinstance(live, (str, os.PathLike)):
            return super().copy(extra)
        del extra[self.model]
        return super().copy(extra).setModel(live)

    def getFramework(self) -> str:
        return self.getOrDefault(self.framework)

    def _model_name(self) -> str | None:
        """The named model to run when ``model`` is unset (None: this transformer has none)."""
        return None


class HasModelSource(HasModelFile):
    """``modelName`` (a named model) or ``model`` (a path), plus ``framework``.

    Only transformers that ship a named model have ``modelName``; the others take
    :class:`HasModelFile` (a Param that did nothing would be listed and settable).
    """

    modelName: Param[str] = Param(
        Params._dummy(),
        "modelName",
        "name of a pretrained model that ships in a package (see `deepspark models`)",
        typeConverter=TypeConverters.toString,
    )

    def getModelName(self) -> str | None:
        return self.getOrDefault(self.modelName) if self.isDefined(self.modelName) else None

    def _model_name(self) -> str | None:
        return self.getModelName()


class HasImagePreprocessing(Params):
    """How images are prepared for a user's model (named models bring their own)."""

    inputSize: Param[list[int]] = Param(
        Params._dummy(),
        "inputSize",
        "model input size as [height, width]",
        typeConverter=TypeConverters.toListInt,
    )
    channelOrder: Param[str] = Param(
        Params._dummy(), "channelOrder", "RGB, BGR or L", typeConverter=TypeConverters.toString
    )
    layout: Param[str] = Param(
        Params._dummy(), "layout", "NCHW or NHWC", typeConverter=TypeConverters.toString
    )
    scale: Param[float] = Param(
        Params._dummy(),
        "scale",
        "multiplier applied to 0..255 pixels before mean/std",
        typeConverter=TypeConverters.toFloat,
    )
    mean: Param[list[float]] = Param(
        Params._dummy(), "mean", "per-channel mean", typeConverter=TypeConverters.toListFloat
    )
    std: Param[list[float]] = Param(
        Params._dummy(), "std", "per-channel std", typeConverter=TypeConverters.toListFloat
    )
    fastDecode: Param[bool] = Param(
        Params._dummy(),
        "fastDecode",
        "decode large JPEGs at a reduced DCT scale (never below inputSize)",
        typeConverter=TypeConverters.toBoolean,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            inputSize=[224, 224],
            channelOrder="RGB",
            layout="NCHW",
            scale=1 / 255,
            mean=[0.0, 0.0, 0.0],
            std=[1.0, 1.0, 1.0],
            fastDecode=False,
        )

    def _user_preprocess(self) -> Any:
        from deepspark.runtime.preprocess import ImagePreprocess

        size = self.getOrDefault(self.inputSize)
        return ImagePreprocess(
            size=tuple(int(v) for v in size),  # ImagePreprocess refuses all but 2 values
            channel_order=self.getOrDefault(self.channelOrder).upper(),
            layout=self.getOrDefault(self.layout).upper(),
            scale=float(self.getOrDefault(self.scale)),
            mean=tuple(self.getOrDefault(self.mean)),
            std=tuple(self.getOrDefault(self.std)),
            fast_decode=bool(self.getOrDefault(self.fastDecode)),
        )


class HasModelLoading(Params):
    """``engine`` (auto/native/onnxruntime) and ``trustPickle`` for a user's model file."""

    engine: Param[str] = Param(
        Params._dummy(),
        "engine",
        "auto (ONNX Runtime when the model converts and matches the native output), native "
        "or onnxruntime",
        typeConverter=TypeConverters.toString,
    )
    trustPickle: Param[bool] = Param(
        Params._dummy(),
        "trustPickle",
        "allow model files whose loading runs pickled Python code (torch.save modules, "
        "Keras Lambda layers); only for files you trust",
        typeConverter=TypeConverters.toBoolean,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(engine="auto", trustPickle=False)

    def getEngine(self) -> str:
        value = self.getOrDefault(self.engine).lower()
        if value not in ("auto", "native", "onnxruntime"):
            raise InvalidParameterError(
                f"engine must be auto, native or onnxruntime, got {value!r}"
            )
        return value

    def getTrustPickle(self) -> bool:
        return bool(self.getOrDefault(self.trustPickle))


def model_param_value(model: Any, **prepare_options: Any) -> Any:
    """A transformer's ``model`` argument as a path: live models are written to a file.

    A ``torch.nn.Module``, ``keras.Model`` or :class:`~deepspark.models.base.Model` is
    exported on the driver (see :func:`deepspark.load_model`); the transformer keeps
    only the file's path, so it stays picklable and persistable.
    """
    import os

    if model is None or isinstance(model, (str, os.PathLike)):
        return None if model is None else os.fspath(model)
    from deepspark.models.api import prepare_model

    spec, _ = prepare_model(model, **prepare_options)
    return str(spec.path)


class HasQuantize(Params):
    """``quantize``: run an int8 copy of the model ("int8") or the model as is ("none")."""

    quantize: Param[str] = Param(
        Params._dummy(),
        "quantize",
        "'int8' runs a static int8 copy of the ONNX model (calibrated on real photos, made "
        "once and cached; each executor runs the copy that suits its CPU). For "
        "EfficientNet-Lite0: about 2x the float speed with VNNI, 1.3-1.5x on AVX2 CPUs "
        "without; the same top-1 as float on ~93-96% of hard photos (100% of those the "
        "model is confident on), within the float top-5 on ~100% (docs/benchmarks.md). "
        "'none' (default)",
        typeConverter=TypeConverters.toString,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(quantize="none")

    def getQuantize(self) -> str:
        value = self.getOrDefault(self.quantize).lower()
        if value not in ("none", "int8"):
            raise InvalidParameterError(f"quantize must be 'none' or 'int8', got {value!r}")
        return value

    def setQuantize(self, value: str) -> Any:
        return self._set(quantize=value)

"""Image transformers: :class:`DeepImagePredictor` (ImageNet-style classification),
:class:`ImageModelTransformer` (any framework's image model, raw outputs) and
:class:`DeepImageFeaturizer` (pretrained features for transfer learning)."""

from __future__ import annotations

from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.sql import Column, DataFrame

from deepspark.errors import InvalidParameterError
from deepspark.ml._apply import apply_task, image_input_kind
from deepspark.ml.params import (
    HasBatchSize,
    HasErrorCol,
    HasImagePreprocessing,
    HasInputColumn,
    HasModelFile,
    HasModelLoading,
    HasModelSource,
    HasNumThreads,
    HasOutputColumn,
    HasQuantize,
    model_param_value,
)
from deepspark.ml.persistence import ModelFilePersistence

__all__ = ["DeepImageFeaturizer", "DeepImagePredictor", "ImageModelTransformer"]


def _labels_value(labels: Any) -> Any:
    """``labels`` may be a list or the path of a labels file (one per line, or JSON)."""
    import os

    if isinstance(labels, (str, os.PathLike)):
        from deepspark.models.labels import load_labels

        return ["\t".join(pair) for pair in load_labels(os.fspath(labels)) or ()]
    return labels


class _ImageTaskMixin:
    """What the three image transformers share: resolve the model on the driver into an
    :class:`~deepspark.runtime.engine.ImageModelTask`, and apply it to the input column."""

    def _image_task(
        self,
        spark: Any,
        kind: str,
        *,
        model_name: str | None,
        model: str | None,
        labels: list[str] | None,
        output_name: str | None,
        role: str,
        mode: str,
        quantize: str = "none",
        recheck_margin: float = 0.0,
        **task_options: Any,
    ) -> Any:
        from deepspark.models.resolve import resolve_image_model
        from deepspark.runtime.engine import ImageModelTask

        resolved = resolve_image_model(
            spark,
            model_name=model_name,
            model=model,
            framework=self.getFramework(),  # type: ignore[attr-defined]
            labels=labels,
            preprocess=self._user_preprocess(),  # type: ignore[attr-defined]
            output_name=output_name,
            role=role,
            engine=self.getEngine(),  # type: ignore[attr-defined]
            trust_pickle=self.getTrustPickle(),  # type: ignore[attr-defined]
            quantize=quantize,
            float_copy=recheck_margin > 0,
        )
        return ImageModelTask(
            model=resolved.ref,
            preprocess=resolved.preprocess,
            input_kind=kind,
            input_name=resolved.input_name,
            output_name=resolved.output_name,
            mode=mode,
            labels=resolved.labels if mode == "topk" else None,
            batch_size=self.getBatchSize(),  # type: ignore[attr-defined]
            threads=self.getNumThreads(),  # type: ignore[attr-defined]
            recheck_model=resolved.float_ref,
            recheck_margin=recheck_margin,
            **task_options,
        )

    def _apply_image_task(self, dataset: DataFrame, result_expr: Any = None) -> DataFrame:
        kind = image_input_kind(dataset, self.getInputCol())  # type: ignore[attr-defined]
        task = self._build_task(dataset.sparkSession, kind)  # type: ignore[attr-defined]
        return apply_task(
            dataset,
            self.getInputCol(),  # type: ignore[attr-defined]
            self.getOutputCol(),  # type: ignore[attr-defined]
            self.getErrorCol(),  # type: ignore[attr-defined]
            task.run,
            task.result_spark_type(),
            result_expr=result_expr,
        )


class DeepImagePredictor(
    _ImageTaskMixin,
    Transformer,
    HasInputColumn,
    HasOutputColumn,
    HasErrorCol,
    HasBatchSize,
    HasNumThreads,
    HasModelSource,
    HasModelLoading,
    HasImagePreprocessing,
    HasQuantize,
    ModelFilePersistence,
):
    """Classify images with a pretrained network; top-k classes per row.

    The input column may hold Spark image structs (:func:`deepspark.read_images` or
    ``spark.read.format("image")``), encoded file bytes (``binaryFile``'s ``content``)
    or file paths; bytes and paths are decoded on the executors together with
    inference, so decoded pixels never cross the JVM boundary.

    The output column is ``array<struct<class, description, probability>>`` sorted by
    probability, e.g. ``{class: "n02123045", description: "tabby, tabby cat",
    probability: 0.71}``. Rows whose input cannot be used get a null prediction and a
    reason in ``errorCol``; errors already in that column are kept.

    Parameters
    ----------
    inputCol : str, default "image"
    outputCol : str, default "predictions"
    modelName : str, default "efficientnet_lite0"
        A named model (``deepspark models`` lists them).
    model : str, optional
        Your own classifier, of any framework (a path as for
        :func:`deepspark.load_model`, or a live ``nn.Module``/``keras.Model`` which is
        written to a file on the driver), used instead of ``modelName``, with
        ``labels`` and the preprocessing Params (``inputSize``, ``mean``, ``std``...).
    labels : list of str or path, optional
        Class names of ``model`` in output order, or a file of them (one per line).
    engine : {"auto", "native", "onnxruntime"}, default "auto"
    trustPickle : bool, default False
    topK : int, default 5
    batchSize : int, default 64
    errorCol : str, default "error"
    numThreads : int, default 0 (the task's CPU share)
    quantize : {"none", "int8"}, default "none"
        "int8" runs a static int8 copy of the model (made once, cached; each
        executor runs the copy that suits its CPU). For EfficientNet-Lite0: about 2x
        faster with VNNI (AVX-512 VNNI, AVX-VNNI, AMX), 1.3-1.5x on AVX2 CPUs without;
        the same top-1 as float on ~93-96% of hard photos (100% where the model is
        confident), within the float top-5 on ~100% (see docs/benchmarks.md).
    recheckMargin : float, default 0.0
        With ``quantize="int8"``: the rows whose int8 top-1 and top-2 probabilities
        differ by less than this are run again with the float model (shipped too),
        whose result they get; 0 never does. On the benchmark's hard photos, 0.025
        kept the float top-1 on 99.0-99.4% of them by re-running 10-15%, at 1.38-1.44x
        the float speed end to end (int8 alone: 1.67x); 0.05 on 99.8% by re-running
        19-25% (docs/benchmarks.md).
    fastDecode : bool, default False
        Decode JPEGs with DCT scaling and the fast DCT (pixels differ by about 1 level).

    Examples
    --------
    >>> import deepspark
    >>> spark = deepspark.session("local[2]")                          # doctest: +SKIP
    >>> images = deepspark.read_images(spark, "samples/")              # doctest: +SKIP
    >>> predictor = deepspark.DeepImagePredictor(topK=3)               # doctest: +SKIP
    >>> predictor.transform(images).select("image.origin", "predictions").show()  # doctest: +SKIP
    """

    topK: Param[int] = Param(
        Params._dummy(),
        "topK",
        "number of classes per row (> 0)",
        typeConverter=TypeConverters.toInt,
    )
    labels: Param[list[str]] = Param(
        Params._dummy(),
        "labels",
        "class names of a user's model in output order (a 'id<TAB>description' item gives both)",
        typeConverter=TypeConverters.toListString,
    )
    outputName: Param[str] = Param(
        Params._dummy(),
        "outputName",
        "model output holding the class scores (default: the first output)",
        typeConverter=TypeConverters.toString,
    )
    applySoftmax: Param[bool] = Param(
        Params._dummy(),
        "applySoftmax",
        "turn the model's scores into probabilities with a softmax (true for logits)",
        typeConverter=TypeConverters.toBoolean,
    )
    recheckMargin: Param[float] = Param(
        Params._dummy(),
        "recheckMargin",
        "with quantize='int8': run the rows whose int8 top-1 and top-2 probabilities "
        "differ by less than this again with the float model, which then gives their "
        "result (0, the default: never). 0.025 kept the float top-1 on ~99% of hard "
        "photos, re-running 10-15% of them (docs/benchmarks.md)",
        typeConverter=TypeConverters.toFloat,
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str = "image",
        outputCol: str = "predictions",
        modelName: str | None = "efficientnet_lite0",
        model: str | None = None,
        framework: str = "",
        labels: list[str] | None = None,
        topK: int = 5,
        batchSize: int = 64,
        errorCol: str = "error",
        numThreads: int = 0,
        outputName: str | None = None,
        applySoftmax: bool = True,
        inputSize: list[int] | None = None,
        channelOrder: str = "RGB",
        layout: str = "NCHW",
        scale: float = 1 / 255,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        fastDecode: bool = False,
        engine: str = "auto",
        trustPickle: bool = False,
        quantize: str = "none",
        recheckMargin: float = 0.0,
    ) -> None:
        super().__init__()
        self._setDefault(
            inputCol="image",
            outputCol="predictions",
            modelName="efficientnet_lite0",
            topK=5,
            applySoftmax=True,
            recheckMargin=0.0,
        )
        self._set(**_coerce(self, self._input_kwargs))

    @keyword_only
    def setParams(self, **kwargs: Any) -> DeepImagePredictor:
        """Set any of the constructor's Params."""
        return self._set(**_coerce(self, self._input_kwargs))

    def getTopK(self) -> int:
        value = self.getOrDefault(self.topK)
        if value < 1:
            raise InvalidParameterError(f"topK must be > 0, got {value}")
        return value

    def setTopK(self, value: int) -> DeepImagePredictor:
        return self._set(topK=value)

    def getRecheckMargin(self) -> float:
        value = float(self.getOrDefault(self.recheckMargin))
        if not value >= 0:  # also NaN
            raise InvalidParameterError(f"recheckMargin must be >= 0, got {value}")
        if value > 0 and self.getQuantize() != "int8":
            raise InvalidParameterError(
                f"recheckMargin={value} re-runs uncertain int8 rows in float, so it needs "
                "quantize='int8'; set quantize='int8', or leave recheckMargin at 0"
            )
        return value

    def setRecheckMargin(self, value: float) -> DeepImagePredictor:
        return self._set(recheckMargin=value)

    # ------------------------------------------------------------------ driver side
    def _build_task(self, spark: Any, kind: str) -> Any:
        return self._image_task(
            spark,
            kind,
            model_name=self.getModelName(),
            model=self.getModel(),
            labels=self.getOrDefault(self.labels) if self.isDefined(self.labels) else None,
            output_name=(
                self.getOrDefault(self.outputName) if self.isDefined(self.outputName) else None
            ),
            role="logits",
            mode="topk",
            quantize=self.getQuantize(),
            recheck_margin=self.getRecheckMargin(),
            top_k=self.getTopK(),
            apply_softmax=bool(self.getOrDefault(self.applySoftmax)),
        )

    def _transform(self, dataset: DataFrame) -> DataFrame:
        return self._apply_image_task(dataset)


def _coerce(params: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Drop None values; a live model object becomes a file path, a labels file a list."""
    out = {k: v for k, v in kwargs.items() if v is not None}
    if "labels" in out:
        out["labels"] = _labels_value(out["labels"])
    if "model" in out and not isinstance(out["model"], str):
        # The preprocessing Params fix the input shape a live model is exported with.
        probe = params.copy()
        probe._set(**{k: v for k, v in out.items() if k != "model" and probe.hasParam(k)})
        out["model"] = model_param_value(
            out["model"],
            engine=out.get("engine", "auto"),
            input_shapes=[probe._user_preprocess().input_shape()],
        )
    return out


class ImageModelTransformer(
    _ImageTaskMixin,
    Transformer,
    HasInputColumn,
    HasOutputColumn,
    HasErrorCol,
    HasBatchSize,
    HasNumThreads,
    HasModelFile,
    HasModelLoading,
    HasImagePreprocessing,
    ModelFilePersistence,
):
    """Apply any image model (Keras, TensorFlow, PyTorch, ONNX, Caffe) to an image column.

    What sparkdl's ``KerasImageFileTransformer``/``TFImageTransformer`` did, for every
    framework. The input column holds Spark image structs, encoded file bytes or file
    paths (bytes and paths are decoded on the executors). Images are resized to
    ``inputSize``, put in ``channelOrder``, scaled ``(x * scale - mean) / std`` and laid
    out as ``layout``; the model's ``outputName`` output becomes the output column.
    Rows that cannot be read get a null output and a reason in ``errorCol``.

    Parameters
    ----------
    inputCol : str, default "image"
    outputCol : str, default "output"
    model : str or live model
        A model path as for :func:`deepspark.load_model` (``.keras``, ``.h5``,
        SavedModel folder, ``.pt``, ``.pt2``, ``.onnx``, ``.caffemodel`` with its
        ``.prototxt``), or a ``torch.nn.Module``/``keras.Model`` written to a file here.
    framework : str, optional
        Detected from the file when empty.
    inputSize : [height, width], default [224, 224]
    channelOrder : {"RGB", "BGR", "L"}, default "RGB"
    layout : {"NCHW", "NHWC"}, default "NCHW"
    scale : float, default 1/255
    mean, std : list of float, default [0, 0, 0] and [1, 1, 1]
    outputName : str, optional
        Which model output to return (default: the first).
    outputMode : {"array", "vector", "probabilities"}, default "array"
        ``array`` gives ``array<float>`` (the output flattened per row), ``vector`` a
        ``pyspark.ml.linalg.DenseVector`` (for Spark ML estimators), ``probabilities``
        the softmax of the output (unless it already is a distribution).
    engine : {"auto", "native", "onnxruntime"}, default "auto"
    trustPickle : bool, default False
    batchSize : int, default 64
    errorCol : str, default "error"
    numThreads : int, default 0

    Examples
    --------
    >>> t = deepspark.ImageModelTransformer(                       # doctest: +SKIP
    ...     model="classifier.keras", layout="NHWC", inputSize=[64, 64], outputMode="vector")
    >>> t.transform(deepspark.read_images(spark, "photos/")).select("output").show()  # doctest: +SKIP
    """

    outputName: Param[str] = Param(
        Params._dummy(),
        "outputName",
        "model output to return (default: the first output)",
        typeConverter=TypeConverters.toString,
    )
    outputMode: Param[str] = Param(
        Params._dummy(),
        "outputMode",
        "array (array<float>), vector (ml DenseVector) or probabilities (softmax)",
        typeConverter=TypeConverters.toString,
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str = "image",
        outputCol: str = "output",
        model: Any = None,
        framework: str = "",
        inputSize: list[int] | None = None,
        channelOrder: str = "RGB",
        layout: str = "NCHW",
        scale: float = 1 / 255,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        outputName: str | None = None,
        outputMode: str = "array",
        engine: str = "auto",
        trustPickle: bool = False,
        batchSize: int = 64,
        errorCol: str = "error",
        numThreads: int = 0,
        fastDecode: bool = False,
    ) -> None:
        super().__init__()
        self._setDefault(inputCol="image", outputCol="output", outputMode="array")
        self._set(**_coerce(self, self._input_kwargs))

    @keyword_only
    def setParams(self, **kwargs: Any) -> ImageModelTransformer:
        """Set any of the constructor's Params."""
        return self._set(**_coerce(self, self._input_kwargs))

    def getOutputMode(self) -> str:
        mode = self.getOrDefault(self.outputMode).lower()
        if mode not in ("array", "vector", "probabilities"):
            raise InvalidParameterError(
                f"outputMode must be array, vector or probabilities, got {mode!r}"
            )
        return mode

    def _build_task(self, spark: Any, kind: str) -> Any:
        if not self.getModel():
            raise InvalidParameterError(
                "ImageModelTransformer needs model=<path of a model file or folder> "
                "(or DeepImagePredictor for the named pretrained models)"
            )
        mode = self.getOutputMode()
        return self._image_task(
            spark,
            kind,
            model_name=None,
            model=self.getModel(),
            labels=None,
            output_name=(
                self.getOrDefault(self.outputName) if self.isDefined(self.outputName) else None
            ),
            role="logits",
            mode=mode,
            apply_softmax=mode == "probabilities",
        )

    def _transform(self, dataset: DataFrame) -> DataFrame:
        to_vector = _to_vector if self.getOutputMode() == "vector" else None
        return self._apply_image_task(dataset, result_expr=to_vector)


class DeepImageFeaturizer(
    _ImageTaskMixin,
    Transformer,
    HasInputColumn,
    HasOutputColumn,
    HasErrorCol,
    HasBatchSize,
    HasNumThreads,
    HasModelSource,
    HasModelLoading,
    HasImagePreprocessing,
    ModelFilePersistence,
):
    """Turn images into feature vectors with a pretrained network (transfer learning).

    The output column holds a :class:`pyspark.ml.linalg.DenseVector` per row: for a
    named model, the pooled penultimate-layer features (1280 values for
    ``efficientnet_lite0``), ready for Spark MLlib estimators such as
    ``LogisticRegression``. For your own model, ``layer`` names the model output to
    use (default: its first output); outputs with more than one value per row are
    flattened.

    The input column may hold Spark image structs, encoded file bytes (``binaryFile``'s
    ``content``) or file paths. A null image, an invalid image struct or a file that
    cannot be decoded gives null features and a reason in ``errorCol`` (errors already
    there are kept); the job never fails because of one row. Drop those rows before
    fitting an estimator: ``df.where("features IS NOT NULL")``.

    The featurizer is saved and loaded like any Spark ML stage, alone or inside a
    ``PipelineModel``; a ``model`` file is copied into the saved folder
    (:mod:`deepspark.ml.persistence`), so the saved pipeline is self-contained. It
    also transforms streaming DataFrames (``spark.readStream``).

    ``Pipeline([featurizer, estimator]).fit(df)`` runs the network more than once per
    training image, since estimators pass over their input several times. To run it
    once, cache the featurized training rows, fit the estimator on them and build
    ``PipelineModel(stages=[featurizer, fitted])`` (``examples/transfer_learning.py``).

    Parameters
    ----------
    inputCol : str, default "image"
    outputCol : str, default "features"
    modelName : str, default "efficientnet_lite0"
        A named model (``deepspark models`` lists them).
    model : str, optional
        Path of your own model (used instead of ``modelName``) with the preprocessing
        Params (``inputSize``, ``mean``, ``std``...).
    layer : str, optional
        Model output to read (for named models: their ``features`` output). For an
        ONNX model it may also name an inner tensor (a layer's output), which is then
        read as an extra output (:mod:`deepspark.models.onnx_layers`).
    batchSize : int, default 64
    errorCol : str, default "error"
    numThreads : int, default 0 (the task's CPU share)

    Examples
    --------
    >>> import deepspark
    >>> from pyspark.ml import Pipeline
    >>> from pyspark.ml.classification import LogisticRegression
    >>> from pyspark.ml.feature import StringIndexer
    >>> spark = deepspark.session("local[2]")                          # doctest: +SKIP
    >>> images = deepspark.read_images(                                 # doctest: +SKIP
    ...     spark, "pets/", label_from_dir=True, drop_invalid=True)  # no null features
    >>> index = StringIndexer(inputCol="label", outputCol="labelIndex")  # doctest: +SKIP
    >>> featurizer = deepspark.DeepImageFeaturizer(inputCol="image", outputCol="features")
    >>> lr = LogisticRegression(featuresCol="features", labelCol="labelIndex")  # doctest: +SKIP
    >>> model = Pipeline(stages=[index, featurizer, lr]).fit(images)    # doctest: +SKIP
    >>> model.write().overwrite().save("pets-model")                    # doctest: +SKIP
    """

    layer: Param[str] = Param(
        Params._dummy(),
        "layer",
        "model output holding the features (default: a named model's pooled features, "
        "or the first output of your own model)",
        typeConverter=TypeConverters.toString,
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str = "image",
        outputCol: str = "features",
        modelName: str | None = "efficientnet_lite0",
        model: str | None = None,
        framework: str = "",
        layer: str | None = None,
        batchSize: int = 64,
        errorCol: str = "error",
        numThreads: int = 0,
        inputSize: list[int] | None = None,
        channelOrder: str = "RGB",
        layout: str = "NCHW",
        scale: float = 1 / 255,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        fastDecode: bool = False,
        engine: str = "auto",
        trustPickle: bool = False,
    ) -> None:
        super().__init__()
        self._setDefault(inputCol="image", outputCol="features", modelName="efficientnet_lite0")
        self._set(**_coerce(self, self._input_kwargs))

    @keyword_only
    def setParams(self, **kwargs: Any) -> DeepImageFeaturizer:
        """Set any of the constructor's Params."""
        return self._set(**_coerce(self, self._input_kwargs))

    def getLayer(self) -> str | None:
        return self.getOrDefault(self.layer) if self.isDefined(self.layer) else None

    def setLayer(self, value: str) -> DeepImageFeaturizer:
        return self._set(layer=value)

    # ------------------------------------------------------------------ driver side
    def _model_with_layer(self) -> str | None:
        """The ``model`` path; for an ONNX file whose ``layer`` is an inner tensor, a
        copy of the graph that outputs it."""
        model, layer = self.getModel(), self.getLayer()
        if not model or not layer:
            return model
        from deepspark.models.resolve import detect_framework, local_model_path

        path = local_model_path(model)
        if not path.is_file():
            return model  # resolve_image_model says what is wrong
        try:
            framework = (self.getFramework() or detect_framework(path)).lower()
        except InvalidParameterError:
            return model
        if framework != "onnx":
            return model
        from deepspark.models.onnx_layers import with_layer_output

        return str(with_layer_output(path, layer))

    def _build_task(self, spark: Any, kind: str) -> Any:
        return self._image_task(
            spark,
            kind,
            model_name=self.getModelName(),
            model=self._model_with_layer(),
            labels=None,
            output_name=self.getLayer(),
            role="features",
            mode="vector",
        )

    def _transform(self, dataset: DataFrame) -> DataFrame:
        return self._apply_image_task(dataset, result_expr=_to_vector)


def _to_vector(column: Column) -> Column:
    """array<float> -> DenseVector, null kept (``array_to_vector`` fails on null)."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    return F.when(column.isNotNull(), array_to_vector(column))

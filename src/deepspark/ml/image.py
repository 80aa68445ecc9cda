"""Image transformers: :class:`DeepImagePredictor` (ImageNet-style classification)."""

from __future__ import annotations

from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame

from deepspark.errors import InvalidParameterError
from deepspark.ml._apply import apply_task, image_input_kind
from deepspark.ml.params import (
    HasBatchSize,
    HasErrorCol,
    HasImagePreprocessing,
    HasModelSource,
    HasNumThreads,
    HasQuantize,
)

__all__ = ["DeepImagePredictor"]


class DeepImagePredictor(
    Transformer,
    HasInputCol,
    HasOutputCol,
    HasErrorCol,
    HasBatchSize,
    HasNumThreads,
    HasModelSource,
    HasImagePreprocessing,
    HasQuantize,
    DefaultParamsReadable,
    DefaultParamsWritable,
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
        Path of your own classifier (used instead of ``modelName``) with
        ``labels`` and the preprocessing Params (``inputSize``, ``mean``, ``std``...).
    labels : list of str, optional
        Class names of ``model`` in output order.
    topK : int, default 5
    batchSize : int, default 64
    errorCol : str, default "error"
    numThreads : int, default 0 (the task's CPU share)
    quantize : {"none", "int8"}, default "none"
        "int8" runs a static int8 copy of the model (made once, cached): faster on
        CPUs, top-1 may differ on a few images (see docs/benchmarks.md).
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
        Params._dummy(), "topK", "number of classes per row (> 0)", typeConverter=TypeConverters.toInt
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
        quantize: str = "none",
    ) -> None:
        super().__init__()
        self._setDefault(
            inputCol="image",
            outputCol="predictions",
            modelName="efficientnet_lite0",
            topK=5,
            applySoftmax=True,
        )
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None}
        self._set(**kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> DeepImagePredictor:
        """Set any of the constructor's Params."""
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def getTopK(self) -> int:
        value = self.getOrDefault(self.topK)
        if value < 1:
            raise InvalidParameterError(f"topK must be > 0, got {value}")
        return value

    def setTopK(self, value: int) -> DeepImagePredictor:
        return self._set(topK=value)

    # ------------------------------------------------------------------ driver side
    def _build_task(self, df: DataFrame) -> Any:
        from deepspark.models.resolve import resolve_image_model
        from deepspark.runtime.engine import ImageModelTask

        kind = image_input_kind(df, self.getInputCol())
        resolved = resolve_image_model(
            df.sparkSession,
            model_name=self.getModelName(),
            model=self.getModel(),
            framework=self.getFramework(),
            labels=self.getOrDefault(self.labels) if self.isDefined(self.labels) else None,
            preprocess=self._user_preprocess(),
            output_name=(
                self.getOrDefault(self.outputName) if self.isDefined(self.outputName) else None
            ),
            role="logits",
            quantize=self.getQuantize(),
        )
        return ImageModelTask(
            model=resolved.ref,
            preprocess=resolved.preprocess,
            input_kind=kind,
            input_name=resolved.input_name,
            output_name=resolved.output_name,
            mode="topk",
            top_k=self.getTopK(),
            labels=resolved.labels,
            apply_softmax=bool(self.getOrDefault(self.applySoftmax)),
            batch_size=self.getBatchSize(),
            threads=self.getNumThreads(),
        )

    def _transform(self, dataset: DataFrame) -> DataFrame:
        task = self._build_task(dataset)
        return apply_task(
            dataset,
            self.getInputCol(),
            self.getOutputCol(),
            self.getErrorCol(),
            task.run,
            task.result_spark_type(),
        )

"""Text transformers: :class:`TextEmbedder` (sentence embeddings) and :class:`TextClassifier`.

Both take a string column, tokenize it with the model's own ``tokenizer.json`` (Hugging
Face ``tokenizers``) and run the network with ONNX Runtime on the executors; the
network is exported once to ONNX on the driver and cached by its content hash.
"""

from __future__ import annotations

from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.sql import Column, DataFrame

from deepspark.errors import InvalidParameterError
from deepspark.ml._apply import apply_task, check_output_columns, missing_columns_error
from deepspark.ml.params import (
    HasBatchSize,
    HasErrorCol,
    HasInputColumn,
    HasModelFile,
    HasModelSource,
    HasNumThreads,
    HasOutputColumn,
)
from deepspark.ml.persistence import ModelFilePersistence

__all__ = ["TextClassifier", "TextEmbedder"]


class _TextModelParams(HasInputColumn, HasErrorCol, HasBatchSize, HasNumThreads, HasModelFile):
    """Params shared by the text transformers, and building their executor task."""

    maxLength: Param[int] = Param(
        Params._dummy(),
        "maxLength",
        "longest input in tokens (special tokens included); longer texts are truncated. "
        "Capped to the model's position limit",
        typeConverter=TypeConverters.toInt,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(inputCol="text", maxLength=256, batchSize=32)

    @keyword_only
    def setParams(self, **kwargs: Any) -> Any:
        """Set any of the constructor's Params (None leaves a Param as it is)."""
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def getMaxLength(self) -> int:
        return self.getOrDefault(self.maxLength)

    def setMaxLength(self, value: int) -> Any:
        return self._set(maxLength=value)

    def _text_task(self, df: DataFrame, task: str, normalize: bool = True) -> Any:
        """Check the input column, resolve the model on the driver, build the task."""
        from pyspark.sql.types import StringType

        from deepspark.models.text import resolve_text_model
        from deepspark.runtime.text import TextModelTask

        column = self.getInputCol()
        if column not in df.columns:
            raise missing_columns_error(df, [column])
        dtype = df.schema[column].dataType
        if not isinstance(dtype, StringType):
            raise InvalidParameterError(
                f"input column '{column}' has type {dtype.simpleString()}; a text model needs "
                "a string column (deepspark.read_text gives one)"
            )
        if self.getFramework().lower() not in ("", "onnx"):
            raise InvalidParameterError(
                f"framework {self.getFramework()!r}: text models are exported to ONNX and run "
                "by ONNX Runtime; leave framework empty"
            )
        resolved = resolve_text_model(
            df.sparkSession,
            model_name=self._model_name(),
            model=self.getModel(),
            task=task,
            max_length=self.getMaxLength(),
        )
        return TextModelTask(
            model=resolved,
            mode=task,
            normalize=normalize,
            batch_size=self.getBatchSize(),
            threads=self.getNumThreads(),
        )


def _to_vector(array: Column) -> Column:
    """array<float> -> ml Vector, null stays null (array_to_vector fails on null)."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    return F.when(array.isNotNull(), array_to_vector(array))


class TextEmbedder(
    Transformer,
    _TextModelParams,
    HasModelSource,
    HasOutputColumn,
    ModelFilePersistence,
):
    """Embed text with a sentence-embedding model; one vector per row.

    Texts are tokenized with the model's own tokenizer (truncated to ``maxLength``
    tokens), run through the network, pooled as the model defines (its
    sentence-transformers ``Pooling`` configuration; mean pooling for a plain Hugging
    Face model) and, with ``normalize``, scaled to unit length, so the dot product of
    two embeddings is their cosine similarity.

    A null text gives a null embedding; an empty text gives a valid embedding. Errors
    already in ``errorCol`` (e.g. from :func:`deepspark.read_text`) are kept.

    Parameters
    ----------
    inputCol : str, default "text"
    outputCol : str, default "embedding"
        A ``pyspark.ml.linalg`` dense vector column.
    modelName : str, default "all-MiniLM-L6-v2"
        A named model (``deepspark models`` lists them); its files ship in a package.
    model : str, optional
        A local folder of a sentence-transformers or Hugging Face model (used instead
        of ``modelName``), e.g. one written by ``SentenceTransformer.save``.
    normalize : bool, default True
        L2-normalise the embeddings.
    maxLength : int, default 256
    batchSize : int, default 32
    errorCol : str, default "error"
    numThreads : int, default 0 (the task's CPU share)

    Examples
    --------
    >>> import deepspark
    >>> spark = deepspark.session("local[2]")                          # doctest: +SKIP
    >>> df = spark.createDataFrame([("A cat sleeps.",), ("Stocks fell.",)], ["text"])  # doctest: +SKIP
    >>> deepspark.TextEmbedder().transform(df).select("embedding").first()  # doctest: +SKIP
    Row(embedding=DenseVector([0.0123, ...]))
    """

    normalize: Param[bool] = Param(
        Params._dummy(),
        "normalize",
        "scale embeddings to unit length (dot product = cosine similarity)",
        typeConverter=TypeConverters.toBoolean,
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str = "text",
        outputCol: str = "embedding",
        modelName: str | None = "all-MiniLM-L6-v2",
        model: str | None = None,
        framework: str = "",
        normalize: bool = True,
        maxLength: int = 256,
        batchSize: int = 32,
        errorCol: str = "error",
        numThreads: int = 0,
    ) -> None:
        super().__init__()
        self._setDefault(outputCol="embedding", modelName="all-MiniLM-L6-v2", normalize=True)
        self.setParams(**self._input_kwargs)

    def getNormalize(self) -> bool:
        return bool(self.getOrDefault(self.normalize))

    def setNormalize(self, value: bool) -> TextEmbedder:
        return self._set(normalize=value)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        task = self._text_task(dataset, "embedding", normalize=self.getNormalize())
        return apply_task(
            dataset,
            self.getInputCol(),
            self.getOutputCol(),
            self.getErrorCol(),
            task.run,
            task.result_spark_type(),
            result_expr=_to_vector,
        )


class TextClassifier(
    Transformer,
    _TextModelParams,
    ModelFilePersistence,
):
    """Classify text with a Hugging Face sequence-classification model.

    ``model`` is a local folder written by ``save_pretrained`` (``config.json``,
    weights, tokenizer). Each row gets the most probable label (from the config's
    ``id2label``) and its score: a softmax over the logits, or a sigmoid for
    multi-label and single-output models, as transformers' text-classification
    pipeline computes it.

    A null text gives a null label and score. Errors already in ``errorCol`` are kept.

    Parameters
    ----------
    inputCol : str, default "text"
    model : str
        Folder of the classifier.
    labelCol : str, default "label"
    scoreCol : str, default "score"
    maxLength : int, default 256
    batchSize : int, default 32
    errorCol : str, default "error"
    numThreads : int, default 0 (the task's CPU share)

    Examples
    --------
    >>> import deepspark
    >>> clf = deepspark.TextClassifier(model="models/sentiment")         # doctest: +SKIP
    >>> clf.transform(reviews).select("text", "label", "score").show()   # doctest: +SKIP
    """

    labelCol: Param[str] = Param(
        Params._dummy(), "labelCol", "output column of the label", TypeConverters.toString
    )
    scoreCol: Param[str] = Param(
        Params._dummy(), "scoreCol", "output column of the label's score", TypeConverters.toString
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str = "text",
        model: str | None = None,
        labelCol: str = "label",
        scoreCol: str = "score",
        maxLength: int = 256,
        batchSize: int = 32,
        errorCol: str = "error",
        numThreads: int = 0,
    ) -> None:
        super().__init__()
        self._setDefault(labelCol="label", scoreCol="score")
        self.setParams(**self._input_kwargs)

    def getLabelCol(self) -> str:
        return self.getOrDefault(self.labelCol)

    def getScoreCol(self) -> str:
        return self.getOrDefault(self.scoreCol)

    def setLabelCol(self, value: str) -> TextClassifier:
        """Set the output column of the label."""
        return self._set(labelCol=value)

    def setScoreCol(self, value: str) -> TextClassifier:
        """Set the output column of the label's score."""
        return self._set(scoreCol=value)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        if not self.getModel():
            raise InvalidParameterError(
                "TextClassifier needs model=<folder of a Hugging Face sequence-classification "
                "model> (written by save_pretrained)"
            )
        check_output_columns(
            dataset,
            {"labelCol": self.getLabelCol(), "scoreCol": self.getScoreCol()},
            self.getErrorCol(),
        )
        task = self._text_task(dataset, "classification")
        tmp = "__deepspark_class"
        out = apply_task(
            dataset,
            self.getInputCol(),
            tmp,
            self.getErrorCol(),
            task.run,
            task.result_spark_type(),
            checked=True,
        )
        return (
            out.withColumn(self.getLabelCol(), F.col(f"{tmp}.label"))
            .withColumn(self.getScoreCol(), F.col(f"{tmp}.score"))
            .drop(tmp)
        )

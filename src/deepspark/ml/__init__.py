"""Spark ML transformers: Params, Pipelines, persistence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepspark._lazy import lazy_attributes

# Imported on first use: executors import this package to run a task and need none of
# the transformer classes (nor pyspark.ml) for it.
_LAZY: dict[str, str] = {
    "DeepImagePredictor": "deepspark.ml.image",
    "DeepImageFeaturizer": "deepspark.ml.image",
    "ImageModelTransformer": "deepspark.ml.image",
    "ModelTransformer": "deepspark.ml.tensor",
    "register_udf": "deepspark.ml.sql",
    "SpeechDetector": "deepspark.ml.audio",
    "AudioModelTransformer": "deepspark.ml.audio",
    "TextEmbedder": "deepspark.ml.text",
    "TextClassifier": "deepspark.ml.text",
}

if TYPE_CHECKING:
    from deepspark.ml.audio import AudioModelTransformer, SpeechDetector
    from deepspark.ml.image import DeepImageFeaturizer, DeepImagePredictor, ImageModelTransformer
    from deepspark.ml.sql import register_udf
    from deepspark.ml.tensor import ModelTransformer
    from deepspark.ml.text import TextClassifier, TextEmbedder

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = list(_LAZY)

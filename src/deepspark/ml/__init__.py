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

if TYPE_CHECKING:  # names for type checkers; __all__ comes from _LAZY
    from deepspark.ml.audio import AudioModelTransformer, SpeechDetector  # noqa: F401
    from deepspark.ml.image import (  # noqa: F401
        DeepImageFeaturizer,
        DeepImagePredictor,
        ImageModelTransformer,
    )
    from deepspark.ml.sql import register_udf  # noqa: F401
    from deepspark.ml.tensor import ModelTransformer  # noqa: F401
    from deepspark.ml.text import TextClassifier, TextEmbedder  # noqa: F401

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = list(_LAZY)

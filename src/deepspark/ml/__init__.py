"""Spark ML transformers: Params, Pipelines, persistence."""

from deepspark.ml.audio import AudioModelTransformer, SpeechDetector
from deepspark.ml.image import DeepImagePredictor, ImageModelTransformer
from deepspark.ml.sql import register_udf
from deepspark.ml.tensor import ModelTransformer

__all__ = [
    "DeepImagePredictor",
    "ImageModelTransformer",
    "ModelTransformer",
    "register_udf",
    "SpeechDetector",
    "AudioModelTransformer",
]

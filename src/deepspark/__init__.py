"""deepspark: deep-learning models over images, audio and text inside Spark DataFrames.

Read files into DataFrames (decoded on the executors), apply pretrained or your own
models with Spark ML transformers, and get predictions or embeddings back as columns.

>>> import deepspark
>>> spark = deepspark.session()                                     # doctest: +SKIP
>>> images = deepspark.read_images(spark, "photos/")                # doctest: +SKIP
>>> deepspark.DeepImagePredictor(topK=5).transform(images)          # doctest: +SKIP

``import deepspark`` imports no deep-learning framework: each is imported by the
backend that needs it, when it is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepspark._lazy import lazy_attributes

# Bound eagerly (the module imports only the standard library): the function shares its
# module's name, and a lazy binding would lose to the submodule whenever something
# imports ``deepspark.session`` first (``from deepspark.session import DEFAULT_CONF``),
# leaving ``deepspark.session(...)`` a module.
from deepspark.session import session

# Every public name is imported on first use (PEP 562), not here: Spark starts a fresh
# Python worker per executor core, and each one imports this package to unpickle a
# task. Importing every transformer (and with them pyspark.ml, pandas and scipy) eagerly
# cost each worker about a second before its first row.
_LAZY: dict[str, str] = {
    "image": "deepspark.image",
    "DeepSparkError": "deepspark.errors",
    "InputNotFoundError": "deepspark.errors",
    "InvalidParameterError": "deepspark.errors",
    "MissingDependencyError": "deepspark.errors",
    "ModelError": "deepspark.errors",
    "ModelLoadError": "deepspark.errors",
    "ModelNotFoundError": "deepspark.errors",
    "SignatureError": "deepspark.errors",
    "UnsafeModelError": "deepspark.errors",
    "read_audio": "deepspark.io.audio",
    "read_images": "deepspark.io.images",
    "read_text": "deepspark.io.text",
    "list_paths": "deepspark.io._files",
    "AudioModelTransformer": "deepspark.ml.audio",
    "SpeechDetector": "deepspark.ml.audio",
    "DeepImageFeaturizer": "deepspark.ml.image",
    "DeepImagePredictor": "deepspark.ml.image",
    "ImageModelTransformer": "deepspark.ml.image",
    "register_udf": "deepspark.ml.sql",
    "ModelTransformer": "deepspark.ml.tensor",
    "TextClassifier": "deepspark.ml.text",
    "TextEmbedder": "deepspark.ml.text",
    "load_model": "deepspark.models.api",
    "Model": "deepspark.models.base",
    "Signature": "deepspark.models.base",
    "TensorSpec": "deepspark.models.base",
    "list_models": "deepspark.models.zoo",
}

if TYPE_CHECKING:  # static type checkers and IDEs see the eager imports
    from deepspark import image
    from deepspark.errors import (
        DeepSparkError,
        InputNotFoundError,
        InvalidParameterError,
        MissingDependencyError,
        ModelError,
        ModelLoadError,
        ModelNotFoundError,
        SignatureError,
        UnsafeModelError,
    )
    from deepspark.io._files import list_paths
    from deepspark.io.audio import read_audio
    from deepspark.io.images import read_images
    from deepspark.io.text import read_text
    from deepspark.ml.audio import AudioModelTransformer, SpeechDetector
    from deepspark.ml.image import DeepImageFeaturizer, DeepImagePredictor, ImageModelTransformer
    from deepspark.ml.sql import register_udf
    from deepspark.ml.tensor import ModelTransformer
    from deepspark.ml.text import TextClassifier, TextEmbedder
    from deepspark.models.api import load_model
    from deepspark.models.base import Model, Signature, TensorSpec
    from deepspark.models.zoo import list_models


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__version__ = "0.1.0"

# Grouped by part (readers, transformers, models, runtime, errors), as the docs list them.
__all__ = [  # noqa: RUF022
    "__version__",
    # readers
    "read_images",
    "read_audio",
    "read_text",
    "list_paths",
    "image",
    # transformers
    "DeepImagePredictor",
    "DeepImageFeaturizer",
    "ImageModelTransformer",
    "ModelTransformer",
    "register_udf",
    "SpeechDetector",
    "AudioModelTransformer",
    "TextEmbedder",
    "TextClassifier",
    # models
    "list_models",
    "load_model",
    "Model",
    "Signature",
    "TensorSpec",
    # runtime
    "session",
    # errors
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

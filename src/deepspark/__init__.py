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
from deepspark.io.audio import read_audio
from deepspark.io.images import read_images
from deepspark.ml.audio import AudioModelTransformer, SpeechDetector
from deepspark.ml.image import DeepImagePredictor, ImageModelTransformer
from deepspark.ml.sql import register_udf
from deepspark.ml.tensor import ModelTransformer
from deepspark.models.api import load_model
from deepspark.models.base import Model, Signature, TensorSpec
from deepspark.models.zoo import list_models
from deepspark.session import session

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # readers
    "read_images",
    "read_audio",
    "image",
    # transformers
    "DeepImagePredictor",
    "ImageModelTransformer",
    "ModelTransformer",
    "register_udf",
    "SpeechDetector",
    "AudioModelTransformer",
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

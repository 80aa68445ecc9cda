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
from deepspark.io.images import read_images
from deepspark.ml.image import DeepImageFeaturizer, DeepImagePredictor
from deepspark.models.zoo import list_models
from deepspark.session import session

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # readers
    "read_images",
    "image",
    # transformers
    "DeepImagePredictor",
    "DeepImageFeaturizer",
    # models
    "list_models",
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

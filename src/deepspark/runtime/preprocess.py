"""Image preprocessing for models: decode, orient, resize, reorder, normalise, batch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepspark.errors import InvalidParameterError

__all__ = ["ImagePreprocess", "load_pixels", "read_path", "to_batch"]

_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}


@dataclass(frozen=True)
class ImagePreprocess:
    """How an image becomes a model input tensor.

    ``pixels -> resize to size -> channel order -> (x * scale - mean) / std -> layout``

    Parameters
    ----------
    size : (height, width)
        Model input size.
    channel_order : {"RGB", "BGR", "L"}
    layout : {"NCHW", "NHWC"}
    scale : float
        Multiplier applied to 0..255 pixel values first (1/255 maps them to 0..1).
    mean, std : tuple of float
        Per-channel normalisation after scaling.
    resample : str
        Pillow resampling filter: "bilinear" (default), "bicubic", "nearest", ...
    dtype : str
        Tensor dtype (``"float32"``, or ``"uint8"`` for models that take raw pixels).
    fast_decode : bool
        Decode JPEGs at a reduced DCT scale when the photo is much larger than
        ``size`` (never below ``size``); a little faster, very slightly different pixels.
    """

    size: tuple[int, int] = (224, 224)
    channel_order: str = "RGB"
    layout: str = "NCHW"
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    resample: str = "bilinear"
    dtype: str = "float32"
    fast_decode: bool = False

    def __post_init__(self) -> None:
        if self.channel_order.upper() not in ("RGB", "BGR", "L"):
            raise InvalidParameterError(
                f"channelOrder must be RGB, BGR or L, got {self.channel_order!r}"
            )
        if self.layout.upper() not in ("NCHW", "NHWC"):
            raise InvalidParameterError(f"layout must be NCHW or NHWC, got {self.layout!r}")
        if self.resample not in _RESAMPLE:
            raise InvalidParameterError(
                f"resample must be one of {sorted(_RESAMPLE)}, got {self.resample!r}"
            )
        if len(self.size) != 2 or min(self.size) < 1:
            raise InvalidParameterError(f"inputSize must be (height, width), got {self.size}")
        channels = self.channels
        for name, value in (("mean", self.mean), ("std", self.std)):
            if len(value) not in (1, channels):
                raise InvalidParameterError(
                    f"{name} needs 1 or {channels} values for {self.channel_order}, got {value}"
                )
        if any(s == 0 for s in self.std):
            raise InvalidParameterError("std values must be non-zero")

    @property
    def channels(self) -> int:
        return 1 if self.channel_order.upper() == "L" else 3

    def input_shape(self) -> tuple[int, ...]:
        """Tensor shape with -1 for the batch."""
        h, w = self.size
        if self.layout.upper() == "NCHW":
            return (-1, self.channels, h, w)
        return (-1, h, w, self.channels)


def read_path(path: str) -> bytes:
    """Read a file given as a local path, ``file:`` path or URI, or any pyarrow-supported URI."""
    from deepspark.io._files import local_path, read_file_bytes

    local = local_path(path)
    if local is not None:
        # Hadoop form ("file:/a #1.jpg") keeps characters literal; "file:///" URIs are
        # percent-decoded (a '#' in a name must not be taken for a URI fragment). Not a
        # plain open(): a FIFO would block the task forever; unreadable files, broken
        # links and folders raise FileReadError with the readers' one-line reasons.
        return read_file_bytes(local)
    import pyarrow.fs as pafs

    uri = path.replace("s3a://", "s3://", 1).replace("s3n://", "s3://", 1)
    fs, inner = pafs.FileSystem.from_uri(uri)
    with fs.open_input_stream(inner) as fh:
        return fh.read()


def load_pixels(value: Any, kind: str, pre: ImagePreprocess) -> np.ndarray:
    """One input value -> ``(h, w, c)`` uint8 pixels at the model size and channel order.

    ``kind`` is "struct" (Spark image struct), "binary" (encoded file bytes) or "path".
    Raises on bad input; the caller turns the exception into the row's error.
    """
    from PIL import Image

    from deepspark.io.images import convert_channels, decode_image, to_array

    h, w = pre.size
    order = pre.channel_order.upper()
    if kind == "struct":
        arr = to_array(value, "RGB")
        if arr.shape[2] == 4:
            arr = arr[:, :, :3]
        img = Image.fromarray(arr if arr.shape[2] == 3 else arr[:, :, 0])
    else:
        data = read_path(value) if kind == "path" else value
        fast = _decode_jpeg_rgb(data, (w, h), pre.fast_decode) if order != "L" else None
        if fast is not None:
            return _finish(fast, pre)
        img = decode_image(data, draft=(w, h) if pre.fast_decode else None)
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    if order == "L" and img.mode != "L":
        img = img.convert("L")
    elif order != "L" and img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != (w, h):
        img = img.resize((w, h), _RESAMPLE[pre.resample])
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if order == "BGR":
        arr = convert_channels(arr, "RGB", "BGR")
    return arr


def _finish(rgb: np.ndarray, pre: ImagePreprocess) -> np.ndarray:
    """RGB pixels from the fast JPEG path -> model size and channel order."""
    from PIL import Image

    from deepspark.io.images import convert_channels

    h, w = pre.size
    if rgb.shape[:2] != (h, w):
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), _RESAMPLE[pre.resample]))
    if pre.channel_order.upper() == "BGR":
        rgb = convert_channels(rgb, "RGB", "BGR")
    return rgb


def _simplejpeg() -> Any:
    try:
        import simplejpeg
    except ImportError:  # optional: Pillow decodes everything on its own
        return None
    return simplejpeg


def _decode_jpeg_rgb(data: Any, size: tuple[int, int], fast: bool) -> np.ndarray | None:
    """RGB pixels of a plain JPEG with libjpeg-turbo (simplejpeg), or None to use Pillow.

    simplejpeg decodes the same pixels as Pillow (both are libjpeg-turbo with the same
    DCT and upsampling) with less overhead; ``fast`` adds DCT scaling to no less than
    ``size`` and the fast DCT/upsampling (pixels differ by about one level). Anything
    unusual (not a JPEG, CMYK, an EXIF rotation, a pixel count over the limit, a
    decoding error) goes to the Pillow path, which handles it or names the problem.
    """
    if not data or bytes(data[:2]) != b"\xff\xd8":
        return None
    sj = _simplejpeg()
    if sj is None:
        return None
    from deepspark.io.images import DEFAULT_MAX_PIXELS

    data = bytes(data) if not isinstance(data, bytes) else data
    try:
        height, width, colorspace, _ = sj.decode_jpeg_header(data)
        if colorspace not in ("YCbCr", "Gray", "RGB") or height * width > DEFAULT_MAX_PIXELS:
            return None
        if b"Exif" in data[:65536] and _exif_rotated(data):
            return None
        w, h = size
        return sj.decode_jpeg(
            data,
            colorspace="RGB",
            fastdct=fast,
            fastupsample=fast,
            min_height=h if fast else 0,
            min_width=w if fast else 0,
        )
    except Exception:  # noqa: BLE001 - Pillow gets the file and reports the problem
        return None


def _exif_rotated(data: bytes) -> bool:
    """True when the JPEG's EXIF orientation asks for a rotation or a flip."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:  # lazy: reads the header only
        return int(img.getexif().get(0x0112, 1) or 1) != 1


def to_batch(pixels: list[np.ndarray], pre: ImagePreprocess) -> np.ndarray:
    """Stack uint8 ``(h, w, c)`` images into one normalised tensor in the model layout."""
    batch = np.stack(pixels)
    if pre.dtype == "uint8":
        out = batch
    else:
        # (x * scale - mean) / std  ==  x * a + b, one fused pass over the batch.
        std = np.asarray(pre.std, dtype=np.float32)
        a = np.float32(pre.scale) / std
        b = -np.asarray(pre.mean, dtype=np.float32) / std
        out = batch.astype(np.float32)
        out *= a
        out += b
        out = out.astype(pre.dtype, copy=False)
    if pre.layout.upper() == "NCHW":
        out = out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out)


def cpu_count() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1

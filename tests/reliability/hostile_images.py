"""Hostile image inputs, generated on the fly: every case is a file (or directory entry)
with what deepspark must make of it: a decoded image of a known size, or a precise error.

Used by ``test_hostile_images.py``; kept separate so other tests (the CLI, a cluster
run) can build the same folder.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _reliability import encode
from PIL import Image

#: The upright reference for EXIF orientation cases: four solid quadrants (red,
#: green / blue, white) of a 48x32 (w x h) image, distinguishable under any flip/rotation.
QUADRANT_COLORS = np.array(
    [[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8
)


def quadrant_image(width: int = 48, height: int = 32) -> np.ndarray:
    """(height, width, 3) uint8: quadrants TL red, TR green, BL blue, BR white."""
    return np.repeat(np.repeat(QUADRANT_COLORS, height // 2, axis=0), width // 2, axis=1)


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores so that EXIF ``orientation`` displays ``upright``.

    From the EXIF 2.3 definition of tag 0x0112 (where row 0 / column 0 of the stored
    image go on display), written independently of Pillow's transpose table.
    """
    u = upright
    return {
        1: lambda: u,
        2: lambda: u[:, ::-1],  # mirrored horizontally
        3: lambda: u[::-1, ::-1],  # rotated 180
        4: lambda: u[::-1, :],  # mirrored vertically
        5: lambda: u.transpose(1, 0, 2),  # mirrored along the main diagonal
        6: lambda: np.rot90(u, 1),  # display = stored rotated 90 clockwise
        7: lambda: np.rot90(u, 2).transpose(1, 0, 2),  # mirrored along the anti-diagonal
        8: lambda: np.rot90(u, -1),  # display = stored rotated 90 counter-clockwise
    }[orientation]()


def jpeg_with_orientation(orientation: int) -> bytes:
    img = Image.fromarray(
        np.ascontiguousarray(stored_for_orientation(quadrant_image(), orientation))
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, "JPEG", quality=95, exif=exif.tobytes())


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` RGB pixels: signature, IHDR, empty IDAT,
    IEND, all with valid CRCs (a decompression bomb is this header plus a tiny stream)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def real_png_bomb(side: int = 10_000) -> bytes:
    """A genuine ``side`` x ``side`` gray PNG of zeros: ~100 KB on disk, ``side**2`` bytes
    (10^8 by default, beyond Pillow's 89.5 M pixel limit) once decoded."""
    row = b"\x00" + b"\x00" * side  # filter byte + pixels
    comp = zlib.compressobj(9)
    stream = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")
    )


@dataclass
class Case:
    """One hostile input.

    ``size`` (width, height) and ``channels`` for a file that must decode; ``error`` (a
    substring of the row's error) for one that must not. ``check`` optionally looks at
    the decoded RGB pixels.
    """

    name: str
    make: Callable[[Path], None]
    size: tuple[int, int] | None = None
    channels: int | None = None
    error: str | None = None
    check: Callable[[np.ndarray], None] | None = None
    #: error expected instead of ``error`` for some DeepImagePredictor input kinds
    kind_errors: dict[str, str] = field(default_factory=dict)
    #: input kinds the case does not apply to
    not_for: tuple[str, ...] = ()


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _rgb(w: int, h: int, color: tuple[int, int, int] = (200, 30, 60)) -> Image.Image:
    return Image.new("RGB", (w, h), color)


def _exif_check(orientation: int) -> Callable[[np.ndarray], None]:
    def check(rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        # Mean colour of each quadrant's centre, away from JPEG edge ringing.
        got = np.array(
            [
                [
                    rgb[
                        r * h // 2 + h // 8 : (r + 1) * h // 2 - h // 8,
                        c * w // 2 + w // 8 : (c + 1) * w // 2 - w // 8,
                    ]
                    .reshape(-1, 3)
                    .mean(0)
                    for c in range(2)
                ]
                for r in range(2)
            ]
        )
        assert np.abs(got - QUADRANT_COLORS).max() < 40, f"orientation {orientation}: {got.round()}"

    return check


def _gray16_check(rgb: np.ndarray) -> None:
    # 16-bit 0 / 32896 / 65535 (left to right thirds) -> 8-bit 0 / 128 / 255.
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert abs(int(rgb[0, rgb.shape[1] // 2, 0]) - 128) <= 1


def _gray16(path: Path) -> None:
    arr = np.zeros((8, 9), dtype=np.uint16)
    arr[:, 3:6], arr[:, 6:] = 32896, 65535
    Image.fromarray(arr).save(path, "PNG")  # mode I;16


def _cmyk(path: Path) -> None:
    Image.new("CMYK", (24, 16), (0, 255, 255, 0)).save(path, "JPEG", quality=95)  # red


def _float_unit(path: Path) -> None:
    # Pillow mode F with values in [0, 1] (left to right thirds: 0, 0.5, 1), as
    # scientific tools write float images.
    arr = np.zeros((8, 9), dtype=np.float32)
    arr[:, 3:6], arr[:, 6:] = 0.5, 1.0
    Image.fromarray(arr, mode="F").save(path, "TIFF")


def _color_check(color: tuple[int, int, int]) -> Callable[[np.ndarray], None]:
    def check(rgb: np.ndarray) -> None:
        mean = rgb.reshape(-1, 3).mean(0)
        assert np.abs(mean - np.array(color)).max() < 12, (mean.round(), color)

    return check


_red_check = _color_check((255, 0, 0))
_good_check = _color_check((200, 30, 60))


def _palette_transparent(path: Path) -> None:
    img = Image.new("P", (10, 10), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(0, (0, 0, 5, 10))
    img.save(path, "PNG", transparency=0)


def _animated_gif(path: Path) -> None:
    frames = [Image.new("RGB", (12, 10), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _bad_exif(path: Path) -> None:
    # A valid JPEG whose APP1 EXIF block is garbage after its header.
    jpeg = encode(_rgb(16, 12), "JPEG")
    app1 = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + b"\xff" * 40
    seg = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    path.write_bytes(jpeg[:2] + seg + jpeg[2:])


def _symlink_to(target: str) -> Callable[[Path], None]:
    return lambda path: path.symlink_to(path.parent / target)


def _unreadable(path: Path) -> None:
    path.write_bytes(encode(_rgb(8, 8), "PNG"))
    path.chmod(0)


def cases() -> list[Case]:
    """Every hostile input (the reference good JPEG first)."""
    good_jpeg = encode(_rgb(40, 30), "JPEG", quality=90)
    good_png = encode(_rgb(40, 30), "PNG")
    rng = np.random.default_rng(7)
    out = [
        Case("good.jpg", _bytes(good_jpeg), (40, 30), 3, check=_good_check),
        Case(
            "truncated.jpg",
            _bytes(good_jpeg[: len(good_jpeg) // 2]),
            error="image file is truncated",
        ),
        Case(
            "truncated.png", _bytes(good_png[: len(good_png) - 30]), error="image file is truncated"
        ),
        # Complete but for the 2-byte end-of-image marker (some cameras and uploads):
        # decoded, as browsers and Spark's image source do.
        Case("no_eoi.jpg", _bytes(good_jpeg[:-2]), (40, 30), 3, check=_good_check),
        # One byte of the scan missing as well: really truncated.
        Case("no_eoi_short_scan.jpg", _bytes(good_jpeg[:-3]), error="image file is truncated"),
        Case("header_only.jpg", _bytes(good_jpeg[:20]), error="cannot identify image file"),
        Case("empty.jpg", _bytes(b""), error="empty file (0 bytes)"),
        Case("png_named.jpg", _bytes(good_png), (40, 30), 3, check=_good_check),
        Case("jpeg_named.txt", _bytes(good_jpeg), (40, 30), 3),
        Case("no_extension", _bytes(good_png), (40, 30), 3),
        Case(
            "text.jpg",
            _bytes(b"this is a text file, not a JPEG\n" * 5),
            error="cannot identify image file",
        ),
        Case(
            "random.png",
            _bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
            error="cannot identify image file",
        ),
        Case(
            "bomb_header.png",
            _bytes(png_header_only(100_000, 100_000)),
            error="decompression bomb: 10000000000 pixels",
        ),
        Case(
            "bomb_just_over.png",
            _bytes(png_header_only(10_000, 9_000)),
            error="decompression bomb: 90000000 pixels",
        ),
        Case(
            "bomb_real.png", _bytes(real_png_bomb()), error="decompression bomb: 100000000 pixels"
        ),
        Case("one_pixel.png", lambda p: _rgb(1, 1).save(p, "PNG"), (1, 1), 3),
        Case("wide_20000x20.png", lambda p: _rgb(20_000, 20).save(p, "PNG"), (20_000, 20), 3),
        Case("gray16.png", _gray16, (9, 8), 1, check=_gray16_check),
        # the same thirds as gray16.png: 0 / 128 / 255, not all black
        Case("float_unit.tif", _float_unit, (9, 8), 1, check=_gray16_check),
        Case("cmyk.jpg", _cmyk, (24, 16), 3, check=_red_check),
        Case("palette_transparent.png", _palette_transparent, (10, 10), 4),
        Case("animated.gif", _animated_gif, (12, 10), 3, check=_red_check),
        Case("bad_exif.jpg", _bad_exif, (16, 12), 3),
        Case("name with spaces.jpg", _bytes(good_jpeg), (40, 30), 3),
        Case("ünïcødé 写真.jpg", _bytes(good_jpeg), (40, 30), 3),
        Case("odd #%+&;=@[1].jpg", _bytes(good_jpeg), (40, 30), 3),
        Case("symlink.jpg", _symlink_to("good.jpg"), (40, 30), 3),
        Case(
            "dangling_symlink.jpg",
            _symlink_to("does-not-exist.jpg"),
            error="cannot read file: broken symbolic link",
            # a binary column holds no bytes; a path column is read by the predictor,
            # with the readers' reason
            kind_errors={"binary": "input is null"},
        ),
        Case(
            "named_pipe.jpg",
            os.mkfifo,
            # Opening a FIFO waits for a writer: read as a file it would hang the task.
            error="not a regular file",
            # Spark's binaryFile source lists it with no bytes.
            kind_errors={"binary": "empty file (0 bytes)"},
        ),
    ]
    for o in range(1, 9):
        out.append(
            Case(
                f"exif_orientation_{o}.jpg",
                _bytes(jpeg_with_orientation(o)),
                (48, 32),
                3,
                check=_exif_check(o),
            )
        )
    if os.geteuid() != 0:
        # As root (CI containers) permission bits are not enforced: the dangling symlink
        # above is the unreadable entry there.
        # Spark's binaryFile scan itself fails the job on such a file: a binary content
        # column cannot even hold it (read_images and path columns read in Python).
        out.append(
            Case("unreadable.png", _unreadable, error="permission denied", not_for=("binary",))
        )
    return out


def build(folder: Path) -> list[Case]:
    """Write every case into ``folder``; returns the cases."""
    folder.mkdir(parents=True, exist_ok=True)
    all_cases = cases()
    for case in all_cases:
        case.make(folder / case.name)
    return all_cases

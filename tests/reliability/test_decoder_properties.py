"""Property-based tests: decoders fed random and mutated bytes never crash a worker.

Each decoder in :data:`DECODERS` is wrapped as ``bytes -> (value, error)`` exactly as the
executor code uses it, and must: never raise (only ``Exception`` subclasses may come out
of the raw decoder, and they are turned into the error); give a one-line, non-empty
error for bad input with the decoder's "invalid" value; give a consistent valid value
otherwise. Audio and text decoders join by appending a :class:`Decoder` to the list.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image


@dataclass(frozen=True)
class Decoder:
    """A decoder under test.

    ``decode(data) -> (value, error)``; ``check_valid(value)`` and
    ``check_invalid(value)`` assert the value is consistent for each outcome;
    ``seeds`` are valid encoded samples that mutations start from.
    """

    name: str
    decode: Callable[[bytes], tuple[Any, str | None]]
    check_valid: Callable[[Any], None]
    check_invalid: Callable[[Any], None]
    seeds: Callable[[], list[bytes]]


# ---------------------------------------------------------------- images
def _image_seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    out = []
    for fmt, mode in (
        ("PNG", "RGB"),
        ("JPEG", "RGB"),
        ("GIF", "P"),
        ("BMP", "RGB"),
        ("TIFF", "RGB"),
        ("WEBP", "RGB"),
        ("PNG", "I;16"),
        ("PNG", "LA"),
    ):
        img = Image.fromarray(pixels)
        if mode == "I;16":
            img = Image.fromarray(pixels[:, :, 0].astype(np.uint16) * 257)
        elif mode != "RGB":
            img = img.convert(mode)
        buf = io.BytesIO()
        img.save(buf, fmt)
        out.append(buf.getvalue())
    return out


def _struct_decode(data: bytes) -> tuple[Any, str | None]:
    from deepspark.io.images import decode_to_struct

    return decode_to_struct(data, "file:///x.bin")


def _struct_valid(struct: dict[str, Any]) -> None:
    from deepspark.io.images import OCV_MODES

    h, w, c = struct["height"], struct["width"], struct["nChannels"]
    assert h >= 1 and w >= 1 and c in OCV_MODES and struct["mode"] == OCV_MODES[c]
    assert len(struct["data"]) == h * w * c
    assert struct["origin"] == "file:///x.bin"


def _struct_invalid(struct: dict[str, Any]) -> None:
    assert (struct["height"], struct["width"], struct["nChannels"], struct["mode"]) == (-1,) * 4
    assert struct["data"] == b"" and struct["origin"] == "file:///x.bin"


def _pixels_decode(data: bytes) -> tuple[Any, str | None]:
    # Exactly what the inference engine does with a "binary" input row.
    from deepspark.io.images import decode_error_reason
    from deepspark.runtime.preprocess import ImagePreprocess, load_pixels

    try:
        return load_pixels(data, "binary", ImagePreprocess(size=(7, 9))), None
    except Exception as exc:  # noqa: BLE001 - the engine turns this into the row's error
        return None, decode_error_reason(exc)


def _pixels_valid(arr: np.ndarray) -> None:
    assert arr.dtype == np.uint8 and arr.shape == (7, 9, 3)


def _pixels_invalid(arr: Any) -> None:
    assert arr is None


# ---------------------------------------------------------------- audio
def _audio_seeds() -> list[bytes]:
    import soundfile as sf

    rng = np.random.default_rng(0)
    samples = rng.uniform(-0.5, 0.5, (400, 2)).astype(np.float32)
    out = []
    for fmt, subtype in (
        ("WAV", "PCM_16"),
        ("WAV", "PCM_24"),
        ("WAV", "PCM_U8"),
        ("WAV", "FLOAT"),
        ("FLAC", "PCM_16"),
        ("OGG", "VORBIS"),
    ):
        buf = io.BytesIO()
        sf.write(buf, samples, 8000, format=fmt, subtype=subtype)
        out.append(buf.getvalue())
    return out


def _audio_decode(data: bytes) -> tuple[Any, str | None]:
    # The reader's own batch function, for one file, as read_audio runs it on executors.
    from deepspark.io.audio import _decode_batch

    batch = _decode_batch(
        ["file:///x.wav"], [(data, None)], sample_rate=None, mono=False, max_duration=None
    )
    row = batch.to_pylist()[0]
    return row["audio"], row["error"]


def _audio_valid(audio: dict[str, Any]) -> None:
    rate, channels, frames = audio["sampleRate"], audio["numChannels"], audio["numFrames"]
    assert rate > 0 and channels >= 1 and frames >= 0
    assert len(audio["data"]) == channels * frames
    assert all(np.isfinite(audio["data"]))


def _audio_invalid(audio: dict[str, Any]) -> None:
    assert (audio["sampleRate"], audio["numChannels"], audio["numFrames"]) == (-1, -1, -1)
    assert audio["data"] == [] and audio["origin"] == "file:///x.wav"


# ---------------------------------------------------------------- text
def _text_seeds() -> list[bytes]:
    sample = "Grüße aus Zürich — 東京\nsecond line\r\n\nnext paragraph ☃"
    return [
        sample.encode("utf-8"),
        "\ufeff".encode() + sample.encode("utf-8"),
        b"plain ascii text\n" * 20,
    ]


def _text_decode(data: bytes) -> tuple[Any, str | None]:
    # What read_text runs on executors for one file's bytes.
    from deepspark.io.text import decode_text

    return decode_text(data)


def _text_valid(text: Any) -> None:
    assert isinstance(text, str) and not text.startswith("\ufeff")


def _text_invalid(text: Any) -> None:
    assert text is None


DECODERS: list[Decoder] = [
    Decoder(
        "images.decode_to_struct", _struct_decode, _struct_valid, _struct_invalid, _image_seeds
    ),
    Decoder("preprocess.load_pixels", _pixels_decode, _pixels_valid, _pixels_invalid, _image_seeds),
    Decoder("audio._decode_batch", _audio_decode, _audio_valid, _audio_invalid, _audio_seeds),
    Decoder("text.decode_text", _text_decode, _text_valid, _text_invalid, _text_seeds),
]


def _check(decoder: Decoder, data: bytes) -> None:
    value, error = decoder.decode(data)  # must not raise
    if error is None:
        decoder.check_valid(value)
    else:
        assert isinstance(error, str) and error.strip(), repr(error)
        assert "\n" not in error and len(error) <= 500, repr(error)
        decoder.check_invalid(value)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A valid sample with some bytes overwritten, a cut, or junk inserted."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            data = data[:pos]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,  # first calls import Pillow plugins; the machine is shared
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
    # Same examples on every run: CI stays reproducible; run with
    # HYPOTHESIS_RANDOM=1 to explore new inputs locally.
    derandomize=not os.environ.get("HYPOTHESIS_RANDOM"),
)


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.name)
def test_random_bytes(decoder: Decoder) -> None:
    @PROPERTY_SETTINGS
    @given(st.binary(max_size=2048))
    def prop(data: bytes) -> None:
        _check(decoder, data)

    prop()


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.name)
def test_mutated_valid_files(decoder: Decoder) -> None:
    seeds = decoder.seeds()
    for seed in seeds:  # the unmutated samples decode
        value, error = decoder.decode(seed)
        assert error is None, error
        decoder.check_valid(value)

    @PROPERTY_SETTINGS
    @given(mutated(seeds))
    def prop(data: bytes) -> None:
        _check(decoder, data)

    prop()

"""read_audio: real files written by soundfile, decoded by a real local Spark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deepspark
from deepspark.errors import InputNotFoundError, InvalidParameterError
from deepspark.io.audio import AudioDecodeError, decode_audio, from_array, to_array

sf = pytest.importorskip("soundfile")

RATE = 44100
SECONDS = 1.5


def stereo_tones() -> np.ndarray:
    """440 Hz on the left channel, 1000 Hz on the right, 1.5 s at 44.1 kHz."""
    t = np.arange(int(RATE * SECONDS)) / RATE
    return np.stack(
        [0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 1000 * t)], axis=1
    ).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[spectrum.argmax()])


def has_mp3() -> bool:
    return "MP3" in sf.available_formats()


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audio")
    tones = stereo_tones()
    sf.write(out / "tones.wav", tones, RATE, subtype="PCM_16")
    sf.write(out / "tones.flac", tones, RATE)
    sf.write(out / "tones.ogg", tones, RATE, format="OGG", subtype="VORBIS")
    if has_mp3():
        sf.write(out / "tones.mp3", tones, RATE, format="MP3")
    nested = out / "nested"
    nested.mkdir()
    sf.write(nested / "mono.wav", tones[:, 0], 8000)
    wav = (out / "tones.wav").read_bytes()
    (out / "truncated.wav").write_bytes(wav[: len(wav) // 2])
    flac = (out / "tones.flac").read_bytes()
    (out / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    (out / "empty.wav").write_bytes(b"")
    (out / "notes.wav").write_text("a text file, not audio\n")
    return out


def rows_by_name(df: Any) -> dict[str, Any]:
    return {Path(r["audio"]["origin"]).name: r for r in df.collect()}


def test_one_row_per_file_with_decoded_samples_and_errors(spark: Any, audio_dir: Path) -> None:
    df = deepspark.read_audio(spark, str(audio_dir))
    assert df.columns == ["audio", "error"]
    rows = rows_by_name(df)
    files = {p.name for p in audio_dir.rglob("*") if p.is_file()}
    assert len(df.collect()) == len(files) and set(rows) == files

    expected = stereo_tones().mean(axis=1)
    for name in ("tones.wav", "tones.flac"):
        row = rows[name]
        assert row["error"] is None
        audio = row["audio"]
        assert (audio["sampleRate"], audio["numChannels"]) == (RATE, 1)
        assert audio["numFrames"] == expected.size == len(audio["data"])
        # 16-bit quantisation is the only difference from what was written.
        np.testing.assert_allclose(np.asarray(audio["data"]), expected, atol=2e-4)
    for name in ("tones.ogg",) + (("tones.mp3",) if has_mp3() else ()):
        audio = rows[name]["audio"]
        assert rows[name]["error"] is None and audio["sampleRate"] == RATE
        data = np.asarray(audio["data"])
        assert abs(audio["numFrames"] - expected.size) < 0.05 * expected.size
        # Lossy codecs: the two tones are still the loudest frequencies.
        spectrum = np.abs(np.fft.rfft(data))
        freqs = np.fft.rfftfreq(data.size, 1 / RATE)
        loudest = sorted(freqs[np.argsort(spectrum)[-2:]].round())
        assert loudest == pytest.approx([440, 1000], abs=3)

    assert rows["mono.wav"]["audio"]["sampleRate"] == 8000  # found in a sub-folder
    assert "origin" in rows["truncated.wav"]["audio"].asDict()
    assert rows["truncated.wav"]["error"].startswith("audio file is truncated")
    assert "truncated or corrupt" in rows["truncated.flac"]["error"]
    assert rows["empty.wav"]["error"] == "empty file (0 bytes)"
    assert "not an audio file" in rows["notes.wav"]["error"]
    for name in ("truncated.wav", "truncated.flac", "empty.wav", "notes.wav"):
        audio = rows[name]["audio"]
        assert audio["origin"].startswith("file:///") and audio["origin"].endswith(name)
        assert (audio["sampleRate"], audio["numFrames"], list(audio["data"])) == (-1, -1, [])


def test_stereo_resampled_keeps_channels_apart(spark: Any, audio_dir: Path) -> None:
    df = deepspark.read_audio(spark, str(audio_dir / "tones.flac"), mono=False, sample_rate=16000)
    [row] = df.collect()
    audio = row["audio"]
    assert row["error"] is None
    assert (audio["sampleRate"], audio["numChannels"]) == (16000, 2)
    assert abs(audio["numFrames"] - round(RATE * SECONDS * 16000 / RATE)) <= 1
    samples, rate = to_array(audio)
    assert samples.shape == (audio["numFrames"], 2)
    # Frames interleave the channels: left is the 440 Hz tone, right the 1000 Hz one.
    assert peak_hz(samples[:, 0], rate) == pytest.approx(440, abs=2)
    assert peak_hz(samples[:, 1], rate) == pytest.approx(1000, abs=2)


def test_glob_max_duration_drop_invalid(spark: Any, audio_dir: Path) -> None:
    df = deepspark.read_audio(
        spark,
        str(audio_dir),
        glob="*.wav",
        recursive=False,
        max_duration=0.5,
        drop_invalid=True,
    )
    rows = rows_by_name(df)
    assert set(rows) == {"tones.wav"}
    assert rows["tones.wav"]["audio"]["numFrames"] == int(0.5 * RATE)


def test_driver_side_errors(spark: Any, tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError):
        deepspark.read_audio(spark, str(tmp_path / "missing"))
    with pytest.raises(InvalidParameterError):
        deepspark.read_audio(spark, str(tmp_path), sample_rate=0)
    with pytest.raises(InvalidParameterError):
        deepspark.read_audio(spark, str(tmp_path), max_duration=-1)


def test_decode_audio_without_spark(tmp_path: Path) -> None:
    tones = stereo_tones()
    sf.write(tmp_path / "t.wav", tones, RATE)
    data = (tmp_path / "t.wav").read_bytes()
    samples, rate = decode_audio(data, sample_rate=22050, mono=False)
    assert rate == 22050 and samples.shape[1] == 2
    assert abs(samples.shape[0] - tones.shape[0] // 2) <= 1
    # A WAV header with no frames is an error, not an empty clip.
    sf.write(tmp_path / "none.wav", np.zeros((0, 1), np.float32), RATE)
    with pytest.raises(AudioDecodeError, match="no samples"):
        decode_audio((tmp_path / "none.wav").read_bytes())
    if has_mp3():
        sf.write(tmp_path / "t.mp3", tones, RATE, format="MP3")
        mp3 = (tmp_path / "t.mp3").read_bytes()
        with pytest.raises(AudioDecodeError, match="truncated"):
            decode_audio(mp3[: len(mp3) // 2])


def test_struct_round_trip() -> None:
    samples = stereo_tones()[:100]
    struct = from_array(samples, RATE, origin="x.wav")
    back, rate = to_array(struct)
    assert rate == RATE and np.array_equal(back, samples)
    with pytest.raises(InvalidParameterError, match="invalid audio struct"):
        to_array({"sampleRate": -1, "numChannels": -1, "numFrames": -1, "data": []})


def test_too_long_for_a_row_is_an_error_row(tmp_path: Path) -> None:
    """Rows past the Arrow/Spark size limits become error rows (limits scaled down here)."""
    import pyarrow as pa

    from deepspark.io.audio import _decode_batch

    sf.write(tmp_path / "t.wav", stereo_tones(), RATE)
    wav = (tmp_path / "t.wav").read_bytes()
    frames = stereo_tones().shape[0]
    out = _decode_batch(
        ["a", "b", "c"],
        [(wav, None)] * 3,
        sample_rate=None,
        mono=True,
        max_duration=None,
        max_row_samples=frames,
        max_batch_samples=2 * frames,
    )
    assert isinstance(out, pa.StructArray)
    errors = out.field("error").to_pylist()
    assert errors[:2] == [None, None] and "audio too long" in errors[2]
    assert out.field("audio").field("numFrames").to_pylist() == [frames, frames, -1]
    one = _decode_batch(
        ["a"],
        [(wav, None)],
        sample_rate=None,
        mono=False,
        max_duration=None,
        max_row_samples=frames,
    )
    assert "audio too long" in one.field("error").to_pylist()[0]


def test_float_audio_with_nan_or_inf_is_a_corrupt_row() -> None:
    # Found by the property tests: a damaged float WAV decodes to NaN/inf samples.
    import io as _io

    import numpy as np
    import soundfile as sf

    from deepspark.io.audio import _decode_batch

    samples = np.zeros((100, 1), np.float32)
    samples[5], samples[7] = np.nan, np.inf
    buf = _io.BytesIO()
    sf.write(buf, samples, 8000, format="WAV", subtype="FLOAT")
    row = _decode_batch(
        ["file:///x.wav"], [(buf.getvalue(), None)], sample_rate=None, mono=False, max_duration=None
    ).to_pylist()[0]
    assert row["error"] == "audio file is corrupt (2 samples are NaN or infinite)"
    assert row["audio"]["numFrames"] == -1

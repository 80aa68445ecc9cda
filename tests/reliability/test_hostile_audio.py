"""Hostile audio files through ``deepspark.read_audio`` on real Spark: one row each,
a precise error for the bad ones, no Python worker crash (local mode: no task retry)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest


def _encode(subtype: str, frames: int = 800, channels: int = 1, fmt: str = "WAV") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    samples = np.full((frames, channels), 0.25, dtype=np.float32)
    sf.write(buf, samples, 16000, format=fmt, subtype=subtype)
    return buf.getvalue()


#: file name -> (content, expected error substring or None, expected (channels, frames))
def audio_cases() -> dict[str, tuple[bytes, str | None, tuple[int, int] | None]]:
    good = _encode("PCM_16")
    return {
        "pcm16.wav": (good, None, (1, 800)),
        "pcm24.wav": (_encode("PCM_24"), None, (1, 800)),
        "unsigned8.wav": (_encode("PCM_U8"), None, (1, 800)),
        "float32.wav": (_encode("FLOAT"), None, (1, 800)),
        "float64.wav": (_encode("DOUBLE"), None, (1, 800)),
        "pcm32 stereo.wav": (_encode("PCM_32", channels=2), None, (2, 800)),
        "flac_named.wav": (_encode("PCM_16", fmt="FLAC"), None, (1, 800)),
        "truncated.wav": (good[:900], "audio file is truncated", None),
        "header_only.wav": (good[:44], "audio file is truncated", None),
        "zero_frames.wav": (_encode("PCM_16", frames=0), "audio has no samples", None),
        "empty.wav": (b"", "empty file (0 bytes)", None),
        "text.wav": (b"not audio\n" * 20, "not an audio file", None),
    }


def test_read_audio_one_row_per_hostile_input(spark: Any, tmp_path: Path) -> None:
    import deepspark

    cases = audio_cases()
    for name, (content, _, _) in cases.items():
        (tmp_path / name).write_bytes(content)
    rows = deepspark.read_audio(spark, str(tmp_path), mono=False).collect()
    names = [Path(unquote(urlsplit(r["audio"]["origin"]).path)).name for r in rows]
    assert sorted(names) == sorted(cases)
    for name, row in zip(names, rows):
        _, error, shape = cases[name]
        audio = row["audio"]
        if error is None:
            assert row["error"] is None, (name, row["error"])
            assert (audio["numChannels"], audio["numFrames"]) == shape, name
            assert np.allclose(audio["data"], 0.25, atol=0.01), name
        else:
            assert row["error"] is not None and error in row["error"], (name, row["error"])
            assert "\n" not in row["error"]
            assert (audio["sampleRate"], audio["numChannels"], audio["numFrames"]) == (-1,) * 3


@pytest.mark.timeout(600)  # a named pipe read as a file blocks: fail, do not hang
def test_speech_detector_over_paths_one_row_per_hostile_input(spark: Any, tmp_path: Path) -> None:
    """``SpeechDetector(inputCol="path")`` reads each file itself: the same one-line
    reasons as read_audio for a named pipe, a broken link and a folder named like audio."""
    import os

    import deepspark

    cases = {n: c for n, c in audio_cases().items() if n in ("pcm16.wav", "text.wav", "empty.wav")}
    for name, (content, _, _) in cases.items():
        (tmp_path / name).write_bytes(content)
    os.mkfifo(tmp_path / "pipe.wav")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "missing.wav")
    paths = [str(tmp_path / n) for n in [*cases, "pipe.wav", "gone.wav"]] + [str(tmp_path)]
    df = spark.createDataFrame([(p,) for p in paths], "path string")
    rows = deepspark.SpeechDetector(inputCol="path").transform(df).collect()
    errors = {Path(r["path"]).name: r["error"] for r in rows}
    assert len(rows) == len(paths)
    assert errors["pcm16.wav"] is None
    for name in ("text.wav", "empty.wav"):
        assert cases[name][1] in errors[name], errors[name]
    assert "not a regular file" in errors["pipe.wav"]
    assert "broken symbolic link" in errors["gone.wav"]
    assert "not a regular file" in errors[tmp_path.name]

"""Audio for the tests: speech synthesised with espeak-ng, silence and white noise.

Everything is generated when a test needs it: nothing is committed and nothing is
downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

RATE = 16000


def require_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (scripts/install.sh installs it)")
    return exe


@lru_cache(maxsize=8)
def espeak(text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng, mono float32 at 16 kHz."""
    import soundfile as sf
    import soxr

    exe = require_espeak()
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-w", str(wav), text], check=True, capture_output=True)
        samples, rate = sf.read(wav, dtype="float32")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return soxr.resample(samples, rate, RATE).astype(np.float32)


def voiced_span(samples: np.ndarray, offset: int = 0) -> tuple[float, float]:
    """(first, last) time in seconds where the signal is not silent (1% of its peak)."""
    loud = np.flatnonzero(np.abs(samples) > 0.01 * np.abs(samples).max())
    return (offset + loud[0]) / RATE, (offset + loud[-1] + 1) / RATE


@dataclass(frozen=True)
class SpeechClip:
    samples: np.ndarray  # 16 kHz mono
    spans: tuple[tuple[float, float], ...]  # true speech spans, seconds


@lru_cache(maxsize=1)
def speech_between_silence() -> SpeechClip:
    """2 s of silence, a spoken sentence, 2 s of silence."""
    speech = espeak("The quick brown fox jumps over the lazy dog near the river bank.")
    silence = np.zeros(2 * RATE, np.float32)
    return SpeechClip(
        np.concatenate([silence, speech, silence]), (voiced_span(speech, silence.size),)
    )


@lru_cache(maxsize=1)
def two_utterances() -> SpeechClip:
    """1 s silence, a sentence, 1.5 s silence, another sentence, 1 s silence."""
    first = espeak("Good morning, everybody.")
    second = espeak("Spark runs the models on every executor.")
    gap, pause = np.zeros(RATE, np.float32), np.zeros(int(1.5 * RATE), np.float32)
    samples = np.concatenate([gap, first, pause, second, gap])
    spans = (
        voiced_span(first, gap.size),
        voiced_span(second, gap.size + first.size + pause.size),
    )
    return SpeechClip(samples, spans)


def white_noise(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 0.1).astype(np.float32)


def silence(seconds: float = 3.0) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0

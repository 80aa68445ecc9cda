"""Data sets of the text and audio benchmarks: sentences in text files, speech in WAV files.

Both are deterministic for a seed, made offline (templates; espeak-ng) and cached under
``bench-data/``: a second run with the same size reuses them.

* Text: ``n`` distinct English sentences (questions, reviews, news-like statements,
  instructions, with subordinate clauses), 4 to ~60 words, mean ~16, written one per
  line into 40 files, as a corpus of documents would be. Made from templates and word
  lists so that any ``n`` gives distinct sentences with a realistic length spread.
* Audio: ``minutes`` WAV files of exactly 60 s, 16 kHz mono 16-bit: utterances spoken by
  espeak-ng (several voices, speeds and pitches) separated by pauses of 0.3-6 s, over a
  quiet noise floor, with occasional louder noise bursts (no speech in them). About
  half of each file is speech.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

RATE = 16000
FILE_SECONDS = 60
TEXT_FILES = 40

# Word lists, kept compact: they are data, not code.
# fmt: off
_SUBJECTS = (
    "the new manager", "my neighbour", "a small company in Leeds", "the city council",
    "our team", "the delivery driver", "an old friend of mine", "the customer", "the research group",
    "the teacher", "my sister", "the hotel staff", "a local farmer", "the software update",
    "the train to Bristol", "the committee", "this laptop", "the museum", "the airline",
    "the hospital", "a journalist", "the bakery on the corner", "the police", "the orchestra",
)
_VERBS = (
    "announced", "cancelled", "delayed", "finished", "improved", "ignored", "opened",
    "questioned", "recommended", "reviewed", "changed", "approved", "rejected", "repaired",
    "described", "organised", "moved", "replaced", "explained", "sold",
)
_OBJECTS = (
    "the budget for next year", "a plan to reduce traffic", "the weekend schedule",
    "the final report", "its opening hours", "a new recipe for bread", "the contract",
    "the garden behind the house", "the price of tickets", "an exhibition of old maps",
    "the heating system", "the results of the survey", "a proposal for a new park",
    "the broken window", "the menu", "several job offers", "the safety rules",
    "a list of complaints", "the route along the coast", "the password policy",
)
_WHEN = (
    "yesterday", "last week", "on Monday morning", "after a long meeting", "this afternoon",
    "earlier than expected", "without any warning", "during the summer holidays",
    "at the end of the month", "for the second time this year", "late at night",
)
_CLAUSES = (
    "because the weather was terrible",
    "although nobody had asked for it",
    "while most people were still on holiday",
    "so that the children could play outside",
    "even though the costs had doubled",
    "after several customers complained about the noise",
    "since the old system kept crashing every few hours",
    "before the inspectors arrived",
    "which surprised almost everyone in the room",
    "as the local newspaper reported on Friday",
)
_PRODUCTS = (
    "kettle", "pair of running shoes", "phone case", "vacuum cleaner", "desk lamp",
    "backpack", "coffee grinder", "winter jacket", "keyboard", "blender", "tent", "novel",
)
_OPINIONS = (
    "it works exactly as described", "the battery lasts much longer than I expected",
    "it stopped working after two weeks", "the quality is fine for the price",
    "I would not buy it again", "the instructions were confusing", "it is lighter than it looks",
    "delivery was quick and the packaging was good", "it makes a strange noise when it starts",
    "my whole family uses it every day",
)
_QUESTIONS = (
    "How do I {v} {o} {w}?", "Why did {s} {vb} {o}?", "Where can I find {o}?",
    "Is it possible to {v} {o} without {g}?", "What happens if {s} {vs} {o}?",
    "Can someone explain why {s} {vb} {o} {w}?", "When will {s} {vb} {o}?",
)
_VERB_BASE = (
    "change", "reset", "cancel", "update", "find", "repair", "check", "book", "move",
    "share", "export", "compare",
)
_GERUNDS = (
    "calling the office", "paying extra", "losing my data", "an account", "asking the manager",
    "waiting a week", "a printer",
)
_INSTRUCTIONS = (
    "Please {v} {o} before you leave the building.",
    "Remember to {v} {o} at least once a month.",
    "Do not {v} {o} unless {s} tells you to.",
    "First {v} {o}, then {v2} the rest of the list and send it to {s}.",
)
# fmt: on


def _sentence(rng: random.Random) -> str:
    s, v, o, w = rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_WHEN)
    kind = rng.random()
    if kind < 0.35:  # statement, sometimes with one or two clauses
        text = f"{s} {v} {o} {w}"
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            text += f", {rng.choice(_CLAUSES)}"
        text = text[0].upper() + text[1:] + "."
    elif kind < 0.55:  # question
        text = rng.choice(_QUESTIONS).format(
            v=rng.choice(_VERB_BASE),
            o=o,
            w=w,
            s=s,
            vb=rng.choice(_VERB_BASE),
            vs=rng.choice(_VERB_BASE) + "s",
            g=rng.choice(_GERUNDS),
        )
        text = text[0].upper() + text[1:]
    elif kind < 0.8:  # product review, one to three parts
        parts = [f"I bought this {rng.choice(_PRODUCTS)} {w}"]
        parts += rng.sample(_OPINIONS, rng.choice((1, 1, 2, 3)))
        text = parts[0] + " and " + "; ".join(parts[1:]) + "."
    elif kind < 0.9:  # instruction
        text = rng.choice(_INSTRUCTIONS).format(
            v=rng.choice(_VERB_BASE), v2=rng.choice(_VERB_BASE), o=o, s=s
        )
    else:  # a long, report-like sentence
        clauses = ", ".join(rng.sample(_CLAUSES, 3))
        text = f"According to {s}, {rng.choice(_SUBJECTS)} {v} {o} {w}, {clauses}, and {rng.choice(_OPINIONS)}."
        text = text[0].upper() + text[1:]
    return text


def sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences, deterministic for ``seed``.

    Examples
    --------
    >>> len(set(sentences(500)))
    500
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        text = _sentence(rng)
        if text in seen:
            # The templates give a finite (large) set; a number keeps every line distinct.
            text = f"{text[:-1]} ({len(out)}){text[-1]}"
        seen.add(text)
        out.append(text)
    return out


def text_files(out: Path, n: int, seed: int = 0) -> Path:
    """``n`` sentences, one per line, in :data:`TEXT_FILES` files under ``out/text-n{n}-s{seed}``."""
    target = out / f"text-n{n}-s{seed}"
    if (target / ".complete").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    lines = sentences(n, seed)
    files = min(TEXT_FILES, n)
    for f in range(files):
        chunk = lines[f * n // files : (f + 1) * n // files]
        (target / f"doc{f:03d}.txt").write_text("\n".join(chunk) + "\n", encoding="utf-8")
    (target / ".complete").write_text(str(n))
    return target


def read_sentences(folder: Path) -> list[str]:
    """The sentences of a :func:`text_files` folder, in file then line order."""
    out: list[str] = []
    for path in sorted(folder.glob("*.txt")):
        out += path.read_text(encoding="utf-8").splitlines()
    return out


# ---------------------------------------------------------------------------- audio
_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f3", "en-gb+f2", "en-us+m3")


def _espeak(exe: str, text: str, voice: str, speed: int, pitch: int, tmp: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng, float32 at 16 kHz."""
    import soundfile as sf
    import soxr

    wav = tmp / "u.wav"
    cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text]
    subprocess.run(cmd, check=True, capture_output=True)
    samples, rate = sf.read(wav, dtype="float32")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return soxr.resample(samples, rate, RATE).astype(np.float32)


def speech_file(rng: random.Random, exe: str, tmp: Path) -> np.ndarray:
    """60 s of utterances and pauses over a noise floor, float32 at 16 kHz."""
    total = FILE_SECONDS * RATE
    nprng = np.random.default_rng(rng.getrandbits(32))
    # A quiet noise floor (about -55 dBFS), as a real recording has.
    out = (nprng.standard_normal(total) * 0.0018).astype(np.float32)
    pos = int(rng.uniform(0.2, 2.0) * RATE)
    while pos < total:
        if rng.random() < 0.12:  # a noise burst (door, traffic): loud, but not speech
            length = int(rng.uniform(0.3, 1.5) * RATE)
            burst = nprng.standard_normal(length).astype(np.float32) * rng.uniform(0.02, 0.08)
            piece = burst * np.hanning(length).astype(np.float32)
        else:
            text = " ".join(_sentence(rng) for _ in range(rng.choice((1, 1, 2))))
            piece = _espeak(
                exe, text, rng.choice(_VOICES), rng.randint(140, 200), rng.randint(30, 70), tmp
            )
            piece *= rng.uniform(0.3, 0.9) / max(float(np.abs(piece).max()), 1e-6)
        end = min(total, pos + piece.size)
        out[pos:end] += piece[: end - pos]
        pos = end + int(rng.uniform(0.3, 6.0) * RATE)
    return np.clip(out, -1.0, 1.0)


def audio_files(out: Path, minutes: int, seed: int = 0) -> Path:
    """``minutes`` 60-second WAV files under ``out/audio-m{minutes}-s{seed}``."""
    import soundfile as sf

    target = out / f"audio-m{minutes}-s{seed}"
    if (target / ".complete").is_file():
        return target
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit(
            "espeak-ng is needed to make the audio data set (apt-get install espeak-ng)"
        )
    target.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(minutes):
            wave = speech_file(rng, exe, Path(tmp))
            sf.write(target / f"rec{i:04d}.wav", wave, RATE, subtype="PCM_16")
    (target / ".complete").write_text(str(minutes))
    return target

"""SpeechDetector, AudioModelTransformer and ``deepspark detect-speech`` on real audio.

Speech is synthesised with espeak-ng and placed between seconds of silence; the
segments are checked against the true speech span and against silero-vad's own
reference code (``load_silero_vad(onnx=True)`` + ``get_speech_timestamps``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deepspark
from deepspark.errors import InvalidParameterError, SignatureError
from deepspark.io.audio import audio_schema, from_array
from deepspark.runtime.audio import speech_timestamps
from tests.audio_data import (
    RATE,
    iou,
    require_espeak,
    silence,
    speech_between_silence,
    two_utterances,
    white_noise,
)

sf = pytest.importorskip("soundfile")
pytest.importorskip("silero_vad")

#: one Silero window (512 samples at 16 kHz): the tolerance against the reference
WINDOW_S = 512 / RATE


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_espeak()
    out = tmp_path_factory.mktemp("speech")
    sf.write(out / "speech.wav", speech_between_silence().samples, RATE)
    sf.write(out / "two.flac", two_utterances().samples, RATE)
    sf.write(out / "noise.wav", white_noise(), RATE)
    sf.write(out / "silence.wav", silence(), RATE)
    (out / "notes.wav").write_text("not audio\n")
    return out


@pytest.fixture(scope="module")
def detected(spark: Any, clips_dir: Path) -> dict[str, Any]:
    """SpeechDetector over read_audio of every clip, by file name (one Spark job)."""
    audio = deepspark.read_audio(spark, str(clips_dir))
    rows = deepspark.SpeechDetector().transform(audio).collect()
    return {Path(r["audio"]["origin"]).name: r for r in rows}


def reference_segments(samples: np.ndarray, **kwargs: object) -> list[tuple[float, float]]:
    """silero-vad's own get_speech_timestamps on its packaged ONNX model, in seconds."""
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    model = load_silero_vad(onnx=True)
    stamps = get_speech_timestamps(torch.from_numpy(samples), model, **kwargs)
    return [(s["start"] / RATE, s["end"] / RATE) for s in stamps]


def segments_of(row: Any) -> list[tuple[float, float]]:
    return [(s["start"], s["end"]) for s in row["speech"]]


def assert_same_segments(got: list[tuple[float, float]], want: list[tuple[float, float]]) -> None:
    assert len(got) == len(want), (got, want)
    np.testing.assert_allclose(np.array(got), np.array(want), atol=WINDOW_S)


# ------------------------------------------------------------------ speech detection


def test_speech_span_found_between_silences(detected: dict[str, Any]) -> None:
    row = detected["speech.wav"]
    assert row["error"] is None
    segments = segments_of(row)
    assert segments, "no speech found in espeak's sentence"
    found = (segments[0][0], segments[-1][1])
    [truth] = speech_between_silence().spans
    assert iou(found, truth) >= 0.8, (found, truth)
    duration = speech_between_silence().samples.size / RATE
    assert row["speechRatio"] == pytest.approx(sum(e - s for s, e in segments) / duration)
    assert 0.2 < row["speechRatio"] < 0.9


def test_two_utterances_give_two_segments(detected: dict[str, Any]) -> None:
    segments = segments_of(detected["two.flac"])
    truths = two_utterances().spans
    # Words inside an utterance may split it; group segments by the utterance they hit.
    for truth in truths:
        inside = [s for s in segments if iou(s, truth) > 0]
        assert inside and iou((inside[0][0], inside[-1][1]), truth) >= 0.8
    assert all(iou(s, truths[0]) > 0 or iou(s, truths[1]) > 0 for s in segments)


def test_silence_and_noise_have_no_speech(detected: dict[str, Any]) -> None:
    for name in ("silence.wav", "noise.wav"):
        row = detected[name]
        assert row["error"] is None and row["speech"] == [] and row["speechRatio"] == 0.0


def test_equals_silero_reference(detected: dict[str, Any]) -> None:
    for name, samples in (
        ("speech.wav", speech_between_silence().samples),
        ("two.flac", two_utterances().samples),
        ("noise.wav", white_noise()),
    ):
        # The reference runs on the samples as decoded from the file (16-bit WAV/FLAC).
        decoded = np.asarray(detected[name]["audio"]["data"], dtype=np.float32)
        assert decoded.size == samples.size
        assert_same_segments(segments_of(detected[name]), reference_segments(decoded))


def test_bad_file_is_an_error_row(detected: dict[str, Any]) -> None:
    row = detected["notes.wav"]
    assert row["speech"] is None and row["speechRatio"] is None
    assert "not an audio file" in row["error"]
    assert len(detected) == 5


def test_bytes_paths_and_other_rates_agree(spark: Any, clips_dir: Path, tmp_path: Path) -> None:
    samples = speech_between_silence().samples
    # The same speech at 44.1 kHz stereo: downmixed and resampled on the executor.
    import soxr

    hi = soxr.resample(samples, RATE, 44100).astype(np.float32)
    sf.write(tmp_path / "speech44k.wav", np.stack([hi, hi], axis=1), 44100, subtype="FLOAT")
    files = spark.read.format("binaryFile").load(
        [str(clips_dir / "speech.wav"), str(tmp_path / "speech44k.wav")]
    )
    detector = deepspark.SpeechDetector(inputCol="content", minSilenceMs=300)
    by_bytes = {Path(r["path"]).name: r for r in detector.transform(files).collect()}
    detector.setInputCol("path")
    by_path = {Path(r["path"]).name: r for r in detector.transform(files).collect()}

    want = reference_segments(samples, min_silence_duration_ms=300)
    assert_same_segments(segments_of(by_bytes["speech.wav"]), want)
    assert_same_segments(segments_of(by_path["speech.wav"]), want)
    [truth] = speech_between_silence().spans
    for rows in (by_bytes, by_path):
        got = segments_of(rows["speech44k.wav"])
        assert got and iou((got[0][0], got[-1][1]), truth) >= 0.8


def test_struct_input_batched_and_existing_errors_kept(spark: Any) -> None:
    clips = [speech_between_silence().samples, white_noise(1.0), silence(0.5)]
    rows = [(from_array(c, RATE, origin=f"clip{i}"), None) for i, c in enumerate(clips)]
    rows.append((from_array(np.zeros(10, np.float32), RATE, origin="x"), "earlier problem"))
    schema = f"audio {audio_schema().simpleString()}, error string"
    # verifySchema=False: checking 100k floats one by one in Python takes seconds.
    df = spark.createDataFrame(rows, schema, verifySchema=False)
    out = deepspark.SpeechDetector(batchSize=8, threshold=0.6).transform(df)
    assert out.columns == ["audio", "speech", "speechRatio", "error"]
    got = out.orderBy("audio.origin").collect()
    assert_same_segments(segments_of(got[0]), reference_segments(clips[0], threshold=0.6))
    assert got[1]["speech"] == [] and got[2]["speech"] == []
    assert got[3]["error"] == "earlier problem"


def test_parameters_checked_on_the_driver(spark: Any) -> None:
    df = spark.createDataFrame([(1,)], "audio int")
    with pytest.raises(InvalidParameterError, match="input column 'audio' has type int"):
        deepspark.SpeechDetector().transform(df)
    with pytest.raises(InvalidParameterError, match="threshold"):
        deepspark.SpeechDetector(inputCol="x", threshold=1.5)._settings()
    with pytest.raises(InvalidParameterError, match="minSilenceMs"):
        deepspark.SpeechDetector(minSilenceMs=-1)._settings()


def test_saved_and_loaded(tmp_path: Path) -> None:
    detector = deepspark.SpeechDetector(threshold=0.4, minSpeechMs=100, outputCol="vad")
    detector.save(str(tmp_path / "vad"))
    loaded = deepspark.SpeechDetector.load(str(tmp_path / "vad"))
    assert loaded.getOrDefault("threshold") == 0.4 and loaded.getOutputCol() == "vad"
    assert loaded.getOrDefault("minSpeechMs") == 100


def test_segmentation_port_matches_silero_on_random_probabilities() -> None:
    """The state machine alone, against silero-vad's on many probability sequences."""
    from silero_vad.utils_vad import get_speech_timestamps_from_probs

    rng = np.random.default_rng(7)
    for trial in range(300):
        n = int(rng.integers(0, 400))
        # Runs of speech-like and silence-like windows, with noise, to hit every branch.
        levels = np.repeat(rng.random(n // 8 + 1), 8)[:n]
        probs = np.clip(levels + rng.normal(0, 0.15, n), 0, 1).tolist()
        length = n * 512 - int(rng.integers(0, 512)) if n else 0
        kwargs = {
            "threshold": float(rng.choice([0.3, 0.5, 0.7])),
            "min_speech_duration_ms": int(rng.choice([0, 100, 250])),
            "min_silence_duration_ms": int(rng.choice([0, 100, 400])),
            "speech_pad_ms": int(rng.choice([0, 30, 200])),
            "max_speech_duration_s": float(rng.choice([np.inf, 1.0, 2.5])),
            "use_max_poss_sil_at_max_speech": bool(trial % 2),
        }
        want = get_speech_timestamps_from_probs(
            probs, sampling_rate=RATE, audio_length_samples=length, **kwargs
        )
        got = speech_timestamps(probs, length, **kwargs)
        assert got == [(s["start"], s["end"]) for s in want], (trial, kwargs)


def test_named_model_listed(capsys: Any) -> None:
    from deepspark.cli.main import main

    named = {m.name: m for m in deepspark.list_models()}
    assert named["silero_vad"].task == "speech-detection"
    assert named["silero_vad"].export().name == "silero_vad.onnx"
    assert main(["models"]) == 0
    assert "silero_vad" in capsys.readouterr().out


# ------------------------------------------------------------------ users' models


def stats_model(path: Path, shape: list[object]) -> Path:
    """An ONNX model: per example [mean, max, first sample] of a waveform batch."""
    import onnx
    from onnx import TensorProto, helper

    rank = len(shape)
    axes = list(range(1, rank))
    first = helper.make_node("Slice", ["flat", "zero", "one", "one"], ["first"])
    nodes = [
        helper.make_node("Flatten", ["wave"], ["flat"], axis=1),
        helper.make_node("ReduceMean", ["wave"], ["mean"], axes=axes, keepdims=0),
        helper.make_node("ReduceMax", ["wave"], ["max"], axes=axes, keepdims=0),
        helper.make_node("Unsqueeze", ["mean", "one"], ["mean2"]),
        helper.make_node("Unsqueeze", ["max", "one"], ["max2"]),
        first,
        helper.make_node("Concat", ["mean2", "max2", "first"], ["stats"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "stats",
        [helper.make_tensor_value_info("wave", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("stats", TensorProto.FLOAT, ["batch", 3])],
        initializer=[
            helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
            helper.make_tensor("one", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def expected_stats(wave: np.ndarray) -> list[float]:
    return [float(wave.mean()), float(wave.max()), float(wave[0])]


@pytest.fixture(scope="module")
def ramp_df(spark: Any) -> tuple[Any, np.ndarray, np.ndarray]:
    """Two clips: a 16 kHz ramp (1.3 s) and an 8 kHz tone (0.4 s), as audio structs."""
    ramp = np.linspace(-1, 1, int(1.3 * RATE), dtype=np.float32)
    t = np.arange(int(0.4 * 8000)) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 300 * t) + 0.1).astype(np.float32)
    rows = [(from_array(ramp, RATE, "a-ramp"),), (from_array(tone, 8000, "b-tone"),)]
    schema = f"audio {audio_schema().simpleString()}"
    return spark.createDataFrame(rows, schema, verifySchema=False), ramp, tone


def test_whole_clips(ramp_df: Any, tmp_path: Path) -> None:
    import soxr

    df, ramp, tone = ramp_df
    model = stats_model(tmp_path / "stats.onnx", ["batch", "samples"])
    out = deepspark.AudioModelTransformer(model=str(model)).transform(df)
    got = [r["prediction"] for r in out.orderBy("audio.origin").collect()]
    tone16 = soxr.resample(tone, 8000, RATE, quality="HQ")
    for row, wave in zip(got, (ramp, tone16)):
        np.testing.assert_allclose(row, expected_stats(wave), rtol=1e-4, atol=1e-5)


def test_windows_per_window_and_per_clip(ramp_df: Any, tmp_path: Path) -> None:
    df, ramp, _ = ramp_df
    # A fixed-length, channels-first model: (batch, 1, 8000) = 0.5 s at 16 kHz.
    model = stats_model(tmp_path / "win.onnx", ["batch", 1, 8000])
    common = {"model": str(model), "windowSeconds": 0.5, "hopSeconds": 0.25, "batchSize": 3}
    per_window = deepspark.AudioModelTransformer(outputMode="window", **common)
    [row] = per_window.transform(df.where("audio.origin = 'a-ramp'")).collect()
    hop, win = 4000, 8000
    starts = list(range(0, ramp.size - win + hop, hop))
    assert len(row["prediction"]) == len(starts)
    for got, start in zip(row["prediction"], starts):
        window = np.zeros(win, np.float32)
        part = ramp[start : start + win]
        window[: part.size] = part  # the last window is zero-padded
        np.testing.assert_allclose(got, expected_stats(window), rtol=1e-4, atol=1e-5)
    per_clip = deepspark.AudioModelTransformer(**common)
    [clip] = per_clip.transform(df.where("audio.origin = 'a-ramp'")).collect()
    np.testing.assert_allclose(
        clip["prediction"], np.mean(np.array(row["prediction"]), axis=0), rtol=1e-5
    )


def test_model_checked_on_the_driver(ramp_df: Any, tmp_path: Path) -> None:
    df, _, _ = ramp_df
    model = stats_model(tmp_path / "fixed.onnx", ["batch", 8000])
    with pytest.raises(SignatureError, match="windowSeconds=0.5"):
        deepspark.AudioModelTransformer(model=str(model)).transform(df)
    with pytest.raises(SignatureError, match="windows of 8000 samples"):
        deepspark.AudioModelTransformer(model=str(model), windowSeconds=1.0).transform(df)
    with pytest.raises(InvalidParameterError, match="needs windowSeconds"):
        deepspark.AudioModelTransformer(model=str(model), outputMode="window").transform(df)
    with pytest.raises(InvalidParameterError, match="needs model="):
        deepspark.AudioModelTransformer().transform(df)


# ------------------------------------------------------------------ CLI


def test_cli_detect_speech(spark: Any, clips_dir: Path, tmp_path: Path, capsys: Any) -> None:
    from deepspark.cli.main import main

    output = tmp_path / "speech.json"
    code = main(["detect-speech", str(clips_dir), "--output", str(output), "--show", "5"])
    assert code == 0
    printed = capsys.readouterr().out
    # Progress, the shared summary (errors by reason) and the command's own line.
    assert "progress: 5/5 files (100%)" in printed
    assert "5 files: 4 ok, 1 errors" in printed and "2 with speech, 2 without" in printed
    assert "not an audio file" in printed
    rows = [
        json.loads(line)
        for part in output.glob("part-*.json")
        for line in part.read_text().splitlines()
    ]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == 5 and set(by_name) == {p.name for p in clips_dir.iterdir()}
    speech = by_name["speech.wav"]["speech"]
    [truth] = speech_between_silence().spans
    assert iou((speech[0]["start"], speech[-1]["end"]), truth) >= 0.8
    assert by_name["silence.wav"]["speech"] == []
    assert "not an audio file" in by_name["notes.wav"]["error"]

    # The report shows the speech: counts, each file's share and its segments.
    from deepspark.cli.report import analyse, load_rows

    page = tmp_path / "speech.html"
    assert main(["report", str(output), "-o", str(page), "-q"]) == 0
    html_text = page.read_text()
    data = analyse(load_rows(str(output)), "t")
    assert data.speech_counts == {"with speech": 2, "without speech": 2}
    assert "<h2>Speech</h2>" in html_text and "with speech" in html_text
    first = speech[0]
    assert f"{first['start']:.2f}-{first['end']:.2f} s" in html_text
    assert f"{by_name['speech.wav']['speechRatio']:.0%}" in html_text

    # --limit keeps 2 files, and they are still spread over the cores: Spark runs what
    # follows a LIMIT in one task unless the rows are dealt out again (one part file
    # per task that wrote rows).
    limited = tmp_path / "limited.json"
    assert main(["detect-speech", str(clips_dir), "-o", str(limited), "-q", "--limit", "2"]) == 0
    parts = [p for p in limited.glob("part-*.json") if p.read_text().strip()]
    assert sum(len(p.read_text().splitlines()) for p in parts) == 2 and len(parts) == 2

    # Usage errors exit 2, whether caught while parsing (SystemExit) or while running.
    for argv in (
        [str(tmp_path / "missing"), "-q"],
        [str(clips_dir), "--output", "x.txt", "-q"],
        [str(clips_dir), "--threshold", "2"],
    ):
        try:
            code = main(["detect-speech", *argv])
        except SystemExit as exc:
            code = exc.code
        assert code == 2, argv

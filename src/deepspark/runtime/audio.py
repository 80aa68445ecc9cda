"""Executor-side audio inference: Silero VAD speech detection and users' waveform models.

Both tasks follow the image engine's shape: one pass per Arrow batch, decoding one
chunk ahead in a background thread (libsndfile, soxr and ONNX Runtime release the
GIL), one output row per input row, per-row errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepspark.models.loader import ModelRef
from deepspark.runtime import _arrow as arrow
from deepspark.runtime._pipeline import model_failure, prefetch
from deepspark.runtime.threads import task_gpu, task_threads

__all__ = [
    "VAD_SAMPLE_RATE",
    "AudioModelTask",
    "SpeechTask",
    "frame_windows",
    "speech_timestamps",
    "vad_probabilities",
]

#: Silero VAD runs at 16 kHz on windows of 512 samples (32 ms) with 64 samples of context.
VAD_SAMPLE_RATE = 16000
VAD_WINDOW = 512
VAD_CONTEXT = 64
VAD_STATE = (2, 128)


# --------------------------------------------------------------------------------------
# Input values: Arrow -> Python, with audio samples kept in numpy
# --------------------------------------------------------------------------------------


def arrow_values(arr: Any, kind: str) -> list[Any]:
    """Values of an input Arrow array; audio structs become dicts with numpy ``data``.

    ``to_pylist`` would turn every sample into a Python float; slicing the flat value
    buffer by the list offsets keeps them in one numpy array.
    """
    if kind != "struct":
        return arr.to_pylist()
    data = arr.field("data")
    offsets = arrow.to_numpy(data.offsets)
    values = arrow.to_numpy(data.values)
    rates = arr.field("sampleRate").to_pylist()
    channels = arr.field("numChannels").to_pylist()
    frames = arr.field("numFrames").to_pylist()
    valid = arr.is_valid().to_pylist()
    return [
        {
            "sampleRate": rates[i],
            "numChannels": channels[i],
            "numFrames": frames[i],
            "data": values[offsets[i] : offsets[i + 1]],
        }
        if valid[i]
        else None
        for i in range(len(arr))
    ]


def _error_text(exc: BaseException) -> str:
    from deepspark.io.audio import decode_error_reason

    return decode_error_reason(exc)


def _load_all(
    values: list[Any], kind: str, sample_rate: int
) -> tuple[list[int], list[np.ndarray], list[str | None]]:
    """Decode one chunk to mono waveforms; returns (ok row indices, waveforms, errors)."""
    from deepspark.io.audio import load_waveform

    ok: list[int] = []
    waves: list[np.ndarray] = []
    errors: list[str | None] = [None] * len(values)
    for i, value in enumerate(values):
        if value is None:
            errors[i] = "input is null"
            continue
        try:
            waves.append(load_waveform(value, kind, sample_rate))
            ok.append(i)
        except Exception as exc:  # noqa: BLE001 - becomes this row's error
            errors[i] = _error_text(exc)
    return ok, waves, errors


def run_pipelined(
    arrays: Iterator[Any],
    kind: str,
    batch_size: int,
    prepare: Callable[[list[Any]], tuple[list[int], Any, list[str | None]]],
    infer: Callable[[Any], list[Any]],
    result_type: Any,
) -> Iterator[Any]:
    """Input Arrow arrays -> struct<result, error> arrays, preparing one chunk ahead.

    ``prepare(values)`` gives (indices of usable rows, prepared data, errors) and runs
    in a background thread; ``infer(prepared)`` gives one result per usable row.
    """
    import pyarrow as pa

    def chunks() -> Iterator[tuple[tuple[int, int, bool], list[Any]]]:
        """((rows in the array, chunk start, last chunk of the array), chunk values)."""
        for arr in arrays:
            values = arrow_values(arr, kind)
            if not values:
                yield (0, 0, True), []
                continue
            for start in range(0, len(values), batch_size):
                chunk = values[start : start + batch_size]
                yield (len(values), start, start + batch_size >= len(values)), chunk

    with prefetch(chunks(), prepare, workers=1, ahead=2, name="deepspark-audio") as prepared_chunks:
        results: list[Any] = []
        errors: list[str | None] = []
        for (n, start, last), (ok, prepared, errs) in prepared_chunks:
            if start == 0:
                results, errors = [None] * n, [None] * n
            errors[start : start + len(errs)] = errs
            if ok:
                try:
                    for j, row in zip(ok, infer(prepared)):
                        results[start + j] = row
                except Exception as exc:  # noqa: BLE001 - a model failure fails these rows
                    msg = model_failure(exc)
                    for j in ok:
                        errors[start + j] = msg
            if last:
                yield pa.StructArray.from_arrays(
                    [arrow.from_python(results, result_type), arrow.strings(errors)],
                    names=["result", "error"],
                )


class _AudioTask:
    """The executor entry point shared by the audio tasks (frozen dataclasses)."""

    model: ModelRef
    input_kind: str
    batch_size: int
    threads: int

    def result_arrow_type(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _prepare(self, values: list[Any]) -> tuple[list[int], Any, list[str | None]]:
        raise NotImplementedError  # pragma: no cover - overridden

    def _infer(self, model: Any, prepared: Any) -> list[Any]:
        raise NotImplementedError  # pragma: no cover - overridden

    def run(self, arrays: Iterator[Any]) -> Iterator[Any]:
        """Iterator of input Arrow arrays -> iterator of struct<result, error> arrays."""
        model = self.model.load(threads=task_threads(self.threads), gpu=task_gpu())
        return run_pipelined(
            arrays,
            self.input_kind,
            self.batch_size,
            self._prepare,
            lambda prepared: self._infer(model, prepared),
            self.result_arrow_type(),
        )


# --------------------------------------------------------------------------------------
# Silero VAD
# --------------------------------------------------------------------------------------


def vad_probabilities(model: Any, waves: list[np.ndarray]) -> list[np.ndarray]:
    """Speech probability of every 512-sample window of each 16 kHz waveform.

    The same computation as silero-vad's ``get_speech_timestamps`` (fresh state per
    clip, the last 64 samples of the previous window as context, the last window
    zero-padded), but the clips of a chunk run together as one batch: the model's
    state is per batch row, and a clip drops out of the batch when its windows end.
    """
    counts = [math.ceil(w.size / VAD_WINDOW) for w in waves]
    order = sorted(range(len(waves)), key=lambda i: -counts[i])
    frames = []
    for i in order:
        padded = np.zeros(counts[i] * VAD_WINDOW, dtype=np.float32)
        padded[: waves[i].size] = waves[i]
        frames.append(padded.reshape(counts[i], VAD_WINDOW))
    sorted_counts = [counts[i] for i in order]
    probs = [np.zeros(c, dtype=np.float32) for c in sorted_counts]
    active = len(order)
    state = np.zeros((VAD_STATE[0], active, VAD_STATE[1]), dtype=np.float32)
    context = np.zeros((active, VAD_CONTEXT), dtype=np.float32)
    rate = np.array(VAD_SAMPLE_RATE, dtype=np.int64)
    for t in range(sorted_counts[0] if sorted_counts else 0):
        # Clips are sorted longest first: those still running are a prefix.
        while active and sorted_counts[active - 1] <= t:
            active -= 1
        chunk = np.stack([frames[k][t] for k in range(active)])
        x = np.concatenate([context[:active], chunk], axis=1)
        out = model.predict({"input": x, "state": state[:, :active], "sr": rate})
        state = out["stateN"]
        context = x[:, -VAD_CONTEXT:]
        values = out["output"].reshape(-1)
        for k in range(active):
            probs[k][t] = values[k]
    result: list[np.ndarray] = [np.zeros(0, np.float32)] * len(waves)
    for k, i in enumerate(order):
        result[i] = probs[k]
    return result


def speech_timestamps(
    speech_probs: np.ndarray | list[float],
    audio_length_samples: int,
    *,
    threshold: float = 0.5,
    min_speech_duration_ms: float = 250,
    min_silence_duration_ms: float = 100,
    speech_pad_ms: float = 30,
    max_speech_duration_s: float = float("inf"),
    neg_threshold: float | None = None,
    min_silence_at_max_speech: float = 98,
    use_max_poss_sil_at_max_speech: bool = True,
) -> list[tuple[int, int]]:
    """Speech segments ``[(start, end), ...]`` in 16 kHz samples from window probabilities.

    A line-by-line port of silero-vad's ``get_speech_timestamps_from_probs`` (v6) at
    16 kHz, so results equal the reference implementation's; it is ported rather than
    imported because ``silero_vad.utils_vad`` imports torch, which executors need not
    load. Hysteresis: speech starts at ``threshold`` and ends below ``neg_threshold``
    (default ``threshold - 0.15``) held for ``min_silence_duration_ms``; segments
    shorter than ``min_speech_duration_ms`` are dropped; each is padded by
    ``speech_pad_ms``.

    Examples
    --------
    >>> probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 10
    >>> speech_timestamps(probs, 40 * 512)
    [(4640, 15840)]
    """
    sampling_rate, window_size_samples = VAD_SAMPLE_RATE, VAD_WINDOW
    min_speech_samples = sampling_rate * min_speech_duration_ms / 1000
    speech_pad_samples = sampling_rate * speech_pad_ms / 1000
    max_speech_samples = (
        sampling_rate * max_speech_duration_s - window_size_samples - 2 * speech_pad_samples
    )
    min_silence_samples = sampling_rate * min_silence_duration_ms / 1000
    min_silence_samples_at_max_speech = sampling_rate * min_silence_at_max_speech / 1000

    triggered = False
    speeches: list[dict[str, int]] = []
    current_speech: dict[str, int] = {}
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)
    temp_end = 0  # a potential segment end, tolerating some silence
    prev_end = next_start = 0  # segment limits in case the maximum length is reached
    possible_ends: list[tuple[int, int]] = []

    for i, speech_prob in enumerate(speech_probs):
        cur_sample = window_size_samples * i

        # Speech returns after a temp_end: record the silence if long enough.
        if (speech_prob >= threshold) and temp_end:
            sil_dur = cur_sample - temp_end
            if sil_dur > min_silence_samples_at_max_speech:
                possible_ends.append((temp_end, sil_dur))
            temp_end = 0
            if next_start < prev_end:
                next_start = cur_sample

        # Start of speech
        if (speech_prob >= threshold) and not triggered:
            triggered = True
            current_speech["start"] = cur_sample
            continue

        # Maximum segment length reached: decide where to cut
        if triggered and (cur_sample - current_speech["start"] > max_speech_samples):
            if use_max_poss_sil_at_max_speech and possible_ends:
                prev_end, dur = max(possible_ends, key=lambda x: x[1])
                current_speech["end"] = prev_end
                speeches.append(current_speech)
                current_speech = {}
                next_start = prev_end + dur
                if next_start < prev_end + cur_sample:
                    current_speech["start"] = next_start
                else:
                    triggered = False
                prev_end = next_start = temp_end = 0
                possible_ends = []
            else:
                if prev_end:
                    current_speech["end"] = prev_end
                    speeches.append(current_speech)
                    current_speech = {}
                    if next_start < prev_end:
                        triggered = False
                    else:
                        current_speech["start"] = next_start
                    prev_end = next_start = temp_end = 0
                    possible_ends = []
                else:
                    current_speech["end"] = cur_sample
                    speeches.append(current_speech)
                    current_speech = {}
                    prev_end = next_start = temp_end = 0
                    triggered = False
                    possible_ends = []
                    continue

        # Silence while in speech
        if (speech_prob < neg_threshold) and triggered:
            if not temp_end:
                temp_end = cur_sample
            sil_dur_now = cur_sample - temp_end
            if (
                not use_max_poss_sil_at_max_speech
                and sil_dur_now > min_silence_samples_at_max_speech
            ):
                prev_end = temp_end
            if sil_dur_now < min_silence_samples:
                continue
            current_speech["end"] = temp_end
            if (current_speech["end"] - current_speech["start"]) > min_speech_samples:
                speeches.append(current_speech)
            current_speech = {}
            prev_end = next_start = temp_end = 0
            triggered = False
            possible_ends = []
            continue

    if current_speech and (audio_length_samples - current_speech["start"]) > min_speech_samples:
        current_speech["end"] = audio_length_samples
        speeches.append(current_speech)

    for i, speech in enumerate(speeches):
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - speech_pad_samples))
        if i != len(speeches) - 1:
            silence_duration = speeches[i + 1]["start"] - speech["end"]
            if silence_duration < 2 * speech_pad_samples:
                speech["end"] += int(silence_duration // 2)
                speeches[i + 1]["start"] = int(
                    max(0, speeches[i + 1]["start"] - silence_duration // 2)
                )
            else:
                speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
                speeches[i + 1]["start"] = int(
                    max(0, speeches[i + 1]["start"] - speech_pad_samples)
                )
        else:
            speech["end"] = int(min(audio_length_samples, speech["end"] + speech_pad_samples))
    return [(s["start"], s["end"]) for s in speeches]


@dataclass(frozen=True)
class SpeechTask(_AudioTask):
    """Everything an executor needs to run Silero VAD over a column. Picklable.

    The result of a row is ``{"segments": [{"start", "end"}...], "speechRatio"}``,
    times in seconds.
    """

    model: ModelRef
    input_kind: str
    threshold: float = 0.5
    min_speech_ms: float = 250
    min_silence_ms: float = 100
    speech_pad_ms: float = 30
    max_speech_s: float = float("inf")
    batch_size: int = 16
    threads: int = 0

    def result_arrow_type(self) -> Any:
        import pyarrow as pa

        segment = pa.struct([pa.field("start", pa.float64()), pa.field("end", pa.float64())])
        return pa.struct(
            [pa.field("segments", pa.list_(segment)), pa.field("speechRatio", pa.float64())]
        )

    def result_spark_type(self) -> Any:
        from pyspark.sql.types import ArrayType, DoubleType, StructField, StructType

        segment = StructType(
            [StructField("start", DoubleType(), True), StructField("end", DoubleType(), True)]
        )
        return StructType(
            [
                StructField("segments", ArrayType(segment, True), True),
                StructField("speechRatio", DoubleType(), True),
            ]
        )

    def _prepare(self, values: list[Any]) -> tuple[list[int], list[np.ndarray], list[str | None]]:
        return _load_all(values, self.input_kind, VAD_SAMPLE_RATE)

    def segments(self, probs: np.ndarray, length: int) -> dict[str, Any]:
        """One clip's result from its window probabilities and length in samples."""
        stamps = speech_timestamps(
            probs,
            length,
            threshold=self.threshold,
            min_speech_duration_ms=self.min_speech_ms,
            min_silence_duration_ms=self.min_silence_ms,
            speech_pad_ms=self.speech_pad_ms,
            max_speech_duration_s=self.max_speech_s,
        )
        speech = sum(end - start for start, end in stamps)
        return {
            "segments": [
                {"start": start / VAD_SAMPLE_RATE, "end": end / VAD_SAMPLE_RATE}
                for start, end in stamps
            ],
            "speechRatio": speech / length if length else 0.0,
        }

    def _infer(self, model: Any, waves: list[np.ndarray]) -> list[dict[str, Any]]:
        probs = vad_probabilities(model, waves)
        return [self.segments(p, w.size) for p, w in zip(probs, waves)]


# --------------------------------------------------------------------------------------
# A user's waveform model
# --------------------------------------------------------------------------------------


def frame_windows(wave: np.ndarray, window: int, hop: int) -> np.ndarray:
    """``(count, window)`` windows every ``hop`` samples; the last one zero-padded.

    A clip shorter than one window gives one zero-padded window.

    Examples
    --------
    >>> import numpy as np
    >>> frame_windows(np.arange(5, dtype=np.float32), 2, 2).tolist()
    [[0.0, 1.0], [2.0, 3.0], [4.0, 0.0]]
    """
    count = 1 if wave.size <= window else math.ceil((wave.size - window) / hop) + 1
    padded = np.zeros((count - 1) * hop + window, dtype=np.float32)
    padded[: wave.size] = wave[: padded.size]
    return np.lib.stride_tricks.sliding_window_view(padded, window)[::hop][:count]


#: how the waveform batch is laid out for the model input
LAYOUTS = ("flat", "channels_first", "channels_last")


@dataclass(frozen=True)
class AudioModelTask(_AudioTask):
    """Everything an executor needs to run a user's waveform model. Picklable.

    Attributes
    ----------
    model : ModelRef
    input_kind : {"struct", "binary", "path"}
    input_name, output_name : str
    sample_rate : int
        Waveforms are resampled (mono) to this rate.
    window, hop : int
        Window length and step in samples; ``window`` 0 feeds whole clips.
    per_window : bool
        One output per window (``array<array<float>>``) instead of their mean per clip.
    layout : {"flat", "channels_first", "channels_last"}
        Input tensor ``(batch, samples)``, ``(batch, 1, samples)`` or ``(batch, samples, 1)``.
    batch_size : int
        Clips decoded together, and windows per model call.
    threads : int
    """

    model: ModelRef
    input_kind: str
    input_name: str
    output_name: str
    sample_rate: int
    window: int = 0
    hop: int = 0
    per_window: bool = False
    layout: str = "flat"
    batch_size: int = 16
    threads: int = 0

    def result_arrow_type(self) -> Any:
        import pyarrow as pa

        inner = pa.list_(pa.float32())
        return pa.list_(inner) if self.per_window else inner

    def result_spark_type(self) -> Any:
        from pyspark.sql.types import ArrayType, FloatType

        inner = ArrayType(FloatType(), True)
        return ArrayType(inner, True) if self.per_window else inner

    def _prepare(self, values: list[Any]) -> tuple[list[int], list[np.ndarray], list[str | None]]:
        ok, waves, errors = _load_all(values, self.input_kind, self.sample_rate)
        if self.window:
            units = [frame_windows(w, self.window, self.hop or self.window) for w in waves]
        else:
            units = [w[None, :] for w in waves]
        return ok, units, errors

    def _shape(self, batch: np.ndarray) -> np.ndarray:
        if self.layout == "channels_first":
            return batch[:, None, :]
        if self.layout == "channels_last":
            return batch[:, :, None]
        return batch

    def _predict(self, model: Any, units: list[np.ndarray]) -> list[np.ndarray]:
        """Model outputs ``(count, features)`` for each row's ``(count, length)`` units."""
        outputs: list[np.ndarray | None] = [None] * len(units)
        # Windows all have one length; whole clips are batched with clips of equal length.
        by_length: dict[int, list[int]] = {}
        for i, u in enumerate(units):
            by_length.setdefault(u.shape[1], []).append(i)
        for rows in by_length.values():
            stacked = np.concatenate([units[i] for i in rows])
            parts = []
            for s in range(0, stacked.shape[0], self.batch_size):
                batch = self._shape(np.ascontiguousarray(stacked[s : s + self.batch_size]))
                out = np.asarray(model.predict({self.input_name: batch})[self.output_name])
                parts.append(out.reshape(out.shape[0], -1).astype(np.float32))
            flat = np.concatenate(parts)
            bounds = np.cumsum([0] + [units[i].shape[0] for i in rows])
            for k, i in enumerate(rows):
                outputs[i] = flat[bounds[k] : bounds[k + 1]]
        return [o for o in outputs if o is not None]

    def _infer(self, model: Any, units: list[np.ndarray]) -> list[Any]:
        outs = self._predict(model, units)
        if self.per_window:
            return [list(o) for o in outs]
        return [o.mean(axis=0) for o in outs]

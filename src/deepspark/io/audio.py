"""Audio: decoding with soundfile, resampling with soxr, and :func:`read_audio`.

The ``audio`` column deepspark writes is the struct::

    origin: string, sampleRate: int, numChannels: int, numFrames: long, data: array<float>

``data`` holds ``numFrames * numChannels`` samples in -1..1, frame by frame with the
channels interleaved (as in a WAV file): ``[f0c0, f0c1, f1c0, f1c1, ...]``. A file that
cannot be decoded gives the *invalid audio* struct (sampleRate, numChannels and
numFrames -1, empty data) and a one-line ``error``.

Decoding is done by libsndfile (through ``soundfile``): WAV, FLAC, OGG/Vorbis, AIFF and
more, and MP3 when libsndfile is 1.1 or newer. Resampling is done by soxr (the SoX
resampler, high quality).
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
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

__all__ = [
    "AudioDecodeError",
    "audio_schema",
    "decode_audio",
    "from_array",
    "load_waveform",
    "read_audio",
    "resample",
    "to_array",
]


def audio_schema() -> StructType:
    """The struct type of the ``audio`` column written by :func:`read_audio`."""
    from pyspark.sql.types import (
        ArrayType,
        FloatType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    return StructType(
        [
            StructField("origin", StringType(), True),
            StructField("sampleRate", IntegerType(), True),
            StructField("numChannels", IntegerType(), True),
            StructField("numFrames", LongType(), True),
            StructField("data", ArrayType(FloatType(), False), True),
        ]
    )


#: field names that identify an audio struct column
AUDIO_FIELDS = frozenset({"sampleRate", "numChannels", "numFrames", "data"})


# --------------------------------------------------------------------------------------
# Decoding (runs on executors; per-file problems become AudioDecodeError)
# --------------------------------------------------------------------------------------


class AudioDecodeError(Exception):
    """A per-row decoding failure; its message is the row's ``error`` value."""


# libsndfile reports a WAV whose data chunk is longer than the file as
# "data : 128000 (should be 63978)" in its log: the file was cut short.
_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Sizes streaming writers put in a header they cannot seek back to fill in.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)


def _check_positive(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise InvalidParameterError(f"{name} must be > 0 (or None), got {value}")


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample ``(frames,)`` or ``(frames, channels)`` float32 audio with soxr (HQ).

    The result has ``round(frames * target_rate / source_rate)`` frames (soxr's
    length, give or take one).

    Examples
    --------
    >>> import numpy as np
    >>> resample(np.zeros(44100, np.float32), 44100, 16000).shape
    (16000,)
    """
    if source_rate == target_rate or samples.shape[0] == 0:
        return samples
    from deepspark._deps import require

    soxr = require("soxr", "Resampling audio")
    out = soxr.resample(samples, source_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(out, dtype=np.float32)


def _libsndfile_reason(exc: BaseException) -> str:
    # LibsndfileError's message starts with "Error opening <_io.BytesIO object at 0x..>";
    # error_string is libsndfile's own text, stable across rows.
    text = str(getattr(exc, "error_string", "") or exc).strip()
    if "Format not recognised" in text:
        return "not an audio file, or a format libsndfile cannot read (Format not recognised)"
    if "malformed" in text or "lost sync" in text:
        return f"audio file is truncated or corrupt ({text.rstrip('.')})"
    return f"cannot decode audio: {text}"


def decode_audio(
    data: bytes,
    *,
    sample_rate: int | None = None,
    mono: bool = True,
    max_duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode encoded audio bytes into ``(samples, sample_rate)``.

    Parameters
    ----------
    data : bytes
        The encoded file content (WAV, FLAC, OGG/Vorbis, MP3, AIFF...).
    sample_rate : int, optional
        Resample to this rate (Hz); default: keep the file's rate.
    mono : bool
        Average the channels into one.
    max_duration : float, optional
        Decode at most this many seconds from the start of the file.

    Returns
    -------
    samples : ndarray
        float32 in -1..1, shape ``(frames, channels)`` (``channels`` is 1 with ``mono``).
    sample_rate : int

    Raises
    ------
    AudioDecodeError
        Empty, truncated, corrupt or unsupported data (the message is the row's error).

    Examples
    --------
    >>> import io, numpy as np, soundfile as sf
    >>> buf = io.BytesIO()
    >>> sf.write(buf, np.zeros((8000, 2), np.float32), 8000, format="WAV")
    >>> samples, rate = decode_audio(buf.getvalue(), sample_rate=16000)
    >>> samples.shape, rate
    ((16000, 1), 16000)
    """
    from deepspark._deps import require

    sf = require("soundfile", "Decoding audio")
    if not data:
        raise AudioDecodeError("empty file (0 bytes)")
    try:
        with sf.SoundFile(io.BytesIO(data)) as fh:
            rate, declared = int(fh.samplerate), int(fh.frames)
            _check_wav_complete(fh)
            wanted = declared
            if max_duration is not None:
                wanted = min(declared, int(np.ceil(max_duration * rate)))
            samples = fh.read(frames=wanted, dtype="float32", always_2d=True)
    except AudioDecodeError:
        raise
    except sf.LibsndfileError as exc:
        raise AudioDecodeError(_libsndfile_reason(exc)) from None
    except MemoryError:
        raise AudioDecodeError(
            "out of memory while decoding (set max_duration to read only the start)"
        ) from None
    if samples.shape[0] < wanted:
        # Compressed formats (MP3) declare a length the data does not reach.
        raise AudioDecodeError(
            f"audio file is truncated ({samples.shape[0]} of {wanted} frames decoded)"
        )
    if samples.shape[0] == 0:
        raise AudioDecodeError("audio has no samples (0 frames)")
    if not np.isfinite(samples).all():
        # Float WAV/AIFF data can hold any bit pattern; NaN or inf would poison every
        # model and resampler downstream, so such a file is refused as corrupt.
        bad = int(np.size(samples) - np.count_nonzero(np.isfinite(samples)))
        raise AudioDecodeError(f"audio file is corrupt ({bad} samples are NaN or infinite)")
    if mono and samples.shape[1] > 1:
        samples = samples.mean(axis=1, keepdims=True, dtype=np.float32)
    if sample_rate is not None and sample_rate != rate:
        samples = resample(samples, rate, sample_rate)
        rate = int(sample_rate)
    return np.ascontiguousarray(samples, dtype=np.float32), rate


def _check_wav_complete(fh: Any) -> None:
    """Raise when a WAV file's data chunk claims more bytes than the file holds."""
    if fh.format not in ("WAV", "WAVEX", "RF64", "W64"):
        return
    match = _WAV_DATA_SIZE.search(fh.extra_info or "")
    if match is None:
        return
    declared, actual = int(match.group(1)), int(match.group(2))
    if declared not in _UNKNOWN_SIZES and actual < declared:
        raise AudioDecodeError(
            f"audio file is truncated (data chunk holds {actual} of {declared} bytes)"
        )


def decode_error_reason(exc: BaseException) -> str:
    """The one-line ``error`` value for an exception raised while preparing audio."""
    from deepspark.io._files import FileReadError

    if isinstance(exc, (AudioDecodeError, InvalidParameterError, FileReadError)):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename or exc}"
    if isinstance(exc, MemoryError):
        return "out of memory while decoding"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------
# Struct <-> numpy helpers
# --------------------------------------------------------------------------------------


def to_array(audio: Any) -> tuple[np.ndarray, int]:
    """An audio struct (Row or dict) as ``(samples (frames, channels) float32, sample_rate)``.

    Examples
    --------
    >>> import numpy as np
    >>> samples, rate = to_array(from_array(np.zeros((10, 2), np.float32), 8000))
    >>> samples.shape, rate
    ((10, 2), 8000)
    """
    get = audio.__getitem__
    rate, channels, frames = get("sampleRate"), get("numChannels"), get("numFrames")
    if not (rate and rate > 0 and channels and channels > 0 and frames is not None and frames >= 0):
        raise InvalidParameterError(
            f"invalid audio struct (sampleRate={rate}, numChannels={channels}, "
            f"numFrames={frames}); filter rows whose 'error' is set"
        )
    data = get("data")
    arr = np.asarray(data if data is not None else [], dtype=np.float32)
    if arr.size != frames * channels:
        raise InvalidParameterError(
            f"audio data holds {arr.size} samples, expected numFrames*numChannels = "
            f"{frames * channels}"
        )
    return arr.reshape(frames, channels), int(rate)


def from_array(samples: np.ndarray, sample_rate: int, origin: str = "") -> dict[str, Any]:
    """``(frames,)`` or ``(frames, channels)`` samples as an audio struct dict.

    The result can be passed to ``spark.createDataFrame`` with :func:`audio_schema`
    as the column type.

    Examples
    --------
    >>> import numpy as np
    >>> s = from_array(np.zeros(16000, np.float32), 16000, origin="silence.wav")
    >>> (s["sampleRate"], s["numChannels"], s["numFrames"])
    (16000, 1, 16000)
    """
    arr = np.asarray(samples, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InvalidParameterError(f"audio samples must be (frames, channels), got {arr.shape}")
    if sample_rate < 1:
        raise InvalidParameterError(f"sample_rate must be > 0, got {sample_rate}")
    return {
        "origin": origin,
        "sampleRate": int(sample_rate),
        "numChannels": int(arr.shape[1]),
        "numFrames": int(arr.shape[0]),
        # A list, as spark.createDataFrame accepts for array<float> (not a numpy array).
        "data": arr.reshape(-1).tolist(),
    }


def load_waveform(value: Any, kind: str, sample_rate: int) -> np.ndarray:
    """A mono float32 waveform at ``sample_rate`` from an audio struct, file bytes or a path.

    ``kind`` is "struct", "binary" or "path"; used by the audio transformers on the
    executors.
    """
    if kind == "struct":
        samples, rate = to_array(value)
        if samples.shape[0] == 0:
            raise AudioDecodeError("audio has no samples (0 frames)")
        if samples.shape[1] > 1:
            samples = samples.mean(axis=1, keepdims=True, dtype=np.float32)
        samples = resample(samples, rate, sample_rate)
    else:
        from deepspark.runtime.preprocess import read_path

        data = read_path(value) if kind == "path" else bytes(value)
        samples, _ = decode_audio(data, sample_rate=sample_rate, mono=True)
    return np.ascontiguousarray(samples.reshape(-1), dtype=np.float32)


# --------------------------------------------------------------------------------------
# Arrow
# --------------------------------------------------------------------------------------

#: samples one row may hold (1 GiB of float32; Spark rows must stay under 2 GB)
MAX_ROW_SAMPLES = 1 << 28
#: samples one Arrow batch may hold (its list offsets are 32-bit)
MAX_BATCH_SAMPLES = (1 << 31) - 1


def _arrow_audio_type() -> pa.DataType:
    import pyarrow as pa

    return pa.struct(
        [
            pa.field("origin", pa.string()),
            pa.field("sampleRate", pa.int32()),
            pa.field("numChannels", pa.int32()),
            pa.field("numFrames", pa.int64()),
            pa.field("data", pa.list_(pa.field("element", pa.float32(), nullable=False))),
        ]
    )


def _decode_batch(
    origins: list[str | None],
    contents: Iterable[tuple[bytes | None, str | None]],
    *,
    sample_rate: int | None,
    mono: bool,
    max_duration: float | None,
    max_row_samples: int = MAX_ROW_SAMPLES,
    max_batch_samples: int = MAX_BATCH_SAMPLES,
) -> pa.Array:
    """Origins and lazily read ``(content, read error)`` pairs -> Arrow struct<audio, error>,
    samples kept in numpy."""
    import pyarrow as pa

    rates, channels, frames, errors = [], [], [], []
    chunks: list[np.ndarray] = []
    total = 0
    for origin, (content, read_error) in zip(origins, contents):
        try:
            if read_error is not None or content is None:
                raise AudioDecodeError(read_error or no_content_reason(origin))
            samples, rate = decode_audio(
                content, sample_rate=sample_rate, mono=mono, max_duration=max_duration
            )
            if samples.size > max_row_samples or total + samples.size > max_batch_samples:
                # Arrow list offsets are 32-bit and Spark rows hold under 2 GB: refuse the
                # row rather than fail the task.
                raise AudioDecodeError(
                    f"audio too long to hold in a row ({samples.size} samples): read it with "
                    "max_duration, or lower spark.sql.execution.arrow.maxRecordsPerBatch"
                )
            total += samples.size
            rates.append(rate)
            channels.append(samples.shape[1])
            frames.append(samples.shape[0])
            chunks.append(samples.reshape(-1))
            errors.append(None)
        except Exception as exc:  # noqa: BLE001 - every failure becomes this row's error
            rates.append(-1)
            channels.append(-1)
            frames.append(-1)
            chunks.append(np.zeros(0, np.float32))
            errors.append(decode_error_reason(exc))
    # One flat float buffer + offsets: no Python float objects for millions of samples.
    offsets = arrow.offsets32([c.size for c in chunks])
    values = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    audio_type = _arrow_audio_type()
    # Built from buffers: pa.array would import pandas in every fresh worker.
    data = pa.Array.from_buffers(
        audio_type.field("data").type,
        len(chunks),
        [None, pa.py_buffer(offsets)],
        children=[arrow.numeric(values.astype(np.float32, copy=False))],
    )
    audio = pa.StructArray.from_arrays(
        [
            arrow.strings(origins),
            arrow.numeric(np.asarray(rates, dtype=np.int32)),
            arrow.numeric(np.asarray(channels, dtype=np.int32)),
            arrow.numeric(np.asarray(frames, dtype=np.int64)),
            data,
        ],
        fields=list(audio_type),
    )
    return pa.StructArray.from_arrays([audio, arrow.strings(errors)], names=["audio", "error"])


# --------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------


def read_audio(
    spark: SparkSession,
    path: str | Sequence[str],
    *,
    sample_rate: int | None = None,
    mono: bool = True,
    recursive: bool = True,
    glob: str | None = None,
    max_duration: float | None = None,
    drop_invalid: bool = False,
    num_partitions: int | None = None,
) -> DataFrame:
    """Read audio files into a DataFrame with an ``audio`` struct and an ``error``.

    Files are decoded with libsndfile (``soundfile``) on the executors; local folders
    are listed on the driver and each file read by its executor, other filesystems
    listed and read by Spark's ``binaryFile`` source. Every input file gives exactly one row; a file that cannot be decoded
    (empty, truncated, corrupt, not audio, unsupported format) has ``error`` set and the
    invalid audio struct (or is dropped with ``drop_invalid=True``).

    Parameters
    ----------
    spark : SparkSession
    path : str or list of str
        A file, folder or glob on any filesystem Spark reads, or a list of them.
    sample_rate : int, optional
        Resample every file to this rate (Hz) with soxr; default: keep each file's rate.
    mono : bool, default True
        Average the channels into one.
    recursive : bool
        Descend into sub-folders.
    glob : str, optional
        Keep only file names matching this pattern, e.g. ``"*.flac"``.
    max_duration : float, optional
        Decode only the first ``max_duration`` seconds of each file (longer files are
        cut, not refused); bounds the memory a long recording takes.
    drop_invalid : bool
        Drop rows that could not be decoded instead of keeping them with an error.
    num_partitions : int, optional
        Split the file list into this many partitions before decoding (local files:
        at most one per file). Default: local files one task per core up to ~2,048
        files per task (:func:`deepspark.io._files.default_path_partitions`), other
        filesystems Spark's ``binaryFile`` split.

    Returns
    -------
    DataFrame
        Columns ``audio`` (struct: origin, sampleRate, numChannels, numFrames, data)
        and ``error`` (string, null when fine).

    Examples
    --------
    >>> import deepspark
    >>> spark = deepspark.session("local[2]")                              # doctest: +SKIP
    >>> df = deepspark.read_audio(spark, "recordings/", sample_rate=16000)  # doctest: +SKIP
    >>> df.select("audio.origin", "audio.numFrames", "error").show()        # doctest: +SKIP
    """
    from pyspark.sql import functions as F
    from pyspark.sql.functions import ArrowUDFType, arrow_udf
    from pyspark.sql.types import StringType, StructField, StructType

    from deepspark.io._files import files_to_read, read_local_file, uri_form

    if sample_rate is not None and (int(sample_rate) != sample_rate or sample_rate < 1):
        raise InvalidParameterError(f"sample_rate must be a whole number > 0, got {sample_rate}")
    _check_positive("max_duration", max_duration)
    files, column, _ = files_to_read(
        spark, path, recursive=recursive, glob=glob, num_partitions=num_partitions
    )
    out_type = StructType(
        [StructField("audio", audio_schema(), True), StructField("error", StringType(), True)]
    )
    options = {
        "sample_rate": int(sample_rate) if sample_rate is not None else None,
        "mono": bool(mono),
        "max_duration": float(max_duration) if max_duration is not None else None,
    }

    def decode(paths: pa.Array, contents: pa.Array) -> pa.Array:
        origins = [uri_form(p) for p in paths.to_pylist()]
        return _decode_batch(origins, [(c, None) for c in contents.to_pylist()], **options)

    def read_and_decode(paths: pa.Array) -> pa.Array:
        listed = paths.to_pylist()
        return _decode_batch([uri_form(p) for p in listed], map(read_local_file, listed), **options)

    # Non-deterministic so Spark evaluates the decode once per row even though two fields
    # of its result are selected. Local files are read here (see files_to_read).
    reader, inputs = (
        (read_and_decode, ["path"]) if column == "path" else (decode, ["path", "content"])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "prefer type hints"
        decode_udf = arrow_udf(reader, out_type, ArrowUDFType.SCALAR).asNondeterministic()
    decoded = files.select(decode_udf(*inputs).alias("_decoded"))
    df = decoded.select(
        F.col("_decoded.audio").alias("audio"), F.col("_decoded.error").alias("error")
    )
    if drop_invalid:
        df = df.where(F.col("error").isNull())
    return df

"""Audio transformers: :class:`SpeechDetector` (Silero VAD) and :class:`AudioModelTransformer`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.sql import DataFrame

from deepspark.errors import InvalidParameterError, ModelNotFoundError, SignatureError
from deepspark.ml._apply import apply_task, check_output_columns, column, existing_column
from deepspark.ml.params import (
    HasBatchSize,
    HasErrorCol,
    HasInputColumn,
    HasModelFile,
    HasNumThreads,
    HasOutputColumn,
)
from deepspark.ml.persistence import ModelFilePersistence

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from deepspark.models.loader import ModelRef

__all__ = ["AudioModelTransformer", "SpeechDetector", "audio_input_kind"]


def audio_input_kind(df: DataFrame, column: str) -> str:
    """The input kind: "struct" (audio struct), "binary" (file bytes) or "path" (file paths)."""
    from deepspark.io.audio import AUDIO_FIELDS
    from deepspark.ml._apply import column_input_kind

    return column_input_kind(
        df, column, set(AUDIO_FIELDS), "an audio struct (deepspark.read_audio)"
    )


def _param(name: str, doc: str, convert: Any = TypeConverters.toFloat) -> Param[Any]:
    return Param(Params._dummy(), name, doc, typeConverter=convert)


class _AudioTransformer(
    Transformer,
    HasInputColumn,
    HasOutputColumn,
    HasErrorCol,
    HasBatchSize,
    HasNumThreads,
    ModelFilePersistence,
):
    """Shared constructor plumbing of the audio transformers."""

    @keyword_only
    def setParams(self, **kwargs: Any) -> Any:
        """Set any of the constructor's Params."""
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def _set_given(self, kwargs: dict[str, Any]) -> None:
        self._set(**{k: v for k, v in kwargs.items() if v is not None})


class SpeechDetector(_AudioTransformer):
    """Find the speech in audio with Silero VAD; segments in seconds and a speech ratio.

    The Silero VAD model ships inside the ``silero-vad`` package (named model
    ``silero_vad``); ONNX Runtime runs it, loaded once per executor Python worker.
    Audio is downmixed and resampled to 16 kHz, as the model needs, and segmented
    exactly as silero-vad's ``get_speech_timestamps`` does: 32 ms windows,
    hysteresis between ``threshold`` and ``threshold - 0.15``, segments shorter than
    ``minSpeechMs`` dropped, pauses shorter than ``minSilenceMs`` bridged, each
    segment padded by ``speechPadMs``.

    The input column may hold audio structs (:func:`deepspark.read_audio`), encoded
    file bytes (``binaryFile``'s ``content``) or file paths; bytes and paths are
    decoded on the executors.

    Output: ``outputCol`` is ``array<struct<start: double, end: double>>`` (seconds
    from the start of the clip, empty when there is no speech) and ``speechRatioCol``
    the fraction of the clip inside those segments. Rows whose input cannot be used
    get nulls and a reason in ``errorCol``; errors already there are kept.

    Parameters
    ----------
    inputCol : str, default "audio"
    outputCol : str, default "speech"
    speechRatioCol : str, default "speechRatio"
    threshold : float, default 0.5
        Speech probability at which speech starts (0 < threshold < 1).
    minSpeechMs : float, default 250
    minSilenceMs : float, default 100
    speechPadMs : float, default 30
    maxSpeechS : float, default 0 (no limit)
        Longer segments are split, at the longest pause when there is one.
    batchSize : int, default 16
        Clips run together through the model.
    errorCol : str, default "error"
    numThreads : int, default 0 (the task's CPU share)

    Examples
    --------
    >>> import deepspark
    >>> spark = deepspark.session("local[2]")                             # doctest: +SKIP
    >>> audio = deepspark.read_audio(spark, "calls/")                     # doctest: +SKIP
    >>> speech = deepspark.SpeechDetector().transform(audio)              # doctest: +SKIP
    >>> speech.select("audio.origin", "speech", "speechRatio").show()     # doctest: +SKIP
    """

    speechRatioCol = _param(
        "speechRatioCol",
        "column for the fraction of each clip that is speech",
        TypeConverters.toString,
    )
    threshold = _param("threshold", "speech probability at which speech starts (0..1)")
    minSpeechMs = _param("minSpeechMs", "shortest speech segment kept, in ms (>= 0)")
    minSilenceMs = _param("minSilenceMs", "shortest pause that ends a segment, ms (>= 0)")
    speechPadMs = _param("speechPadMs", "padding added to each side of a segment, ms")
    maxSpeechS = _param("maxSpeechS", "longest segment in seconds; 0 = no limit")

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str = "audio",
        outputCol: str = "speech",
        speechRatioCol: str = "speechRatio",
        threshold: float = 0.5,
        minSpeechMs: float = 250,
        minSilenceMs: float = 100,
        speechPadMs: float = 30,
        maxSpeechS: float = 0.0,
        batchSize: int = 16,
        errorCol: str = "error",
        numThreads: int = 0,
    ) -> None:
        super().__init__()
        self._setDefault(
            inputCol="audio",
            outputCol="speech",
            speechRatioCol="speechRatio",
            threshold=0.5,
            minSpeechMs=250.0,
            minSilenceMs=100.0,
            speechPadMs=30.0,
            maxSpeechS=0.0,
            batchSize=16,
        )
        self._set_given(self._input_kwargs)

    def _settings(self) -> dict[str, float]:
        get = self.getOrDefault
        threshold = get(self.threshold)
        if not 0.0 < threshold < 1.0:
            raise InvalidParameterError(f"threshold must be between 0 and 1, got {threshold}")
        values = {
            name: float(get(getattr(self, name)))
            for name in ("minSpeechMs", "minSilenceMs", "speechPadMs", "maxSpeechS")
        }
        for name, value in values.items():
            if value < 0:
                raise InvalidParameterError(f"{name} must be >= 0, got {value}")
        return {"threshold": float(threshold), **values}

    def _build_task(self, df: DataFrame) -> Any:
        from deepspark.models.cache import ship_file
        from deepspark.models.loader import ModelRef
        from deepspark.models.zoo import get_named_model
        from deepspark.runtime.audio import SpeechTask

        kind = audio_input_kind(df, self.getInputCol())
        s = self._settings()
        path = get_named_model("silero_vad").export()
        return SpeechTask(
            model=ModelRef("onnx", ship_file(df.sparkSession.sparkContext, path)),
            input_kind=kind,
            threshold=s["threshold"],
            min_speech_ms=s["minSpeechMs"],
            min_silence_ms=s["minSilenceMs"],
            speech_pad_ms=s["speechPadMs"],
            max_speech_s=s["maxSpeechS"] or float("inf"),
            batch_size=self.getBatchSize(),
            threads=self.getNumThreads(),
        )

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.sql import functions as F

        task = self._build_task(dataset)
        out_col, ratio_col = self.getOutputCol(), self.getOrDefault(self.speechRatioCol)
        error_col = self.getErrorCol()
        check_output_columns(
            dataset, {"outputCol": out_col, "speechRatioCol": ratio_col}, error_col
        )
        tmp = "__deepspark_speech"
        out = apply_task(
            dataset,
            self.getInputCol(),
            tmp,
            error_col,
            task.run,
            task.result_spark_type(),
            checked=True,
        )
        # The outputs are new columns (checked above); the error column may exist, and
        # apply_task replaced it.
        replaced = existing_column(dataset, error_col)
        keep = [column(c) for c in dataset.columns if c != replaced]
        return out.select(
            *keep,
            F.col(f"{tmp}.segments").alias(out_col),
            F.col(f"{tmp}.speechRatio").alias(ratio_col),
            column(error_col),
        )


class AudioModelTransformer(_AudioTransformer, HasModelFile):
    """Run your own waveform model over audio: per clip, or per fixed-length window.

    Audio is downmixed to mono and resampled to ``sampleRate``. With
    ``windowSeconds`` 0 each whole clip is one model input; otherwise clips are cut
    into windows of ``windowSeconds`` every ``hopSeconds`` (the last window
    zero-padded) and the model runs on batches of windows. The model input is
    ``(batch, samples)``, ``(batch, 1, samples)`` or ``(batch, samples, 1)`` float32,
    as its signature says.

    ``outputMode="clip"`` gives one ``array<float>`` per row (the model output, or its
    mean over the windows); ``"window"`` gives ``array<array<float>>``, one output per
    window, in order (window ``i`` starts at ``i * hopSeconds``).

    The model is loaded through deepspark's model interface (``framework`` or the file
    extension picks the backend), once per executor Python worker.

    Parameters
    ----------
    inputCol : str, default "audio"
        Audio structs (:func:`deepspark.read_audio`), file bytes or file paths.
    outputCol : str, default "prediction"
    model : str
        Path of the model file.
    framework : str, optional
        Backend name (e.g. "onnx"); detected from the file when empty.
    outputName : str, optional
        Model output to return (default: the first).
    sampleRate : int, default 16000
    windowSeconds : float, default 0 (whole clips)
    hopSeconds : float, default 0 (= windowSeconds)
    outputMode : {"clip", "window"}, default "clip"
    batchSize : int, default 16
        Clips decoded together, and windows per model call.
    errorCol : str, default "error"
    numThreads : int, default 0

    Examples
    --------
    >>> t = AudioModelTransformer(model="keyword_spotter.onnx", sampleRate=16000,
    ...                           windowSeconds=1.0, outputMode="window")  # doctest: +SKIP
    >>> t.transform(deepspark.read_audio(spark, "clips/"))                 # doctest: +SKIP
    """

    outputName = _param(
        "outputName", "model output to return (default: the first)", TypeConverters.toString
    )
    sampleRate = _param(
        "sampleRate",
        "sample rate (Hz) the model expects; audio is resampled to it",
        TypeConverters.toInt,
    )
    windowSeconds = _param("windowSeconds", "window length in seconds; 0 = whole clips")
    hopSeconds = _param("hopSeconds", "step between windows in seconds; 0 = windowSeconds")
    outputMode = _param(
        "outputMode",
        "'clip' (one output per row; the mean over windows) or 'window' (one per window)",
        TypeConverters.toString,
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str = "audio",
        outputCol: str = "prediction",
        model: str | None = None,
        framework: str = "",
        outputName: str | None = None,
        sampleRate: int = 16000,
        windowSeconds: float = 0.0,
        hopSeconds: float = 0.0,
        outputMode: str = "clip",
        batchSize: int = 16,
        errorCol: str = "error",
        numThreads: int = 0,
    ) -> None:
        super().__init__()
        self._setDefault(
            inputCol="audio",
            outputCol="prediction",
            sampleRate=16000,
            windowSeconds=0.0,
            hopSeconds=0.0,
            outputMode="clip",
            batchSize=16,
        )
        self._set_given(self._input_kwargs)

    def _windowing(self) -> tuple[int, int, int, bool]:
        """(sample rate, window samples, hop samples, per window), validated."""
        rate = self.getOrDefault(self.sampleRate)
        window_s = self.getOrDefault(self.windowSeconds)
        hop_s = self.getOrDefault(self.hopSeconds) or window_s
        mode = self.getOrDefault(self.outputMode).lower()
        if rate < 1:
            raise InvalidParameterError(f"sampleRate must be > 0, got {rate}")
        if window_s < 0 or hop_s < 0:
            raise InvalidParameterError(
                f"windowSeconds and hopSeconds must be >= 0, got {window_s} and {hop_s}"
            )
        if mode not in ("clip", "window"):
            raise InvalidParameterError(f"outputMode must be 'clip' or 'window', got {mode!r}")
        if mode == "window" and not window_s:
            raise InvalidParameterError("outputMode='window' needs windowSeconds > 0")
        window, hop = round(window_s * rate), round(hop_s * rate)
        if window_s and (window < 1 or hop < 1):
            raise InvalidParameterError(
                f"windowSeconds={window_s} and hopSeconds={hop_s} are under one sample at {rate} Hz"
            )
        return rate, window, hop, mode == "window"

    def _build_task(self, df: DataFrame) -> Any:
        from deepspark.runtime.audio import AudioModelTask

        kind = audio_input_kind(df, self.getInputCol())
        rate, window, hop, per_window = self._windowing()
        ref, input_name, output_name, layout = _resolve_waveform_model(
            df.sparkSession,
            self.getModel(),
            self.getFramework(),
            self.getOrDefault(self.outputName) if self.isDefined(self.outputName) else None,
            window,
            rate,
        )
        return AudioModelTask(
            model=ref,
            input_kind=kind,
            input_name=input_name,
            output_name=output_name,
            sample_rate=rate,
            window=window,
            hop=hop,
            per_window=per_window,
            layout=layout,
            batch_size=self.getBatchSize(),
            threads=self.getNumThreads(),
        )

    def _transform(self, dataset: DataFrame) -> DataFrame:
        task = self._build_task(dataset)
        return apply_task(
            dataset,
            self.getInputCol(),
            self.getOutputCol(),
            self.getErrorCol(),
            task.run,
            task.result_spark_type(),
        )


def _resolve_waveform_model(
    spark: SparkSession,
    model: str | None,
    framework: str,
    output_name: str | None,
    window: int,
    rate: int,
) -> tuple[ModelRef, str, str, str]:
    """Ship and check a waveform model on the driver: (ref, input, output, layout)."""
    from deepspark.models.cache import ship_file
    from deepspark.models.loader import BACKENDS, ModelRef
    from deepspark.models.resolve import detect_framework, local_model_path

    if not model:
        raise InvalidParameterError(
            "AudioModelTransformer needs model=<path of your waveform model>; for speech "
            "detection with the packaged Silero VAD use SpeechDetector"
        )
    path = local_model_path(model)
    if not path.exists():
        raise ModelNotFoundError(f"model file not found: {path}")
    fw = (framework or detect_framework(path)).lower()
    if fw not in BACKENDS:
        raise InvalidParameterError(
            f"framework {fw!r} is not supported; supported: {', '.join(sorted(BACKENDS))}"
        )
    ref = ModelRef(fw, ship_file(spark.sparkContext, path))
    sig = ref.load(threads=1).signature  # on the driver: a broken model fails here
    if len(sig.inputs) != 1:
        raise SignatureError(f"a waveform model needs exactly one input; {path.name} has {sig}")
    spec = sig.inputs[0]
    shape = spec.shape
    if len(shape) == 2:
        layout, length = "flat", shape[1]
    elif len(shape) == 3 and shape[2] == 1 and shape[1] != 1:
        layout, length = "channels_last", shape[1]
    elif len(shape) == 3 and shape[1] in (1, -1):
        layout, length = "channels_first", shape[2]
    elif not shape:
        layout, length = "flat", -1  # a backend that does not know its input shape
    else:
        raise SignatureError(
            f"model input {spec} is not a waveform batch: expected (batch, samples), "
            f"(batch, 1, samples) or (batch, samples, 1); the model's signature is {sig}"
        )
    if length >= 0 and length != window:
        seconds = length / rate
        raise SignatureError(
            f"model {path.name} takes windows of {length} samples ({spec}) but the Params give "
            f"{window or 'whole clips'}; set windowSeconds={seconds:g} (at sampleRate={rate})"
        )
    out = output_name or sig.output_names[0]
    if out not in sig.output_names:
        raise InvalidParameterError(f"model has no output {out!r}; outputs are {sig.output_names}")
    return ref, spec.name, out, layout

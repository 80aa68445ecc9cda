"""Readers and the text and audio loops never import pandas in the Python workers.

pyarrow's ``pa.array`` imports pandas on its first call, whatever it converts: 0.3-0.9 s
and ~50 MB in every fresh Python worker (measured on a text job, where each task's
workers imported it). deepspark builds its Arrow columns from buffers instead
(``deepspark.runtime._arrow``). This module has its own Spark session, so its workers
have run nothing but the jobs below when the probe asks them what they imported.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import deepspark
from tests.conftest import skimage_data_dir


def _imported_pandas(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Report this worker's pid and whether it has imported pandas (without pa.array)."""
    import os
    import sys

    from deepspark.runtime import _arrow

    for _ in batches:
        yield pa.record_batch(
            [
                _arrow.numeric(np.array([os.getpid()], dtype=np.int64)),
                _arrow.booleans(np.array(["pandas" in sys.modules])),
            ],
            names=["pid", "pandas"],
        )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import soundfile as sf

    root = tmp_path_factory.mktemp("inputs")
    for d in ("txt", "wav", "img"):
        (root / d).mkdir()
    for i in range(4):
        (root / "txt" / f"{i}.txt").write_text(f"A sentence number {i}.\nAnother one.\n")
    t = np.arange(16000) / 16000
    for i in range(2):
        tone = (0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t)).astype(np.float32)
        sf.write(root / "wav" / f"{i}.wav", tone, 16000)
    (root / "wav" / "broken.wav").write_text("not audio")
    shutil.copyfile(skimage_data_dir() / "chelsea.png", root / "img" / "chelsea.png")
    (root / "img" / "empty.jpg").write_bytes(b"")
    return root


def test_readers_and_loops_leave_workers_without_pandas(spark, inputs: Path) -> None:
    texts = deepspark.read_text(spark, str(inputs / "txt"), unit="line")
    embedded = deepspark.TextEmbedder().transform(texts).select("origin", "embedding", "error")
    rows = embedded.collect()
    assert len(rows) == 8 and all(r.error is None and len(r.embedding) == 384 for r in rows)

    audio = deepspark.read_audio(spark, str(inputs / "wav"))
    speech = deepspark.SpeechDetector().transform(audio).select("speechRatio", "error").collect()
    assert sorted(r.error is None for r in speech) == [False, True, True]

    files = deepspark.list_paths(spark, str(inputs / "wav"))
    direct = deepspark.SpeechDetector(inputCol="path").transform(files).collect()
    assert sorted(r.error is None for r in direct) == [False, True, True]

    images = deepspark.read_images(spark, str(inputs / "img")).collect()
    assert sorted(r.error is None for r in images) == [False, True]

    # Enough tasks to come round to every idle worker of the jobs above.
    probe = spark.range(16, numPartitions=16).mapInArrow(
        _imported_pandas, "pid long, pandas boolean"
    )
    answers = probe.collect()
    assert len({r.pid for r in answers}) >= 2
    assert not any(r.pandas for r in answers), answers


def test_arrow_columns_equal_pa_array_and_refuse_32_bit_overflow() -> None:
    """What the loops build from buffers equals pa.array's result, and a batch past
    Spark's 32-bit offsets raises with what to do instead of wrapping around."""
    from deepspark.runtime import _arrow

    seg = pa.struct([("start", pa.float64()), ("end", pa.float64())])
    kinds = {
        pa.list_(pa.float32()): [np.arange(3, dtype=np.float32), None, []],
        pa.list_(pa.list_(pa.float32())): [[np.ones(2), np.zeros(1)], [], None],
        pa.struct([("segments", pa.list_(seg)), ("speechRatio", pa.float64())]): [
            {"segments": [{"start": 0.5, "end": 1.0}], "speechRatio": 0.25},
            None,
            {"segments": [], "speechRatio": 0.0},
        ],
        pa.struct([("label", pa.string()), ("score", pa.float32())]): [
            {"label": "pos", "score": np.float32(0.9)},
            None,
        ],
        pa.binary(): [b"\x00\x01", None, b""],
    }
    for arrow_type, values in kinds.items():
        plain = [v.tolist() if isinstance(v, np.ndarray) else v for v in values]
        got = _arrow.from_python(values, arrow_type)
        got.validate(full=True)
        assert got.equals(pa.array(plain, type=arrow_type)), arrow_type
    with pytest.raises(ValueError, match="maxRecordsPerBatch"):
        _arrow.offsets32([2**30, 2**30])

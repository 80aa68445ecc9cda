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

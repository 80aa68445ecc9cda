"""Structured Streaming: images arriving in a folder -> features -> Parquet, restartable.

A stream of files (Spark's ``binaryFile`` source) goes through DeepImageFeaturizer into
a Parquet sink with a checkpoint. The query is run, stopped, restarted after more files
arrive, and restarted once more after a simulated crash between writing a batch and
committing it: the output must hold every file exactly once.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import deepspark

sys.path.insert(0, str(Path(__file__).parent))  # helpers next to this file (importlib mode)
from tiny_onnx import solid_png

BINARY_FILE_SCHEMA = "path STRING, modificationTime TIMESTAMP, length LONG, content BINARY"


def _run_once(spark, source: Path, sink: Path, checkpoint: Path, transformer=None) -> None:
    """Process every file now in ``source`` (two per micro-batch), then stop."""
    transformer = transformer or deepspark.DeepImageFeaturizer(inputCol="content")
    stream = (
        spark.readStream.format("binaryFile")
        .schema(BINARY_FILE_SCHEMA)  # file sources need a schema up front
        .option("maxFilesPerTrigger", 2)
        .load(str(source))
    )
    query = (
        transformer.transform(stream)
        .drop("content")
        .writeStream.format("parquet")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start(str(sink))
    )
    query.awaitTermination(timeout=600)
    assert query.exception() is None
    assert not query.isActive


def test_stream_restarts_without_losing_or_duplicating_rows(
    spark, tmp_path: Path, photos_dir: Path, mixed_dir: Path
) -> None:
    source, sink, checkpoint = tmp_path / "incoming", tmp_path / "out", tmp_path / "ckpt"
    source.mkdir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        shutil.copyfile(photos_dir / name, source / name)

    _run_once(spark, source, sink, checkpoint)
    first = spark.read.parquet(str(sink))
    assert first.count() == 3

    # more files arrive, one of them broken: the restarted query takes only the new ones
    shutil.copyfile(photos_dir / "astronaut.png", source / "astronaut.png")
    shutil.copyfile(mixed_dir / "truncated.jpg", source / "truncated.jpg")
    solid_png(source / "red.png", (255, 0, 0))
    _run_once(spark, source, sink, checkpoint)

    # a crash after the last batch was written but before it was committed: the restart
    # replays that batch and the file sink's log keeps its rows from being written twice
    commit_dir = checkpoint / "commits"
    replayed = max(int(p.name) for p in commit_dir.iterdir() if p.name.isdigit())
    for name in (str(replayed), f".{replayed}.crc"):
        (commit_dir / name).unlink(missing_ok=True)
    _run_once(spark, source, sink, checkpoint)
    assert (checkpoint / "commits" / str(replayed)).exists()

    rows = spark.read.parquet(str(sink)).collect()
    names = sorted(Path(r.path).name for r in rows)
    assert names == sorted(
        ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "truncated.jpg", "red.png"]
    )
    by_name = {Path(r.path).name: r for r in rows}
    assert by_name["truncated.jpg"].features is None and by_name["truncated.jpg"].error
    for name in names:
        if name != "truncated.jpg":
            assert by_name[name].features.size == 1280 and by_name[name].error is None


def test_predictor_streams_too(spark, tmp_path: Path, photos_dir: Path) -> None:
    source, sink, checkpoint = tmp_path / "incoming", tmp_path / "out", tmp_path / "ckpt"
    source.mkdir()
    shutil.copyfile(photos_dir / "chelsea.png", source / "chelsea.png")
    predictor = deepspark.DeepImagePredictor(inputCol="content", topK=1)
    _run_once(spark, source, sink, checkpoint, predictor)
    row = spark.read.parquet(str(sink)).first()
    assert row.error is None
    assert "cat" in row.predictions[0]["description"]


def test_streaming_dataframe_is_accepted_before_start(spark, tmp_path: Path) -> None:
    stream = spark.readStream.format("binaryFile").schema(BINARY_FILE_SCHEMA).load(str(tmp_path))
    out = deepspark.DeepImageFeaturizer(inputCol="content").transform(stream)
    assert out.isStreaming
    assert {"features", "error"} <= set(out.columns)

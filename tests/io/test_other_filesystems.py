"""Readers and the CLI on a filesystem deepspark cannot read itself.

Local folders are listed on the driver and each file is read by its executor (column
``path``); any other filesystem (``s3a://``, ``hdfs://``, ``gs://``) is listed and read
by Spark's ``binaryFile`` source (column ``content``). Hadoop's ``viewfs`` mounted over a
temporary folder is such a filesystem, with no network: both routes must give the same
rows for the same files, broken ones included.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deepspark
from deepspark.io._files import files_to_read
from tests.conftest import skimage_data_dir


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images, texts and audio, each with a zero-byte file and an undecodable one."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("fs")
    img, txt, wav = root / "img", root / "txt", root / "wav"
    for d in (img, txt, wav):
        d.mkdir()
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        shutil.copyfile(skimage_data_dir() / name, img / name)
    (img / "empty.jpg").write_bytes(b"")
    (img / "notes.jpg").write_text("not a JPEG\n")
    (txt / "a.txt").write_text("first line\nsecond line\n\nafter a blank\n")
    (txt / "latin.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    (txt / "empty.txt").write_bytes(b"")
    t = np.arange(8000) / 8000
    sf.write(wav / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000)
    (wav / "empty.wav").write_bytes(b"")
    (wav / "notes.wav").write_text("not audio\n")
    return root


@pytest.fixture(scope="module")
def mounted(spark, folder: Path) -> str:
    """``folder`` as a viewfs URI (its own mount table, so no cached mount interferes)."""
    table = "t" + uuid.uuid4().hex[:8]
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    conf.set(f"fs.viewfs.mounttable.{table}.link./data", folder.as_uri())
    return f"viewfs://{table}/data"


def _by_name(rows: list, origin: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for row in rows:
        d = row.asDict(recursive=True)
        out.setdefault(Path(d.pop(origin)).name, []).append(d)
    return out


def _both(
    reader: Any, spark: Any, folder: Path, mounted: str, sub: str, columns: list[str]
) -> tuple[dict[str, list], dict[str, list]]:
    """``reader``'s rows for ``folder/sub`` read locally and through viewfs, by file name."""
    local = reader(spark, str(folder / sub)).select(*columns).collect()
    remote = reader(spark, f"{mounted}/{sub}").select(*columns).collect()
    return _by_name(local, "origin"), _by_name(remote, "origin")


def test_routes_are_picked_by_filesystem(spark, folder: Path, mounted: str) -> None:
    local = files_to_read(spark, str(folder / "img"), count=True)
    remote = files_to_read(spark, mounted + "/img", count=True)
    assert (local.column, local.count) == ("path", 5)
    assert (remote.column, remote.count) == ("content", 5)
    assert set(remote.frame.columns) >= {"path", "content"}
    limited = files_to_read(spark, mounted + "/img", limit=2, count=True)
    assert limited.count == 2 and limited.frame.count() == 2
    # a LIMIT alone would run what follows in one task
    assert limited.frame.rdd.getNumPartitions() == 2


def test_read_images_same_rows_on_both_routes(spark, folder: Path, mounted: str) -> None:
    local, remote = _both(
        deepspark.read_images,
        spark,
        folder,
        mounted,
        "img",
        ["image.origin", "image.width", "image.height", "error"],
    )
    assert local == remote
    assert local["chelsea.png"] == [{"width": 451, "height": 300, "error": None}]
    assert "empty" in local["empty.jpg"][0]["error"]
    assert local["notes.jpg"][0]["error"]


def test_read_text_same_rows_on_both_routes(spark, folder: Path, mounted: str) -> None:
    got = {}
    for unit in ("file", "line", "paragraph"):
        local = deepspark.read_text(spark, str(folder / "txt"), unit=unit).collect()
        remote = deepspark.read_text(spark, mounted + "/txt", unit=unit).collect()
        got[unit] = _by_name(local, "origin")
        assert got[unit] == _by_name(remote, "origin"), unit
    texts = {unit: [r["text"] for r in got[unit]["a.txt"]] for unit in got}
    assert texts["line"] == ["first line", "second line", "", "after a blank"]
    assert texts["paragraph"] == ["first line\nsecond line", "after a blank"]
    assert "not valid utf-8" in got["file"]["latin.txt"][0]["error"]
    assert got["file"]["empty.txt"] == [{"text": "", "error": None}]
    assert "empty.txt" not in got["line"]  # an empty file has no line


def test_read_audio_same_rows_on_both_routes(spark, folder: Path, mounted: str) -> None:
    local, remote = _both(
        deepspark.read_audio,
        spark,
        folder,
        mounted,
        "wav",
        ["audio.origin", "audio.numFrames", "audio.sampleRate", "error"],
    )
    assert local == remote
    assert local["tone.wav"] == [{"numFrames": 8000, "sampleRate": 8000, "error": None}]
    assert local["empty.wav"][0]["error"] and local["notes.wav"][0]["error"]


def test_cli_predict_reads_another_filesystem(
    spark, folder: Path, mounted: str, tmp_path: Path
) -> None:
    from deepspark.cli.main import main

    out = tmp_path / "p.parquet"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = main(["predict", mounted + "/img", "-o", str(out), "--top-k", "1", "--show", "0"])
    assert rc == 0
    rows = {Path(r.path).name: r for r in spark.read.parquet(str(out)).collect()}
    assert set(rows) == {"chelsea.png", "coffee.png", "rocket.jpg", "empty.jpg", "notes.jpg"}
    assert rows["chelsea.png"].error is None and rows["chelsea.png"].predictions
    assert rows["empty.jpg"].error and rows["notes.jpg"].error
    assert "5 files" in stdout.getvalue() or "5/5" in stdout.getvalue()


def test_paths_without_a_scheme_follow_the_default_filesystem(
    spark, folder: Path, mounted: str
) -> None:
    """On a cluster whose fs.defaultFS is HDFS, "/data/notes" is an HDFS folder, as for
    Spark's own sources; with the local default (local mode) it is a local folder."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    table = mounted.split("/")[2]
    before = conf.get("fs.defaultFS")
    conf.set("fs.defaultFS", f"viewfs://{table}/")
    try:
        files = files_to_read(spark, "/data/txt")
        assert files.column == "content"
        rows = deepspark.read_text(spark, "/data/txt", unit="paragraph").collect()
    finally:
        conf.set("fs.defaultFS", before or "file:///")
    local = deepspark.read_text(spark, str(folder / "txt"), unit="paragraph").collect()
    assert _by_name(rows, "origin") == _by_name(local, "origin")
    assert files_to_read(spark, str(folder / "txt")).column == "path"


def test_cli_leaves_paths_without_a_scheme_to_an_hdfs_default(
    spark, folder: Path, mounted: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a Hadoop configuration whose fs.defaultFS is not local ($HADOOP_CONF_DIR, as
    on a YARN gateway), ``deepspark predict /data/img`` reads that filesystem instead of
    exiting 2 because no local /data/img exists."""
    from deepspark.cli.main import main

    table = mounted.split("/")[2]
    assert not Path("/data/img").exists()  # the point: only the mounted folder has it
    (tmp_path / "core-site.xml").write_text(
        "<configuration><property><name>fs.defaultFS</name>"
        f"<value>viewfs://{table}/</value></property></configuration>"
    )
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path))
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    before = conf.get("fs.defaultFS")
    conf.set("fs.defaultFS", f"viewfs://{table}/")  # what that configuration gives Spark
    out = tmp_path / "p.parquet"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            rc = main(["predict", "/data/img", "-o", f"file://{out}", "--top-k", "1", "-q"])
    finally:
        conf.set("fs.defaultFS", before or "file:///")
    assert rc == 0
    rows = {Path(r.path).name: r for r in spark.read.parquet(str(out)).collect()}
    assert set(rows) == {"chelsea.png", "coffee.png", "rocket.jpg", "empty.jpg", "notes.jpg"}
    assert rows["coffee.png"].predictions and rows["notes.jpg"].error

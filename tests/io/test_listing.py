"""Driver-side listing for executors that read files themselves (CLI predict on local files)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from deepspark.errors import InputNotFoundError
from deepspark.io._files import (
    _local_listing,
    list_files,
    listed_paths,
    paths_frame,
    spark_listed_paths,
)


@pytest.fixture()
def folder(tmp_path: Path, photos_dir: Path) -> Path:
    photos = sorted(p for p in photos_dir.iterdir() if p.is_file())[:3]
    for p in photos:
        shutil.copyfile(p, tmp_path / p.name)
    (tmp_path / "sub").mkdir()
    shutil.copyfile(photos[0], tmp_path / "sub" / "deeper.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    (tmp_path / "_SUCCESS").write_bytes(b"")
    os.symlink(tmp_path / "gone.jpg", tmp_path / "broken.jpg")
    return tmp_path


def _names(paths: list[str]) -> list[str]:
    return sorted(p.rsplit("/", 1)[-1] for p in paths)


def test_same_files_as_the_binary_file_listing(spark: object, folder: Path) -> None:
    listed = listed_paths(spark, str(folder))
    scanned = [r["path"] for r in list_files(spark, str(folder)).select("path").collect()]
    # Every entry Spark's listing would give a row, zero-byte file and broken link
    # included; hidden and "_" files skipped as Spark skips them.
    assert sorted(listed) == sorted(scanned)
    assert "empty.jpg" in _names(listed) and "broken.jpg" in _names(listed)
    assert ".hidden.jpg" not in _names(listed) and "_SUCCESS" not in _names(listed)
    assert "deeper.jpg" in _names(listed)
    assert "deeper.jpg" not in _names(listed_paths(spark, str(folder), recursive=False))
    assert _names(listed_paths(spark, str(folder), glob="empty*")) == ["empty.jpg"]


@pytest.fixture()
def tricky(tmp_path: Path) -> Path:
    """Names Spark's listing treats specially, in nested, hidden and linked folders."""
    root = tmp_path / "root"
    for rel in [
        "a.jpg",
        "b.png",
        "x._COPYING_",
        "_metadata",
        "_common_metadata_v2",
        "_SUCCESS",
        ".DS_Store",
        "sp ace #1 ü.jpg",
        "deep/er/c.jpg",
        "_year=2024/d.jpg",
        "_tmp/e.jpg",
        ".git/f.jpg",
        "k=v/_g.jpg",
        "k=v/h.JPG",
    ]:
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"" if rel.endswith("h.JPG") else b"data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "linked.jpg").write_bytes(b"data")
    os.symlink(outside, root / "link-dir")
    os.symlink(outside / "linked.jpg", root / "link-file.jpg")
    os.symlink(tmp_path / "gone", root / "deep" / "broken.jpg")
    return root


@pytest.mark.parametrize("glob", [None, "*.jpg", "?.*", "*"])
def test_python_listing_matches_sparks(spark: object, tricky: Path, glob: str | None) -> None:
    """Local folders are walked in Python; the result must be exactly Spark's listing
    (plus broken links), for every naming rule Spark applies."""
    fast = listed_paths(spark, str(tricky), glob=glob)
    assert fast == _local_listing([str(tricky)], recursive=True, glob=glob)  # no Spark
    assert fast == spark_listed_paths(spark, [str(tricky)], recursive=True, glob=glob)
    assert fast  # the tree has matches for every pattern


def test_python_listing_matches_sparks_for_files_and_several_roots(
    spark: object, tricky: Path
) -> None:
    roots = [str(tricky / "a.jpg"), str(tricky / "deep"), f"file:{tricky / '_year=2024'}"]
    fast = listed_paths(spark, roots)
    assert fast == spark_listed_paths(spark, roots, recursive=True, glob=None)
    assert {"a.jpg", "c.jpg", "d.jpg", "broken.jpg"} <= set(_names(fast))
    # Named hidden files are skipped, named hidden folders are listed (as Spark does).
    hidden = [str(tricky / "_SUCCESS"), str(tricky / ".DS_Store"), str(tricky / "_tmp")]
    fast = listed_paths(spark, hidden)
    assert fast == spark_listed_paths(spark, hidden, recursive=True, glob=None)
    assert _names(fast) == ["e.jpg"]
    # Only hidden files named: an error saying why, where Spark's reader fails too.
    with pytest.raises(InputNotFoundError, match="skipped as hidden"):
        listed_paths(spark, hidden[:2])
    # The name filter applies to named files too.
    for glob in ("*.png", "*.jpg"):
        fast = listed_paths(spark, roots, glob=glob)
        assert fast == spark_listed_paths(spark, roots, recursive=True, glob=glob)
        assert ("a.jpg" in _names(fast)) == (glob == "*.jpg")


@pytest.mark.parametrize(
    "pattern", ["*.jpg", "{a,b}.*", "[ab].*", "[^a].*", "deep/*/c.jpg", "_year=2024/*", "k=v/*"]
)
def test_globs_in_the_path_match_sparks(spark: object, tricky: Path, pattern: str) -> None:
    """Hadoop's glob syntax in a local path, matched in Python: the same files as
    Spark's own glob (which the next test shows failing on some names)."""
    path = f"{tricky}/{pattern}"
    fast = _local_listing([path], recursive=True, glob=None)
    assert fast is not None and fast  # matched in Python, and something matched
    assert fast == spark_listed_paths(spark, [path], recursive=True, glob=None)
    assert listed_paths(spark, path) == fast


def test_globs_and_loops_that_spark_cannot_list(
    spark: object, photos_dir: Path, tmp_path: Path
) -> None:
    """A file name with a colon (a timestamp) in a globbed folder made Hadoop's glob fail
    the whole read ("Relative path in absolute URI"); a link back to a parent folder
    repeated every file ~40 times until the path was too long. Both list every real file
    once, and the readers read them."""
    import deepspark

    photo = next(p for p in sorted(photos_dir.iterdir()) if p.suffix == ".png")
    for name in ("a.jpg", "2024-01-01T10:00.jpg", "d.png"):
        shutil.copyfile(photo, tmp_path / name)
    assert _names(listed_paths(spark, f"{tmp_path}/*.png")) == ["d.png"]
    assert _names(listed_paths(spark, f"{tmp_path}/{{a,2024*}}.jpg")) == [
        "2024-01-01T10:00.jpg",
        "a.jpg",
    ]
    rows = deepspark.read_images(spark, f"{tmp_path}/*.jpg").collect()
    assert len(rows) == 2 and all(r["error"] is None for r in rows)
    with pytest.raises(InputNotFoundError):
        listed_paths(spark, f"{tmp_path}/*.gif")

    looped = tmp_path / "looped"
    (looped / "sub").mkdir(parents=True)
    shutil.copyfile(photo, looped / "sub" / "only.png")
    os.symlink(looped, looped / "self")
    os.symlink(looped, looped / "sub" / "up")
    assert _names(listed_paths(spark, str(looped))) == ["only.png"]
    rows = deepspark.read_images(spark, str(looped)).collect()
    assert len(rows) == 1 and rows[0]["error"] is None


def test_frame_has_one_row_per_path_split_by_count(spark: object, folder: Path) -> None:
    listed = listed_paths(spark, str(folder))
    df = paths_frame(spark, listed, num_partitions=3)
    assert df.rdd.getNumPartitions() == 3
    sizes = df.rdd.glom().map(len).collect()
    assert sum(sizes) == len(listed) and max(sizes) - min(sizes) <= 1
    assert sorted(r["path"] for r in df.collect()) == listed
    # Never more partitions than files.
    assert paths_frame(spark, listed[:2]).rdd.getNumPartitions() == 2
    # Built in the JVM (file order kept), not from a Python RDD: that one would need
    # a second set of Python workers beside the model's.
    assert [r["path"] for r in df.collect()] == listed
    plan = df._jdf.queryExecution().executedPlan().toString()  # type: ignore[attr-defined]
    assert "ExistingRDD" not in plan and "LocalTableScan" in plan
    # A short list gets one task per core, split by Spark itself (the local
    # relation's own split, by count): no join.
    default = paths_frame(spark, listed)
    parts = default.rdd.glom().map(len).collect()
    assert len(parts) == min(spark.sparkContext.defaultParallelism, len(listed))  # type: ignore[attr-defined]
    assert max(parts) - min(parts) <= 1 and [r["path"] for r in default.collect()] == listed
    plan = default._jdf.queryExecution().executedPlan().toString()  # type: ignore[attr-defined]
    assert "LocalTableScan" in plan and "Join" not in plan
    assert paths_frame(spark, []).count() == 0


def test_long_path_lists_split_into_whole_waves_of_tasks(spark: object) -> None:
    """Past ~FILES_PER_TASK files per core, the default split is whole waves of one task
    per core (balanced last wave, moving progress), evenly by count, in file order."""
    from deepspark.io._files import FILES_PER_TASK, default_path_partitions

    cores = spark.sparkContext.defaultParallelism  # type: ignore[attr-defined]
    assert default_path_partitions(FILES_PER_TASK * cores, cores) == cores
    assert default_path_partitions(10, cores) == cores
    # Paths are not opened here: names are enough to check the split.
    names = [f"file:/nowhere/{i:06d}.jpg" for i in range(3 * cores * FILES_PER_TASK)]
    df = paths_frame(spark, names)
    sizes = df.rdd.glom().map(len).collect()  # type: ignore[attr-defined]
    assert len(sizes) == 3 * cores and max(sizes) - min(sizes) <= 1
    assert [r["path"] for r in df.collect()] == names


def test_public_list_paths_feeds_the_predictor(spark: object, folder: Path) -> None:
    import deepspark

    df = deepspark.list_paths(spark, str(folder), glob="*.png", num_partitions=2)
    assert df.columns == ["path"] and df.rdd.getNumPartitions() == 2
    rows = deepspark.DeepImagePredictor(inputCol="path", topK=1).transform(df).collect()
    assert sorted(r["path"] for r in rows) == listed_paths(spark, str(folder), glob="*.png")
    assert rows and all(r["error"] is None and len(r["predictions"]) == 1 for r in rows)


def test_missing_input_says_so(spark: object, tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="no such file or folder"):
        listed_paths(spark, str(tmp_path / "nope"))


def test_predictor_gives_every_listed_path_a_row(spark: object, folder: Path) -> None:
    """Empty, broken and deleted-after-listing files fail their own rows only."""
    import deepspark

    listed = listed_paths(spark, str(folder))
    (folder / "sub" / "deeper.jpg").unlink()  # deleted between listing and the job
    rows = (
        deepspark.DeepImagePredictor(inputCol="path", topK=1)
        .transform(paths_frame(spark, listed))
        .select("path", "predictions", "error")
        .collect()
    )
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert sorted(by_name) == _names(listed) and len(rows) == len(listed)
    for bad in ("empty.jpg", "broken.jpg", "deeper.jpg"):
        assert by_name[bad]["predictions"] is None and by_name[bad]["error"], bad
    good = [r for n, r in by_name.items() if n not in ("empty.jpg", "broken.jpg", "deeper.jpg")]
    assert good and all(r["error"] is None and r["predictions"] for r in good)

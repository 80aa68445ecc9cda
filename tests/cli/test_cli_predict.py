"""``deepspark predict`` end to end: rows written, progress and summary, quiet, exit codes."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from deepspark.cli.main import main

BAD_FILES = {"truncated.jpg", "empty.jpg", "notes.jpg"}


@pytest.fixture(autouse=True)
def _spark(cli_spark: object) -> None:
    """Every test here runs in the CLI tests' Spark session (the ``predicted`` run too)."""


def test_predict_writes_one_row_per_file(predicted: dict, mixed_dir: Path) -> None:
    assert predicted["code"] == 0
    rows = pq.read_table(predicted["output"]).to_pylist()
    names = sorted(Path(r["path"]).name for r in rows)
    assert names == sorted(os.listdir(mixed_dir))
    for row in rows:
        name = Path(row["path"]).name
        if name in BAD_FILES:
            assert row["predictions"] is None and row["error"], name
        else:
            assert row["error"] is None and len(row["predictions"]) == 3, name
    cat = next(r for r in rows if r["path"].endswith("chelsea.png"))
    assert "cat" in cat["predictions"][0]["description"]


def test_progress_and_summary_in_plain_lines(predicted: dict, mixed_dir: Path) -> None:
    out = predicted["stdout"]
    total = len(os.listdir(mixed_dir))
    progress = [line for line in out.splitlines() if line.startswith("progress")]
    assert progress, out
    assert f"{total}/{total} files (100%)" in progress[-1] and "done" in progress[-1]
    assert "\x1b[" not in out  # plain text when stdout is not a terminal
    # summary: rows, ok/errors, errors by reason, throughput, output path
    assert f"{total} files: {total - len(BAD_FILES)} ok, {len(BAD_FILES)} errors" in out
    assert "files/s" in out
    assert "empty file (0 bytes)" in out and "truncated" in out
    assert f"results: {predicted['output']}" in out


def test_quiet_prints_nothing(
    photos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.json"
    assert main(["predict", str(photos_dir), "-q", "--output", str(out), "--limit", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    lines = [json.loads(x) for f in out.glob("part-*.json") for x in f.read_text().splitlines()]
    assert len(lines) == 2 and all(x["predictions"] for x in lines)
    # --limit keeps the first files by path, one task per core.
    first = sorted(p.name for p in photos_dir.iterdir())[:2]
    assert sorted(Path(x["path"]).name for x in lines) == first
    assert len([f for f in out.glob("part-*.json") if f.read_text().strip()]) == 2


def test_csv_output(photos_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.csv"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["predict", str(photos_dir), "--output", str(out), "--show", "0"]) == 0
    import pandas as pd

    frame = pd.concat(pd.read_csv(f) for f in out.glob("part-*.csv"))
    assert len(frame) == len(os.listdir(photos_dir))
    assert all(json.loads(p)[0]["probability"] > 0 for p in frame["predictions"])


def test_json_output_without_any_error_prints_the_table(photos_dir: Path, tmp_path: Path) -> None:
    # Spark's JSON writer drops a column that is null in every row (here: error).
    out = tmp_path / "p.json"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["predict", str(photos_dir), "--output", str(out), "--top-k", "1"]) == 0
    text = stdout.getvalue()
    assert "chelsea.png" in text and "0 errors" in text
    # ...so deepspark keeps null fields: every line of the files names every column.
    lines = [json.loads(x) for f in out.glob("part-*.json") for x in f.read_text().splitlines()]
    assert len(lines) == len(os.listdir(photos_dir))
    assert all(set(x) == {"path", "predictions", "error"} and x["error"] is None for x in lines)


def test_broken_model_file_fails_with_one_line(
    photos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    assert main(["predict", str(photos_dir), "--model", str(bad), "-q"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("deepspark predict: failed:"), err


def test_cli_process_keeps_spark_noise_out(photos_dir: Path, tmp_path: Path) -> None:
    """The real console script in a fresh process: stderr clean, Spark's log in a file."""
    out = tmp_path / "p.parquet"
    env = dict(os.environ, DEEPSPARK_CACHE_DIR=str(tmp_path / "cache"))
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "deepspark.cli.main", "predict", str(photos_dir),
         "--limit", "2", "--output", str(out), "--master", "local[1]", "--verbose"],
        check=False, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: Using incubator modules" not in proc.stderr
    assert "Setting default log level" not in proc.stderr
    assert "2/2 files (100%)" in proc.stdout and "2 files: 2 ok, 0 errors" in proc.stdout
    logs = list((tmp_path / "cache" / "logs").glob("spark-*.log"))
    assert len(logs) == 1
    assert "Spark's log: " + str(logs[0]) in proc.stderr  # --verbose says where it is
    log_text = logs[0].read_text()
    assert "Using incubator modules" in log_text  # the JVM's own stderr went to the file
    # log4j2.properties keeps Spark at ERROR: no shell-style reset of the level to WARN
    assert "Setting default log level" not in log_text
    assert pq.read_table(out).num_rows == 2


def test_jvm_that_cannot_start_points_to_the_log(photos_dir: Path, tmp_path: Path) -> None:
    """No usable Java: exit 1, one line naming the cause and the log that has the details."""
    env = dict(os.environ, DEEPSPARK_CACHE_DIR=str(tmp_path), JAVA_HOME=str(tmp_path / "no-java"))
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "deepspark.cli.main", "predict", str(photos_dir)],
        check=False, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Java" in lines[0], proc.stderr
    log = Path(lines[0].split("Spark's log: ")[1].rstrip(")"))
    assert str(tmp_path / "no-java") in log.read_text()


def test_empty_input_warns_and_failed_write_names_the_java_cause(
    photos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No input files: exit 0 with a warning saying why nothing shows. An output Spark
    cannot create: one line with the Java cause ("Parent path is not a directory: ..."), not only the
    Py4J call that failed ("An error occurred while calling o99.save")."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(empty), "--show", "0"]) == 0
    err = capsys.readouterr().err
    assert "warning: no input files in" in err and str(empty) in err
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    one = photos_dir / sorted(os.listdir(photos_dir))[0]
    assert main(["predict", str(one), "-o", str(blocker / "out.parquet"), "-q"]) == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Parent path is not a directory" in lines[0], lines
    assert str(blocker) in lines[0]
    assert "An error occurred while calling" not in lines[0]


def test_recheck_margin_reruns_int8_rows_in_float(photos_dir: Path, tmp_path: Path) -> None:
    """``--quantize int8 --recheck-margin 1`` re-runs every row (no two probabilities
    differ by 1) with the float model: the float results come out; without int8 the
    option is a usage error."""
    import numpy as np

    def predict(*extra: str) -> dict[str, list]:
        out = tmp_path / f"p{len(extra)}.parquet"
        assert main(["predict", str(photos_dir), "-o", str(out), "-q", *extra]) == 0
        return {r["path"]: r["predictions"] for r in pq.read_table(out).to_pylist()}

    fp32 = predict()
    int8 = predict("--quantize", "int8")
    checked = predict("--quantize", "int8", "--recheck-margin", "1")
    assert fp32.keys() == checked.keys() and len(fp32) == len(os.listdir(photos_dir))
    for path, want in fp32.items():
        assert [p["class"] for p in checked[path]] == [p["class"] for p in want]
        got = [p["probability"] for p in checked[path]]
        assert np.allclose(got, [p["probability"] for p in want], atol=1e-5)
    assert any(int8[k] != fp32[k] for k in fp32)  # int8 alone differs
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(["predict", str(photos_dir), "--recheck-margin", "0.1", "-q"]) == 2
    assert "needs --quantize int8" in stderr.getvalue()


def test_own_model_file_with_its_size_labels_and_normalisation(
    photos_dir: Path, tmp_path: Path
) -> None:
    """``--model FILE`` with ``--input-size``, ``--labels``, ``--mean``/``--std``: the
    rows are the Python API's with the same settings, under the file's class names;
    the options are refused with a named model."""
    import deepspark
    from tests.reliability._reliability import tiny_onnx_classifier

    model = tiny_onnx_classifier(tmp_path / "tiny.onnx", size=48, classes=4)
    labels = tmp_path / "labels.txt"
    labels.write_text("apple\nbanana\ncherry\ndate\n")
    out = tmp_path / "own.parquet"
    own = ["--input-size", "48", "48", "--labels", str(labels)]
    own += ["--mean", "0.5", "0.5", "0.5", "--std", "0.25", "0.25", "0.25"]
    assert main(["predict", str(photos_dir), "--model", str(model), "-o", str(out), "-q", *own]) == 0
    rows = {r["path"]: r["predictions"] for r in pq.read_table(out).to_pylist()}
    assert len(rows) == len(os.listdir(photos_dir))

    spark = deepspark.session()
    files = deepspark.list_paths(spark, str(photos_dir))
    want = deepspark.DeepImagePredictor(
        inputCol="path", model=str(model), inputSize=[48, 48], labels=str(labels),
        mean=[0.5] * 3, std=[0.25] * 3,
    ).transform(files).collect()  # fmt: skip
    assert {r["path"]: [p["class"] for p in r["predictions"]] for r in want} == {
        k: [p["class"] for p in v] for k, v in rows.items()
    }
    assert {p["class"] for v in rows.values() for p in v} <= {"apple", "banana", "cherry", "date"}

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(["predict", str(photos_dir), "--input-size", "48", "48", "-q"]) == 2
    assert "--input-size describe your own model file" in stderr.getvalue()

"""``deepspark embed``: text files -> embeddings file, same conventions as ``predict``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepspark.cli.main import main


@pytest.fixture(scope="module")
def notes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("notes")
    (root / "a.txt").write_text("The cat sleeps on the sofa.\nA kitten naps on the couch.\n")
    (root / "b.txt").write_text("The cat sleeps on the sofa.\n")
    (root / "latin1.txt").write_bytes("Déjà vu\n".encode("latin-1"))
    return root


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse exits on its own errors
        return int(exc.code or 0)


def test_embed_lines_to_parquet(
    cli_spark, notes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "emb.parquet"
    argv = ["embed", str(notes_dir), "--unit", "line", "--output", str(out), "--batch-size", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "4 lines: 3 ok, 1 errors" in printed and "not valid utf-8" in printed
    assert "error: not valid utf-8" in printed  # the table's row, readable at 80 columns
    rows = cli_spark.read.parquet(str(out)).collect()
    assert sorted(rows[0].asDict()) == ["embedding", "error", "origin", "text"]
    # The same line in two files has the same embedding, and a paraphrase is close.
    same = [np.array(r.embedding) for r in rows if r.text == "The cat sleeps on the sofa."]
    assert len(same) == 2 and np.allclose(same[0], same[1], atol=1e-6)
    kitten = np.array(next(r.embedding for r in rows if r.text and "kitten" in r.text))
    assert same[0].shape == (384,) and np.linalg.norm(same[0]) == pytest.approx(1.0, abs=1e-5)
    assert same[0] @ kitten > 0.5
    bad = [r for r in rows if r.text is None]
    assert len(bad) == 1 and bad[0].embedding is None and "utf-8" in bad[0].error


def test_embed_paragraphs_to_csv_with_encoding(
    cli_spark, notes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "emb.csv"
    argv = ["embed", str(notes_dir), "--unit", "paragraph", "--encoding", "latin-1", "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 paragraphs: 3 ok, 0 errors" in printed
    # Paragraphs are not known ahead: progress counts the files they come from.
    files = sum(1 for p in notes_dir.iterdir() if not p.name.startswith((".", "_")))
    assert f"progress: {files}/{files} files (100%)" in printed
    rows = (
        cli_spark.read.option("header", "true")
        .option("escape", '"')
        .option("multiLine", "true")
        .csv(str(out))
        .collect()
    )
    texts = sorted(r.text for r in rows)
    # a.txt's two lines are one paragraph (quoted, with its line break, in the CSV).
    assert texts == [
        "Déjà vu",
        "The cat sleeps on the sofa.",
        "The cat sleeps on the sofa.\nA kitten naps on the couch.",
    ]
    assert all(len(json.loads(r.embedding)) == 384 for r in rows)


def test_embed_files_to_json_quiet(
    cli_spark, notes_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "emb.json"
    assert main(["embed", str(notes_dir), "-o", str(out), "-q", "--limit", "2"]) == 0
    assert capsys.readouterr().out == ""
    rows = cli_spark.read.json(str(out)).collect()
    assert len(rows) == 2 and "text" not in rows[0].asDict()  # whole files: text not repeated
    # The 2 rows kept by --limit were embedded in 2 tasks (local[2]), not after a LIMIT
    # in one: one part file per task that wrote rows.
    assert len([p for p in out.glob("part-*.json") if p.read_text().strip()]) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["embed", "/no/such/dir"], "no such file"),
        (["embed", ".", "--model", "no-such-model"], "unknown model"),
        (["embed", ".", "--model", "efficientnet_lite0"], "not a text-embedding"),
        (["embed", ".", "--model", "./no/such/folder"], "no such model folder"),
        (["embed", ".", "--unit", "sentence"], "invalid choice"),
        (["embed", ".", "--encoding", "bogus"], "unknown encoding 'bogus'"),
        (["embed", ".", "--output", "out.txt"], "out.txt"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("deepspark embed: error:") and message in err[0]

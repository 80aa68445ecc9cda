"""``deepspark embed``: text files -> embeddings file, same conventions as ``predict``."""

from __future__ import annotations

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


def test_embed_lines_to_parquet(spark, notes_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "emb.parquet"
    code = main(["embed", str(notes_dir), "--unit", "line", "--output", str(out), "--batch-size", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "4 texts, 3 embedded, 1 errors" in printed
    rows = spark.read.parquet(str(out)).collect()
    assert sorted(rows[0].asDict()) == ["embedding", "error", "origin", "text"]
    by_text = {r.text: r for r in rows if r.text is not None}
    assert len(by_text) == 2  # the same line in two files has the same embedding...
    same = [np.array(r.embedding) for r in rows if r.text == "The cat sleeps on the sofa."]
    assert len(same) == 2 and np.allclose(same[0], same[1], atol=1e-6)
    cat = same[0]
    kitten = np.array(by_text["A kitten naps on the couch."].embedding)
    assert cat.shape == (384,) and np.linalg.norm(cat) == pytest.approx(1.0, abs=1e-5)
    assert cat @ kitten > 0.5  # ...and a paraphrase is close
    bad = [r for r in rows if r.text is None]
    assert len(bad) == 1 and bad[0].embedding is None and "utf-8" in bad[0].error


def test_embed_files_to_json_with_encoding(spark, notes_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb.json"
    code = main(["embed", str(notes_dir), "--encoding", "latin-1", "-o", str(out), "-q"])
    assert code == 0
    rows = spark.read.json(str(out)).collect()
    assert len(rows) == 3
    assert all(r.asDict().get("error") is None and len(r.embedding) == 384 for r in rows)
    assert "text" not in rows[0].asDict()  # whole files: the text is not repeated


@pytest.mark.parametrize(
    "argv, message",
    [
        (["embed", "/no/such/dir"], "no such file"),
        (["embed", ".", "--model", "no-such-model"], "unknown model"),
        (["embed", ".", "--model", "efficientnet_lite0"], "image-classification"),
        (["embed", ".", "--output", "out.txt"], "output format"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err

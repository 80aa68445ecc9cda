"""``deepspark featurize``: real photos, real model, every output format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepspark.cli.main import main


@pytest.fixture(scope="module")
def features_parquet(spark, mixed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "features.parquet"
    code = main(["featurize", str(mixed_dir), "--output", str(out), "--batch-size", "2", "-q"])
    assert code == 0
    return out


def test_writes_features_and_errors(spark, features_parquet: Path) -> None:
    rows = {Path(r.path).name: r for r in spark.read.parquet(str(features_parquet)).collect()}
    assert set(rows) == {
        "chelsea.png",
        "coffee.png",
        "rocket.jpg",
        "truncated.jpg",
        "empty.jpg",
        "notes.jpg",
    }
    for name in ("chelsea.png", "coffee.png", "rocket.jpg"):
        values = np.array(rows[name].features)
        assert values.shape == (1280,) and rows[name].error is None
        assert values.min() >= 0 and np.count_nonzero(values) > 100
    for name in ("truncated.jpg", "empty.jpg", "notes.jpg"):
        assert rows[name].features is None and rows[name].error


def test_json_csv_limit_and_table(spark, photos_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "f.json"
    assert main(["featurize", str(photos_dir), "-o", str(out), "--limit", "2"]) == 0
    printed = capsys.readouterr().out
    assert "progress: 2/2 files (100%)" in printed
    assert "2 files: 2 ok, 0 errors" in printed and "1280" in printed
    rows = spark.read.json(str(out)).collect()
    assert len(rows) == 2 and all(len(r.features) == 1280 for r in rows)

    csv = tmp_path / "f.csv"
    assert main(["featurize", str(photos_dir / "chelsea.png"), "-o", str(csv), "-q"]) == 0
    row = spark.read.option("header", "true").csv(str(csv)).first()
    assert len(json.loads(row.features)) == 1280


@pytest.mark.parametrize(
    "argv, message",
    [
        (["featurize", "/no/such/folder"], "no such file or folder"),
        (["featurize", ".", "--output", "features.txt"], "cannot tell the output format"),
        (["featurize", ".", "--model", "no_such_model"], "unknown model"),
        (["featurize", ".", "--batch-size", "0"], None),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str | None, capsys) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects bad option values itself
        code = exc.code
    assert code == 2
    if message:
        assert message in capsys.readouterr().err


def test_help_lists_featurize(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "featurize" in capsys.readouterr().out

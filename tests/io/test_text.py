"""read_text: one row per file, line or paragraph; undecodable files are error rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import deepspark
from deepspark.io.text import split_units

GOOD = {
    "unix.txt": "First line.\nSecond line.\n\nThird, after a blank line.\n",
    "windows.txt": "Line one\r\nLine two\r\n\r\n\r\nLine five, no final break",
    "my notes.md": "Café crème — naïve façade ✓\nSecond\n",
}
LATIN1 = "Crème brûlée à la française\n".encode("latin-1")


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("texts")
    (root / "sub").mkdir()
    for name, text in GOOD.items():
        (root / name).write_bytes(text.encode("utf-8"))
    (root / "sub" / "latin1.txt").write_bytes(LATIN1)
    (root / "empty.txt").write_bytes(b"")
    (root / "bom.txt").write_bytes("\ufeffWith a byte-order mark".encode("utf-8"))
    return root


def _by_name(rows) -> dict[str, list]:
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(Path(row.origin).name.replace("%20", " "), []).append(row)
    return out


def test_file_unit_one_row_per_file_and_bad_encoding_is_an_error_row(spark, text_dir: Path) -> None:
    df = deepspark.read_text(spark, str(text_dir))
    assert df.columns == ["origin", "text", "error"]
    rows = _by_name(df.collect())
    assert sorted(rows) == sorted([*GOOD, "latin1.txt", "empty.txt", "bom.txt"])
    assert all(len(r) == 1 for r in rows.values())
    for name, text in GOOD.items():
        assert rows[name][0].text == text and rows[name][0].error is None
    assert rows["empty.txt"][0].text == "" and rows["empty.txt"][0].error is None
    assert rows["bom.txt"][0].text == "With a byte-order mark"
    bad = rows["latin1.txt"][0]
    assert bad.text is None
    assert "not valid utf-8" in bad.error and "0xe8" in bad.error and "encoding=" in bad.error


def test_other_encoding_glob_and_recursion(spark, text_dir: Path) -> None:
    rows = deepspark.read_text(spark, str(text_dir), encoding="latin-1", glob="latin*").collect()
    assert [(r.text, r.error) for r in rows] == [(LATIN1.decode("latin-1"), None)]


def test_lines_and_origins_equal_spark_text_source(spark, text_dir: Path) -> None:
    from pyspark.sql import functions as F

    ours = deepspark.read_text(spark, str(text_dir), unit="line")
    theirs = spark.read.text(str(text_dir)).select(
        F.input_file_name().alias("origin"), F.col("value").alias("text")
    )
    good = [n for n in GOOD] + ["bom.txt"]

    def lines(rows) -> dict[str, list[str]]:
        return {n: [r.text for r in rs] for n, rs in _by_name(rows).items() if n in good}

    got = lines(ours.collect())
    want = lines(theirs.collect())
    want["bom.txt"] = [t.lstrip("\ufeff") for t in want["bom.txt"]]  # Spark keeps the BOM
    assert got == want
    # Origins are the same strings as Spark's (URI form, percent-encoded space).
    assert {r.origin for r in ours.collect() if "notes" in r.origin} == {
        r.origin for r in theirs.collect() if "notes" in r.origin
    }
    # No lines in an empty file; an undecodable file still gives one error row.
    by_name = _by_name(ours.collect())
    assert "empty.txt" not in by_name
    assert [r.text for r in by_name["latin1.txt"]] == [None]


def test_paragraph_unit(spark, text_dir: Path) -> None:
    rows = _by_name(deepspark.read_text(spark, str(text_dir), unit="paragraph").collect())
    assert [r.text for r in rows["unix.txt"]] == [
        "First line.\nSecond line.",
        "Third, after a blank line.",
    ]
    assert [r.text for r in rows["windows.txt"]] == [
        "Line one\r\nLine two",
        "Line five, no final break",
    ]
    assert rows["latin1.txt"][0].error is not None and rows["latin1.txt"][0].text is None


def test_utf16_file_error_names_utf16_and_it_then_reads(spark, tmp_path: Path) -> None:
    """A UTF-16 file (byte-order mark FF FE) is not valid UTF-8; the error says to pass
    encoding='utf-16', which reads it. latin-1, the hint for other non-UTF-8 files,
    would "read" it as text full of NUL characters."""
    (tmp_path / "notes16.txt").write_bytes("héllo wörld\nsecond line\n".encode("utf-16"))
    [row] = deepspark.read_text(spark, str(tmp_path)).collect()
    assert row["text"] is None and "encoding='utf-16'" in row["error"]
    [row] = deepspark.read_text(spark, str(tmp_path), encoding="utf-16").collect()
    assert row["error"] is None and row["text"] == "héllo wörld\nsecond line\n"


def test_bad_arguments_raise_before_any_task(spark, tmp_path: Path) -> None:
    with pytest.raises(deepspark.InvalidParameterError, match="unit"):
        deepspark.read_text(spark, str(tmp_path), unit="sentence")
    with pytest.raises(deepspark.InvalidParameterError, match="encoding"):
        deepspark.read_text(spark, str(tmp_path), encoding="no-such-codec")
    with pytest.raises(deepspark.InputNotFoundError):
        deepspark.read_text(spark, str(tmp_path / "missing"))


@given(
    st.lists(st.text(alphabet="ab \t", max_size=5), max_size=6),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_split_lines_inverts_joining(lines: list[str], newline: str) -> None:
    text = "".join(line + newline for line in lines)
    assert split_units(text, "line") == lines


@given(st.lists(st.text(alphabet="xy .", min_size=1, max_size=5).filter(str.strip), max_size=5))
def test_split_paragraphs_inverts_joining(paragraphs: list[str]) -> None:
    text = "\n\n  \n".join(paragraphs)
    assert split_units(text, "paragraph") == [p.strip() for p in paragraphs]

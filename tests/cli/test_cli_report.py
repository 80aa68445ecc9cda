"""``deepspark report``: a self-contained HTML page, rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepspark.cli.main import main
from deepspark.cli.report import pca_2d

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: `make test` installs it (DEEPSPARK_INSTALL_TEST_TOOLS=1 "
    "scripts/install.sh), or `apt-get install chromium`",
)


def chromium(page: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``page`` with networking and background services off."""
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-extensions", f"--user-data-dir={tmp_path / 'chromium'}",
        *args, page.resolve().as_uri(),
    ]  # fmt: skip
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


class ElementCounter(HTMLParser):
    """Counts elements by class name and collects resource URLs (src/href)."""

    def __init__(self) -> None:
        super().__init__()
        self.classes: dict[str, int] = {}
        self.urls: list[str] = []
        self.tags: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name == "class" and value:
                for cls in value.split():
                    self.classes[cls] = self.classes.get(cls, 0) + 1
            if name in ("src", "href") and value:
                self.urls.append(value)


def parse(html_text: str) -> ElementCounter:
    counter = ElementCounter()
    counter.feed(html_text)
    return counter


def render(page: Path, tmp_path: Path) -> tuple[ElementCounter, float]:
    """(elements of the rendered DOM, pixel variance of a screenshot)."""
    from PIL import Image, ImageStat

    shot = tmp_path / "shot.png"
    proc = chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,1600")
    assert shot.exists(), proc.stderr[-2000:]
    with Image.open(shot) as img:
        variance = ImageStat.Stat(img.convert("L")).var[0]
    dom = chromium(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    return parse(dom.stdout), variance


def assert_self_contained(html_text: str) -> None:
    urls = parse(html_text).urls
    assert urls, "thumbnails are expected"
    assert all(u.startswith("data:image/jpeg;base64,") for u in urls), urls[:3]
    assert not re.search(r"url\(\s*['\"]?https?:", html_text)
    assert "<script" not in html_text and "<link" not in html_text


@needs_chromium
def test_prediction_report_renders(predicted: dict, mixed_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert main(["report", str(predicted["output"]), "--output", str(page), "-q"]) == 0
    html_text = page.read_text()
    assert_self_contained(html_text)

    rows = pq.read_table(predicted["output"]).to_pylist()
    dom, variance = render(page, tmp_path)
    assert dom.classes.get("card") == len(rows)
    n_failed = sum(1 for r in rows if r["error"])
    assert dom.classes.get("failed") == n_failed == 3
    # a thumbnail for every row whose file is an image
    assert dom.tags.get("img") == len(rows) - n_failed
    assert variance > 100, f"screenshot looks blank (pixel variance {variance:.1f})"
    # every error reason and every top class is on the page
    for row in rows:
        if row["error"]:
            assert row["error"] in html_text
        else:
            assert row["predictions"][0]["description"].split(",")[0] in html_text


@needs_chromium
def test_embedding_report_has_a_projection(photos_dir: Path, tmp_path: Path) -> None:
    """Vectors in three clusters: one point per row, and the clusters stay apart."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 64)) * 10
    labels = np.repeat(np.arange(3), 10)
    vectors = centers[labels] + rng.normal(size=(30, 64))
    photos = sorted(p.resolve().as_uri() for p in photos_dir.iterdir())
    results = tmp_path / "embeddings.parquet"
    results.mkdir()
    table = pa.table(
        {
            "path": [photos[i % len(photos)] for i in range(30)],
            "embedding": pa.array(vectors.astype(np.float32).tolist(), pa.list_(pa.float32())),
            "error": pa.array([None] * 30, pa.string()),
        }
    )
    pq.write_table(table, results / "part-00000.parquet")
    page = tmp_path / "emb.html"
    assert main(["report", str(results), "-o", str(page), "-q"]) == 0
    html_text = page.read_text()
    assert_self_contained(html_text)

    dom, variance = render(page, tmp_path)
    assert dom.classes.get("card") == 30
    assert dom.classes.get("pt") == 30
    assert variance > 100

    points = [
        (float(x), float(y))
        for x, y in re.findall(r'class="pt" cx="([\d.]+)" cy="([\d.]+)"', html_text)
    ]
    xy = np.array(points)
    cluster_means = np.array([xy[labels == k].mean(axis=0) for k in range(3)])
    spread = max(np.linalg.norm(xy[labels == k] - cluster_means[k], axis=1).max() for k in range(3))
    gaps = [
        np.linalg.norm(cluster_means[a] - cluster_means[b]) for a, b in ((0, 1), (0, 2), (1, 2))
    ]
    assert min(gaps) > spread, (gaps, spread)


def test_pca_matches_scikit_learn() -> None:
    from sklearn.decomposition import PCA

    x = np.random.default_rng(1).normal(size=(50, 8)) * np.arange(1, 9)
    coords, explained = pca_2d(x)
    ref = PCA(n_components=2).fit(x)
    expected = ref.transform(x)
    for k in range(2):  # a principal axis is defined up to its sign
        assert np.allclose(np.abs(coords[:, k]), np.abs(expected[:, k]), atol=1e-8)
    assert np.allclose(explained, ref.explained_variance_ratio_)


def test_report_reads_json_and_csv_results(
    predicted: dict, cli_spark: object, tmp_path: Path
) -> None:
    """The same rows written as JSON and CSV give the same cards and error counts."""
    from deepspark.cli.output import write_results
    from deepspark.cli.report import analyse, load_rows

    spark = cli_spark
    df = spark.read.parquet(str(predicted["output"]))  # type: ignore[attr-defined]
    base = analyse(load_rows(str(predicted["output"])), "t")
    for ext in ("json", "csv"):
        out = str(tmp_path / f"r.{ext}")
        write_results(df, out)
        data = analyse(load_rows(out), "t")
        assert len(data.rows) == len(base.rows)
        assert data.error_counts == base.error_counts
        assert data.class_counts == base.class_counts


def test_report_finds_files_whose_names_look_like_uri_syntax(
    photos_dir: Path, tmp_path: Path
) -> None:
    """``deepspark predict`` writes ``file:`` + the path as it is; names with ``#``,
    ``?`` or ``%20`` in them still get their thumbnail and their own name on the page."""
    import contextlib
    import io

    src = sorted(photos_dir.glob("*.jpg"))[0]
    folder = tmp_path / "odd"
    folder.mkdir()
    names = ["h#1.jpg", "q?.jpg", "x%20y.jpg", "plain.jpg"]
    for name in names:
        shutil.copyfile(src, folder / name)
    results = tmp_path / "odd.parquet"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["predict", str(folder), "--output", str(results), "-q"]) == 0
    page = tmp_path / "odd.html"
    assert main(["report", str(results), "--output", str(page), "-q"]) == 0
    html_text = page.read_text()
    assert len(parse(html_text).urls) == len(names)  # a thumbnail each
    for name in names:
        assert f">{name}<" in html_text, name

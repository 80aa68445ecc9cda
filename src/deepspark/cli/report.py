"""``deepspark report``: one self-contained HTML page from a results folder.

The page has a card per row (a thumbnail of the image read from the row's path, its
top-k classes and probabilities, or its error), the counts per predicted class, the
rows that failed with their reasons and, when the results hold vectors (embeddings or
features), a 2-D PCA projection drawn as an inline SVG scatter plot. Everything is
inline (thumbnails as data-URI JPEGs, CSS, SVG): the file can be mailed or attached
to a CI run and opened anywhere, with no network.

Results are read on the driver (they are one row per file, small next to the files);
local results are read with pyarrow/pandas without starting Spark.
"""

from __future__ import annotations

import argparse
import base64
import glob
import html
import io
import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from deepspark._logging import get_logger
from deepspark.cli.common import (
    EXIT_OK,
    UsageError,
    add_console_options,
    add_spark_options,
    console,
    example,
    positive_int,
    prepare,
)

log = get_logger(__name__)

__all__ = ["ReportData", "build_report", "load_rows", "pca_2d", "register", "run"]

_PATH_COLUMNS = ("path", "origin", "file", "filename")
_VECTOR_COLUMNS = ("embedding", "embeddings", "features", "vector", "vectors")
_PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
)  # fmt: skip
_OTHER_COLOR = "#9aa0a6"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write an HTML report of a results folder",
        description="Write one self-contained HTML file from the results of predict, featurize "
        "or embed: a card per row with its thumbnail and top classes, the errors with their "
        "reasons, counts per class, and a 2-D projection of embeddings or features.",
        epilog=example(
            "deepspark predict photos/ --output predictions.parquet",
            "deepspark report predictions.parquet --output report.html",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "results", metavar="RESULTS", help="results written with --output (.parquet, .json, .csv)"
    )
    p.add_argument(
        "-o", "--output", default="report.html", metavar="PATH", help="the HTML file to write"
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        default=1000,
        help="cards to draw at most (counts and the projection use every row)",
    )
    p.add_argument(
        "--thumb-size", type=positive_int, default=160, metavar="PX", help="thumbnail size"
    )
    p.add_argument("--title", default=None, help="page title (default: the results path)")
    add_console_options(p)
    add_spark_options(p)
    p.set_defaults(func=run)


# --------------------------------------------------------------------------------------
# Reading results
# --------------------------------------------------------------------------------------


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file:")


def _local(path: str) -> str:
    """``file:/a%20b.png`` / ``file:///a b.png`` / ``/a b.png`` -> ``/a b.png``.

    Spark's readers write URIs (``%20``, ``%23`` for ``#``); ``deepspark predict``
    writes ``file:`` + the path as it is, where ``#``, ``?`` and ``%`` are part of the
    name. The one that names an existing file wins; the URI reading otherwise.
    """
    if not path.startswith("file:"):
        return path
    decoded = unquote(urlsplit(path).path)
    raw = path[len("file:") :]
    raw = raw[2:] if raw.startswith("///") else raw  # file:///a -> /a
    return raw if not os.path.exists(decoded) and os.path.exists(raw) else decoded


def _part_files(path: str, patterns: Sequence[str]) -> list[str]:
    if os.path.isfile(path):
        return [path]
    found: list[str] = []
    for pat in patterns:
        found += glob.glob(os.path.join(path, "**", pat), recursive=True)
    return sorted(f for f in set(found) if not Path(f).name.startswith(("_", ".")))


def _decode_json_cells(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """CSV output stores nested values as JSON strings: turn them back into values."""
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and np.isnan(value):
                row[key] = None
            elif isinstance(value, str) and value[:1] in "[{":
                try:
                    row[key] = json.loads(value)
                except ValueError:
                    pass
    return rows


def load_rows(path: str, args: argparse.Namespace | None = None) -> list[dict[str, Any]]:
    """Rows of a results folder (or file) as dicts; the format follows the extension.

    Local results are read with pyarrow/pandas; remote ones (``s3a://``, ``hdfs://``...)
    through Spark.
    """
    suffix = Path(path.rstrip("/")).suffix.lower()
    if _is_remote(path):
        return _load_with_spark(path, args)
    local = _local(path)
    if not os.path.exists(local):
        raise UsageError(f"no such results file or folder: {path}")
    if suffix in (".json", ".jsonl"):
        import pandas as pd

        files = _part_files(local, ("*.json", "*.jsonl", "part-*"))
        frames = [pd.read_json(f, lines=True) for f in files if os.path.getsize(f)]
        if not frames:
            return []
        rows = pd.concat(frames, ignore_index=True).to_dict("records")
        return _decode_json_cells(rows)
    if suffix == ".csv":
        import pandas as pd

        files = _part_files(local, ("*.csv", "part-*"))
        frames = [pd.read_csv(f) for f in files if os.path.getsize(f)]
        if not frames:
            return []
        return _decode_json_cells(pd.concat(frames, ignore_index=True).to_dict("records"))
    import pyarrow.parquet as pq

    try:
        return pq.read_table(local).to_pylist()
    except Exception as exc:  # noqa: BLE001 - not Parquet: say what is accepted
        raise UsageError(
            f"cannot read {path} as Parquet ({str(exc).splitlines()[0]}); "
            "pass results written with --output: a .parquet, .json or .csv folder"
        ) from None


def _load_with_spark(path: str, args: argparse.Namespace | None) -> list[dict[str, Any]]:
    from deepspark.cli.common import spark_session
    from deepspark.cli.output import read_results

    spark = spark_session(args or argparse.Namespace(master=None, conf=[]))
    df = read_results(spark, path if Path(path).suffix else path + ".parquet")
    return _decode_json_cells([r.asDict(recursive=True) for r in df.collect()])


# --------------------------------------------------------------------------------------
# Understanding the columns
# --------------------------------------------------------------------------------------


def _as_vector(value: Any) -> list[float] | None:
    """A dense list of floats from an array or a Spark ML vector (as stored in Parquet)."""
    if value is None:
        return None
    if isinstance(value, dict) and "values" in value:  # VectorUDT: {type, size, indices, values}
        values = value.get("values") or []
        if value.get("type") == 0 and value.get("size") is not None:  # sparse
            dense = [0.0] * int(value["size"])
            for i, v in zip(value.get("indices") or [], values):
                dense[int(i)] = float(v)
            return dense
        return [float(v) for v in values]
    is_sequence = isinstance(value, (list, tuple, np.ndarray)) and len(value) > 1
    if is_sequence and all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value
    ):
        return [float(v) for v in value]
    return None


def _is_topk(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and isinstance(value[0], dict)
        and "probability" in value[0]
    )


def _first_match(rows: list[dict[str, Any]], names: Sequence[str], test: Any) -> str | None:
    """The column named like ``names`` (in order), else the first whose values pass ``test``."""
    columns = list(rows[0]) if rows else []
    for name in names:
        if name in columns and any(test(r.get(name)) for r in rows[:50]):
            return name
    for name in columns:
        if any(test(r.get(name)) for r in rows[:50]):
            return name
    return None


def _row_path(row: dict[str, Any], path_col: str | None) -> str | None:
    if path_col is None:
        return None
    value = row.get(path_col)
    if isinstance(value, dict):  # an image struct
        value = value.get("origin")
    return None if value is None else str(value)


@dataclass
class ReportData:
    """Everything the page shows, derived from the rows."""

    title: str
    rows: list[dict[str, Any]]
    path_col: str | None = None
    topk_col: str | None = None
    vector_col: str | None = None
    error_col: str | None = None
    speech_col: str | None = None
    class_counts: Counter[str] = field(default_factory=Counter)
    error_counts: Counter[str] = field(default_factory=Counter)
    speech_counts: Counter[str] = field(default_factory=Counter)


def _is_segments(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(s, dict) and "start" in s and "end" in s for s in value
    )


def analyse(rows: list[dict[str, Any]], title: str) -> ReportData:
    """Find the path, top-k, vector, speech and error columns and count classes, rows
    with and without speech, and errors."""
    data = ReportData(title=title, rows=rows)
    if not rows:
        return data
    data.path_col = _first_match(
        rows,
        _PATH_COLUMNS + ("image",),
        lambda v: isinstance(v, str) or (isinstance(v, dict) and "origin" in v),
    )
    data.topk_col = _first_match(rows, ("predictions",), _is_topk)
    data.vector_col = _first_match(rows, _VECTOR_COLUMNS, lambda v: _as_vector(v) is not None)
    data.speech_col = _first_match(rows, ("speech", "segments"), _is_segments)
    data.error_col = "error" if "error" in rows[0] else None
    for row in rows:
        err = row.get(data.error_col) if data.error_col else None
        if err:
            data.error_counts[str(err)] += 1
        elif data.topk_col and _is_topk(row.get(data.topk_col)):
            top = row[data.topk_col][0]
            data.class_counts[str(top.get("description") or top.get("class"))] += 1
        elif data.speech_col and _is_segments(row.get(data.speech_col)):
            data.speech_counts["with speech" if row[data.speech_col] else "without speech"] += 1
    return data


# --------------------------------------------------------------------------------------
# Thumbnails and the projection
# --------------------------------------------------------------------------------------


def thumbnail(path: str | None, size: int) -> str | None:
    """A ``data:image/jpeg;base64,...`` thumbnail of the image at ``path``, or None.

    None when the path is not local, not an image, or cannot be decoded (the card then
    shows the file name only).
    """
    if not path or _is_remote(path):
        return None
    from PIL import Image, ImageOps

    try:
        with Image.open(_local(path)) as img:
            img.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale
            img = ImageOps.exif_transpose(img)
            img = img.convert("RGB")
            img.thumbnail((size, size))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=80)
    except Exception:  # noqa: BLE001 - a file that is not a readable image gets no thumbnail
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pca_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project ``vectors`` (n, d) on their first two principal components.

    Returns ``(coords, explained)``: coords (n, 2) and the variance share of each axis.

    Examples
    --------
    >>> import numpy as np
    >>> coords, explained = pca_2d(np.array([[0.0, 0, 0], [1, 1, 0], [2, 2, 0.1]]))
    >>> coords.shape, bool(explained[0] > 0.99)
    ((3, 2), True)
    """
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(2, vt.shape[0])
    coords = np.zeros((x.shape[0], 2))
    coords[:, :k] = x @ vt[:k].T
    var = s**2
    explained = np.zeros(2)
    if var.sum() > 0:
        explained[:k] = var[:k] / var.sum()
    return coords, explained


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------

_CSS = """
:root { --fg:#202124; --muted:#5f6368; --line:#dadce0; --bar:#4e79a7; --err:#c5221f; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); margin: 24px; background: #f8f9fa; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; }
.muted { color: var(--muted); }
.stats { display: flex; gap: 12px; margin: 14px 0; flex-wrap: wrap; }
.stat { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; }
.stat b { display: block; font-size: 22px; }
table { border-collapse: collapse; background: #fff; }
td, th { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
.barcell { width: 260px; } .bar { height: 10px; background: var(--bar); border-radius: 2px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px;
        overflow: hidden; }
.card.failed { border-color: var(--err); }
.thumb { height: 160px; display: flex; align-items: center; justify-content: center;
         background: #eceff1; border-radius: 4px; overflow: hidden; }
.thumb img { max-width: 100%; max-height: 100%; }
.thumb .none { color: var(--muted); font-size: 12px; }
.name { font-weight: 600; margin: 6px 0 4px; word-break: break-all; font-size: 13px; }
.label { display: flex; justify-content: space-between; gap: 6px; font-size: 12px; }
.label .p { color: var(--muted); font-variant-numeric: tabular-nums; }
.pbar { height: 4px; background: var(--bar); border-radius: 2px; margin-bottom: 3px; }
.error { color: var(--err); font-size: 12px; }
svg { background: #fff; border: 1px solid var(--line); border-radius: 8px; }
.legend span { display: inline-block; margin-right: 12px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
            margin-right: 4px; vertical-align: middle; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _name(path: str | None, index: int) -> str:
    return Path(_local(path)).name if path else f"row {index + 1}"


def _card(row: dict[str, Any], index: int, data: ReportData, thumb: str | None) -> str:
    path = _row_path(row, data.path_col)
    err = row.get(data.error_col) if data.error_col else None
    parts = [f'<div class="card{" failed" if err else ""}" data-row="{index}">']
    if thumb:
        parts.append(f'<div class="thumb"><img alt="{_e(_name(path, index))}" src="{thumb}"></div>')
    else:
        parts.append('<div class="thumb"><span class="none">no preview</span></div>')
    parts.append(f'<div class="name" title="{_e(path or "")}">{_e(_name(path, index))}</div>')
    if err:
        parts.append(f'<div class="error">{_e(err)}</div>')
    preds = row.get(data.topk_col) if data.topk_col else None
    if _is_topk(preds):
        for p in preds:
            prob = float(p.get("probability") or 0.0)
            label = p.get("description") or p.get("class") or "?"
            parts.append(
                f'<div class="label"><span>{_e(label)}</span><span class="p">{prob:.3f}</span></div>'
                f'<div class="pbar" style="width:{max(prob, 0.0) * 100:.1f}%"></div>'
            )
    segments = row.get(data.speech_col) if data.speech_col else None
    if not err and _is_segments(segments):
        ratio = row.get("speechRatio")
        if isinstance(ratio, (int, float)):
            parts.append(
                f'<div class="label"><span>speech</span><span class="p">{ratio:.0%}</span></div>'
                f'<div class="pbar" style="width:{min(max(ratio, 0.0), 1.0) * 100:.1f}%"></div>'
            )
        spans = ", ".join(f"{s['start']:.2f}-{s['end']:.2f} s" for s in segments[:4])
        more = f" and {len(segments) - 4} more" if len(segments) > 4 else ""
        parts.append(
            f'<div class="muted">{len(segments)} segment{"" if len(segments) == 1 else "s"}'
            f"{': ' + _e(spans) + more if segments else ''}</div>"
        )
    vec = _as_vector(row.get(data.vector_col)) if data.vector_col else None
    if vec is not None:
        norm = float(np.linalg.norm(vec))
        parts.append(
            f'<div class="muted">{_e(data.vector_col)}: {len(vec)} dims, norm {norm:.3g}</div>'
        )
    parts.append("</div>")
    return "".join(parts)


def _bars(counts: Counter[str], title: str, total: int) -> str:
    rows = []
    top = max(counts.values()) if counts else 1
    for label, n in counts.most_common():
        rows.append(
            f"<tr><td>{_e(label)}</td><td>{n}</td><td>{100 * n / max(total, 1):.1f}%</td>"
            f'<td class="barcell"><div class="bar" style="width:{100 * n / top:.1f}%"></div></td></tr>'
        )
    return (
        f"<table><tr><th>{_e(title)}</th><th>rows</th><th>share</th><th></th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _scatter(data: ReportData, width: int = 640, height: int = 440) -> str:
    """The PCA projection of the vector column as an inline SVG, coloured by top class."""
    points = []
    for i, row in enumerate(data.rows):
        vec = _as_vector(row.get(data.vector_col))
        if vec is not None:
            points.append((i, vec))
    if len(points) < 2:
        return '<p class="muted">fewer than two vectors: no projection.</p>'
    dims = Counter(len(v) for _, v in points).most_common(1)[0][0]
    points = [(i, v) for i, v in points if len(v) == dims]
    coords, explained = pca_2d(np.array([v for _, v in points]))
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    pad = 36  # room for the axes and their labels around the points
    xy = pad + (coords - lo) / span * np.array([width - 2 * pad, height - 2 * pad])
    colors = {
        label: _PALETTE[k]
        for k, (label, _) in enumerate(data.class_counts.most_common(len(_PALETTE)))
    }

    circles = []
    for (i, _), (x, y) in zip(points, xy):
        row = data.rows[i]
        label = ""
        if data.topk_col and _is_topk(row.get(data.topk_col)):
            top = row[data.topk_col][0]
            label = str(top.get("description") or top.get("class"))
        color = colors.get(label, _OTHER_COLOR if colors else _PALETTE[0])
        tip = _name(_row_path(row, data.path_col), i) + (f" ({label})" if label else "")
        circles.append(
            f'<circle class="pt" cx="{x:.1f}" cy="{height - y:.1f}" r="5" fill="{color}" '
            f'fill-opacity="0.8"><title>{_e(tip)}</title></circle>'
        )
    legend = "".join(
        f'<span><i style="background:{c}"></i>{_e(label)}</span>' for label, c in colors.items()
    )
    return (
        f'<p class="muted">{len(points)} vectors of {dims} dimensions from column '
        f"<code>{_e(data.vector_col)}</code>, projected on their first two principal components "
        f"(PC1 {100 * explained[0]:.1f}%, PC2 {100 * explained[1]:.1f}% of the variance).</p>"
        f'<svg id="projection" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="PCA projection">'
        f'<line x1="16" y1="{height - 16}" x2="{width - 8}" y2="{height - 16}" stroke="#dadce0"/>'
        f'<line x1="16" y1="8" x2="16" y2="{height - 16}" stroke="#dadce0"/>'
        f'<text x="{width / 2:.0f}" y="{height - 3}" font-size="11" fill="#5f6368">PC1</text>'
        f'<text x="12" y="{height / 2:.0f}" font-size="11" fill="#5f6368" '
        f'transform="rotate(-90 12 {height / 2:.0f})">PC2</text>'
        + "".join(circles)
        + f'</svg><div class="legend">{legend}</div>'
    )


def build_report(
    rows: list[dict[str, Any]],
    title: str,
    *,
    limit: int = 1000,
    thumb_size: int = 160,
) -> tuple[str, ReportData]:
    """The HTML page for ``rows`` and what was found in them.

    Examples
    --------
    >>> page, data = build_report([{"path": "x.png", "error": "empty file (0 bytes)"}], "t")
    >>> page.count('class="card failed"'), data.error_counts["empty file (0 bytes)"]
    (1, 1)
    """
    data = analyse(rows, title)
    shown = rows[:limit]
    paths = [_row_path(r, data.path_col) for r in shown]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        thumbs = list(pool.map(lambda p: thumbnail(p, thumb_size), paths))

    n_err = sum(data.error_counts.values())
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<div class="muted">deepspark report, {_e(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))}</div>',
        '<div class="stats">',
        f'<div class="stat"><b>{len(rows)}</b>rows</div>',
        f'<div class="stat"><b>{len(rows) - n_err}</b>ok</div>',
        f'<div class="stat"><b>{n_err}</b>errors</div>',
    ]
    if data.class_counts:
        body.append(f'<div class="stat"><b>{len(data.class_counts)}</b>classes</div>')
    body.append("</div>")
    if data.class_counts:
        body += ["<h2>Top class per row</h2>", _bars(data.class_counts, "class", len(rows))]
    if data.speech_counts:
        body += ["<h2>Speech</h2>", _bars(data.speech_counts, "files", len(rows))]
    if data.vector_col:
        body += ["<h2>Projection</h2>", _scatter(data)]
    if n_err:
        body += [
            "<h2>Errors</h2>",
            _bars(data.error_counts, "reason", len(rows)),
            '<table id="errors" style="margin-top:10px"><tr><th>file</th><th>reason</th></tr>',
        ]
        for i, row in enumerate(rows):
            err = row.get(data.error_col)
            if err:
                path = _row_path(row, data.path_col)
                body.append(f"<tr><td>{_e(path or f'row {i + 1}')}</td><td>{_e(err)}</td></tr>")
        body.append("</table>")
    note = f" (the first {len(shown)} of {len(rows)})" if len(shown) < len(rows) else ""
    body.append(f"<h2>Rows{note}</h2>")
    body.append('<div class="cards">')
    body += [_card(r, i, data, t) for i, (r, t) in enumerate(zip(shown, thumbs))]
    body.append("</div>")

    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    return page, data


def run(args: argparse.Namespace) -> int:
    prepare(args, paths=False)
    if not args.output.lower().endswith((".html", ".htm")):
        raise UsageError(f"--output must end with .html, got {args.output!r}")
    rows = load_rows(args.results, args)
    if not rows:
        raise UsageError(f"no rows in {args.results}: nothing to report")
    page, data = build_report(
        rows,
        args.title or f"deepspark: {args.results}",
        limit=args.limit,
        thumb_size=args.thumb_size,
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(page, encoding="utf-8")
    log.info("columns: path=%s top-k=%s vector=%s", data.path_col, data.topk_col, data.vector_col)
    n_err = sum(data.error_counts.values())
    console(args.quiet).print(
        f"report: {args.output} ({min(len(rows), args.limit)} cards, {len(rows)} rows, "
        f"{n_err} errors, {len(Path(args.output).read_bytes()) // 1024} KiB)",
        markup=False,
    )
    return EXIT_OK

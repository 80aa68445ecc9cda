"""``deepspark detect-speech``: find the speech in audio files with Silero VAD."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from deepspark.cli.common import (
    EXIT_OK,
    add_io_options,
    add_spark_options,
    check_local_paths,
    console,
    input_files,
    spark_session,
)


def _number(low: float, high: float | None = None) -> Any:
    """An argparse type: a number >= ``low`` (> ``low`` and < ``high`` when ``high`` is set)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if high is not None and not low < value < high:
            raise argparse.ArgumentTypeError(f"expected a number between {low} and {high}")
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a number >= {low}, got {value}")
        return value

    return parse


def register(sub: Any) -> None:
    p = sub.add_parser(
        "detect-speech",
        help="find the speech segments in audio files (Silero VAD)",
        description=(
            "Find where people speak in audio files (WAV, FLAC, OGG, MP3...) with the Silero "
            "VAD model that ships in the silero-vad package. Every file gives one row: its "
            "speech segments in seconds, the fraction of it that is speech, or an error."
        ),
        epilog="example: deepspark detect-speech recordings/ --output speech.parquet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_io_options(p)
    p.set_defaults(batch_size=16)
    p.add_argument(
        "--threshold", type=_number(0, 1), default=0.5, help="speech probability (default 0.5)"
    )
    p.add_argument(
        "--min-speech-ms", type=_number(0), default=250, help="shortest segment kept (250)"
    )
    p.add_argument("--min-silence-ms", type=_number(0), default=100, help="shortest pause (100)")
    add_spark_options(p)
    p.set_defaults(func=run)


def format_segments(segments: list[Any] | None, most: int = 6) -> str:
    """``"0.42-3.10, 4.00-5.25"`` (seconds), at most ``most`` segments then a count."""
    if not segments:
        return ""
    shown = [f"{s['start']:.2f}-{s['end']:.2f}" for s in segments[:most]]
    more = len(segments) - most
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def run(args: argparse.Namespace) -> int:
    from pyspark.sql import functions as F

    from deepspark.cli.output import output_format, read_results, write_results
    from deepspark.ml.audio import SpeechDetector

    check_local_paths(args.paths, args)
    fmt = output_format(args.output) if args.output else "parquet"  # bad extension: exit 2
    detector = SpeechDetector(  # bad settings raise here, before Spark starts
        inputCol="content",
        threshold=args.threshold,
        minSpeechMs=args.min_speech_ms,
        minSilenceMs=args.min_silence_ms,
        batchSize=args.batch_size,
    )
    detector._settings()

    out = console(args.quiet)
    started = time.time()
    spark = spark_session(args)
    files, _, column = input_files(spark, args, count=False)
    result = (
        detector.setInputCol(column)
        .transform(files)
        .select("path", "speech", "speechRatio", "error")
    )

    # Written once, then read back: the summary and table do not run the model again.
    workdir = None if args.output else tempfile.mkdtemp(prefix="deepspark-")
    target = args.output or os.path.join(str(workdir), "speech.parquet")
    try:
        write_results(result, target, fmt)
        written = read_results(spark, target, like=result)
        stats = written.agg(
            F.count(F.lit(1)).alias("files"),
            F.count("error").alias("errors"),
            F.sum(F.when(F.col("speechRatio") > 0, 1).otherwise(0)).alias("speaking"),
        ).first()
        if args.show and not args.quiet:
            _print_table(out, written.orderBy("path").limit(args.show).collect())
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if not args.quiet:
        n, errors, speaking = stats["files"], stats["errors"], stats["speaking"] or 0
        elapsed = time.time() - started
        out.print(
            f"{n} files, {speaking} with speech, {n - errors - speaking} without, "
            f"{errors} errors, {elapsed:.1f}s" + (f" -> {args.output}" if args.output else "")
        )
    return EXIT_OK


def _print_table(console: Any, rows: list[Any]) -> None:
    import json

    from rich.table import Table

    table = Table(show_lines=False)
    table.add_column("file", overflow="fold")
    table.add_column("speech (seconds)", overflow="fold")
    table.add_column("ratio", justify="right")
    table.add_column("error", overflow="fold")
    for row in rows:
        segments = row["speech"]
        if isinstance(segments, str):  # CSV output holds JSON strings
            segments = json.loads(segments) if segments else None
        ratio = row["speechRatio"]
        table.add_row(
            Path(str(row["path"])).name,
            format_segments(segments),
            "" if ratio is None else f"{float(ratio):.2f}",
            row["error"] or "",
        )
    console.print(table)

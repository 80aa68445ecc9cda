"""``deepspark detect-speech``: find the speech in audio files with Silero VAD."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from deepspark.cli.common import (
    add_io_options,
    add_spark_options,
    input_files,
    number,
    prepare,
    spark_session,
    write_and_summarize,
)


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
        "--threshold",
        type=number(0, 1),
        default=0.5,
        metavar="P",
        help="a frame is speech when the model's speech probability is above P, "
        "between 0 and 1 (default 0.5; lower finds more, and more noise)",
    )
    p.add_argument(
        "--min-speech-ms",
        type=number(0),
        default=250,
        metavar="MS",
        help="shorter speech segments are dropped, in milliseconds (default 250)",
    )
    p.add_argument(
        "--min-silence-ms",
        type=number(0),
        default=100,
        metavar="MS",
        help="shorter pauses do not end a segment, in milliseconds (default 100)",
    )
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

    from deepspark.cli.output import output_format
    from deepspark.ml.audio import SpeechDetector

    prepare(args)
    if args.output:
        output_format(args.output)  # an unknown extension: exit 2 before Spark starts
    detector = SpeechDetector(  # bad settings raise here, before Spark starts
        inputCol="content",
        threshold=args.threshold,
        minSpeechMs=args.min_speech_ms,
        minSilenceMs=args.min_silence_ms,
        batchSize=args.batch_size,
    )
    detector._settings()

    spark = spark_session(args)
    files, total, column = input_files(spark, args)
    result = (
        detector.setInputCol(column)
        .transform(files)
        .select("path", "speech", "speechRatio", "error")
    )

    def show(console: Any, written: Any) -> None:
        _print_table(console, written.orderBy("path").limit(args.show).collect())

    def speaking(written: Any) -> str:
        ratio = F.col("speechRatio")
        stats = written.agg(
            F.sum(F.when(ratio > 0, 1).otherwise(0)).alias("yes"),
            F.sum(F.when(ratio == 0, 1).otherwise(0)).alias("no"),
        ).first()
        return f"{stats['yes'] or 0} with speech, {stats['no'] or 0} without"

    # Written once, then read back: the summary and table do not run the model again.
    return write_and_summarize(args, spark, result, total=total, show=show, extra=speaking)


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

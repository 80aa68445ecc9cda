"""Readers: files on any Spark filesystem into DataFrames, one module per modality.

Files are decoded on the executors (local folders listed on the driver by Spark's
listing rules, other filesystems by Spark); a file that cannot be read or decoded
becomes a row with its ``error`` set, never a failed job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepspark._lazy import lazy_attributes

# Imported on first use: an executor unpickling a reader's function imports this
# package, and the text reader needs neither numpy nor the audio and image decoders.
_LAZY: dict[str, str] = {
    "read_images": "deepspark.io.images",
    "read_audio": "deepspark.io.audio",
    "read_text": "deepspark.io.text",
}

if TYPE_CHECKING:
    from deepspark.io.audio import read_audio
    from deepspark.io.images import read_images
    from deepspark.io.text import read_text

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)

__all__ = ["read_audio", "read_images", "read_text"]

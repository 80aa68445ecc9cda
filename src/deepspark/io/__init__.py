"""Readers: files on any Spark filesystem into DataFrames, one module per modality.

Files are listed by Spark and decoded on the executors; a file that cannot be decoded
becomes a row with its ``error`` set, never a failed job.
"""

from deepspark.io.audio import read_audio
from deepspark.io.images import read_images

__all__ = ["read_images", "read_audio"]

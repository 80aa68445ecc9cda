"""Helpers for Spark image structs: ``to_array``, ``from_array`` and the schema.

>>> import numpy as np, deepspark
>>> s = deepspark.image.from_array(np.zeros((2, 2, 3), np.uint8), origin="black.png")
>>> deepspark.image.to_array(s, channel_order="BGR").shape
(2, 2, 3)
"""

from deepspark.io.images import OCV_MODES, from_array, image_schema, to_array

__all__ = ["to_array", "from_array", "image_schema", "OCV_MODES"]  # noqa: RUF022 - docs order

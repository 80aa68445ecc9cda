"""The ``deepspark`` logger. Library code logs; it never configures handlers."""

from __future__ import annotations

import logging

logger = logging.getLogger("deepspark")
logger.addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """A child of the ``deepspark`` logger, e.g. ``get_logger(__name__)``."""
    name = name.removeprefix("deepspark.")
    return logger.getChild(name)

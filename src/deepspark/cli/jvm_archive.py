"""``deepspark jvm-archive``: build the class archive that halves local Spark start-up."""

from __future__ import annotations

import argparse
import time
from typing import Any

from deepspark.cli.common import EXIT_OK, add_console_options, console, example, prepare


def register(sub: Any) -> None:
    p = sub.add_parser(
        "jvm-archive",
        help="build the JVM class archive that local Spark sessions start from",
        description=(
            "Record the classes a local Spark JVM loads into a class-data sharing "
            "archive in deepspark's cache, once per Java and Spark installation "
            "(about a minute, ~180 MB). Local sessions started by deepspark then map "
            "it and start in about half the time. 'make install' runs this."
        ),
        epilog=example("deepspark jvm-archive", "deepspark jvm-archive --status"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--status", action="store_true", help="say whether there is one; build nothing")
    g.add_argument("--rebuild", action="store_true", help="build it again even if it exists")
    g.add_argument("--remove", action="store_true", help="delete deepspark's JVM archives")
    add_console_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepspark.runtime import jvm_archive

    prepare(args, paths=False)
    out = console(args.quiet)
    if args.status:
        out.print(jvm_archive.status(), soft_wrap=True)
        return EXIT_OK
    if args.remove:
        out.print(f"removed {jvm_archive.remove()} archive(s)")
        return EXIT_OK
    existing = jvm_archive.archive_path()
    if existing is not None and existing.usable and not args.rebuild:
        out.print(
            f"already built: {existing.path} ({existing.size / 2**20:.0f} MB)", soft_wrap=True
        )
        return EXIT_OK
    start = time.perf_counter()
    info = jvm_archive.build(force=True)
    took = time.perf_counter() - start
    out.print(f"built {info.path} ({info.size / 2**20:.0f} MB) in {took:.0f} s", soft_wrap=True)
    return EXIT_OK

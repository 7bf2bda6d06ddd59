"""``cqrs-lab bench``: the command line of the benchmark suite."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cqrs_lab.bench.report import format_table, to_json
from cqrs_lab.bench.results import SIZES, STORES, BenchCheckError
from cqrs_lab.bench.runner import run_bench
from cqrs_lab.bench.workloads import registry

__all__ = ["add_arguments", "main", "run_from_args"]


def _choices(allowed: Sequence[str], what: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        picked = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in picked if item not in allowed]
        if unknown or not picked:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown) or '(none given)'}: choose from {','.join(allowed)}"
            )
        return [item for item in allowed if item in picked]

    return parse


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"--repeat must be 1 or more, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cqrs-lab bench``."""
    parser.add_argument(
        "--stores",
        type=_choices(STORES, "store(s)"),
        default=list(STORES),
        help="comma-separated stores to run (default: memory,duckdb,postgres)",
    )
    parser.add_argument(
        "--size",
        choices=list(SIZES),
        default="default",
        help="small (seconds; counts /50), default (the documented counts) or large",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=3,
        metavar="N",
        help="measured runs per figure, after one warm-up run; figures are medians (default 3)",
    )
    parser.add_argument(
        "--workloads",
        type=_choices(tuple(registry()), "workload(s)"),
        default=list(registry()),
        help=f"comma-separated workloads to run (default: {','.join(registry())})",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Run the benchmark as ``add_arguments`` parsed it; prints the table."""
    size = SIZES[args.size]
    try:
        results, info = run_bench(size=size, stores=args.stores, workloads=args.workloads, repeat=args.repeat)
    except BenchCheckError as exc:
        print(f"cqrs-lab bench: {exc}", file=sys.stderr)
        return 1
    print(format_table(results))
    if args.json is not None:
        command = shlex.join(
            [
                "cqrs-lab",
                "bench",
                "--size",
                args.size,
                "--repeat",
                str(args.repeat),
                "--stores",
                ",".join(args.stores),
                "--workloads",
                ",".join(args.workloads),
            ]
        )
        args.json.write_text(json.dumps(to_json(results, info, size, args.repeat, command), indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cqrs-lab bench", description="Benchmark every store against its raw driver."
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))

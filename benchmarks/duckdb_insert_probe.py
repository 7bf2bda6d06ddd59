"""What stands between a DuckDB command and DuckDB's raw floor (``W1 warm`` in ``cqrs-lab bench``).

Eight DuckDB files, each written by one side, the sides taking turns in blocks of 50
commands (which side goes first rotates). Every side does the same single-row INSERT
of a command's event into cqrs_lab's ``events`` table, in autocommit mode, on a
connection with DuckDB's optimizer off (as the store commits; one side leaves it on),
and only the INSERT is timed; what differs is what runs just before it:

- ``raw``: nothing (the floor of ``cqrs-lab bench``);
- ``optimizer on``: nothing, on a connection with DuckDB's optimizer on (its default);
- ``spin``: a 100 µs busy loop (time passes, nothing is allocated);
- ``sleep``: ``time.sleep(0.0001)`` (the CPU idles);
- ``objects``: about 300 small dicts made and kept a while (Python's allocator at work);
- ``big buffer``: a 4 MB buffer written page by page (the CPU caches flushed);
- ``row``: the least any caller does for a command: make the event, serialize it and
  its metadata, take the time and a new event id (the floor gets these ready-made);
- ``framework``: one command of ``CqrsFramework`` on the memory store, on a cached
  aggregate (the Python a DuckDB command adds to its INSERT).

It prints the mean INSERT time per side, the mean time of what ran before it, and
the floor's INSERT time divided by the side's two together: the ratio to the floor
that a command doing only that work would reach (``W1 warm`` asks for 0.91).
Run it from the repository root, with cqrs_lab installed::

    python benchmarks/duckdb_insert_probe.py [--folder /dev/shm] [--threads N]

A folder on a tmpfs takes the disk (fsync) out of the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import duckdb

from cqrs_lab.bench import data
from cqrs_lab.bench.domain import Ledger, PostBatch, posted
from cqrs_lab.framework import CqrsFramework
from cqrs_lab.stores.duckdb import DuckDBEventStore, _insert_events, commit_cursor
from cqrs_lab.stores.memory import MemoryEventStore

COMMANDS, BLOCK = 1_500, 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", help="where the DuckDB files go (default: the temp folder)")
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (default: DuckDB's)")
    args = parser.parse_args()

    ids = [f"a{k}" for k in range(COMMANDS)]
    framework = CqrsFramework(Ledger, MemoryEventStore(), cache_size=COMMANDS)
    kept: list[list[dict[str, object]]] = []

    def spin() -> None:
        end = time.perf_counter() + 0.0001
        while time.perf_counter() < end:
            pass

    def objects() -> None:
        kept.append([{"a": i, "b": str(i)} for i in range(300)])
        if len(kept) > 20:
            kept.pop(0)

    def big_buffer() -> None:
        buffer = bytearray(4_000_000)
        buffer[::4096] = b"x" * len(buffer[::4096])

    def row(k: int) -> list[object]:
        event = posted(2)
        metadata = json.dumps({"command_id": str(uuid.uuid4()), "command_type": "PostBatch"})
        return [
            k, Ledger.aggregate_type, ids[k], 2, event.event_type, event.event_version,
            event.model_dump_json(), metadata, datetime.now(UTC), str(uuid.uuid4()),
        ]  # fmt: skip

    before: dict[str, Callable[[int], object]] = {
        "raw": lambda k: None,
        "optimizer on": lambda k: None,
        "spin": lambda k: spin(),
        "sleep": lambda k: time.sleep(0.0001),
        "objects": lambda k: objects(),
        "big buffer": lambda k: big_buffer(),
        "row": row,
        "framework": lambda k: framework.execute(ids[k], PostBatch(n=1)),
    }
    folder = tempfile.mkdtemp(dir=args.folder)
    insert = _insert_events(1)
    connections = {}
    for n, name in enumerate(before):
        path = os.path.join(folder, f"side{n}.duckdb")
        DuckDBEventStore(path).close()  # cqrs_lab's tables and indexes
        con = duckdb.connect(path, config={"threads": args.threads} if args.threads else {})
        connections[name] = con if name == "optimizer on" else commit_cursor(con)  # as the store commits
    for k, aggregate_id in enumerate(ids):  # every aggregate gets its first event (and is cached)
        row = data.rows(aggregate_id, 1, [posted(1)])[0]
        for con in connections.values():
            con.execute(insert, [k + 1, *row])
        framework.execute(aggregate_id, PostBatch(n=1))
    second = [data.rows(aggregate_id, 2, [posted(2)])[0] for aggregate_id in ids]

    inserts = dict.fromkeys(before, 0.0)
    preludes = dict.fromkeys(before, 0.0)
    order = list(before)
    gc.collect()
    gc.freeze()
    for start in range(0, COMMANDS, BLOCK):
        order = order[1:] + order[:1]
        for name in order:
            con, prelude = connections[name], before[name]
            for k in range(start, start + BLOCK):
                t0 = time.perf_counter()
                prelude(k)
                t1 = time.perf_counter()
                con.execute(insert, [COMMANDS + k + 1, *second[k]])
                t2 = time.perf_counter()
                preludes[name] += t1 - t0
                inserts[name] += t2 - t1
    print(f"{COMMANDS:,} commands per side, in blocks of {BLOCK}; folder {folder}")
    print(f"{'side':<14}{'INSERT ms':>11}{'before it ms':>15}{'floor ratio':>13}")
    for name in before:
        ratio = inserts["raw"] / (inserts[name] + preludes[name])
        print(
            f"{name:<14}{inserts[name] / COMMANDS * 1000:>11.3f}"
            f"{preludes[name] / COMMANDS * 1000:>15.3f}{ratio:>13.2f}"
        )


if __name__ == "__main__":
    main()

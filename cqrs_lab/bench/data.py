"""Benchmark data: event tables to import, and rows serialized as the framework writes them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cqrs_lab.bench.domain import Ledger, Posted, posted
from cqrs_lab.codec import encode_metadata
from cqrs_lab.stores.base import EVENT_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["INSERT_COLUMNS", "Row", "event_table", "log_ids", "metadata_json", "rows"]


def metadata_json(command_id: str) -> str:
    """Metadata JSON as ``CqrsFramework`` writes it for a ``PostBatch`` command."""
    return encode_metadata(
        {
            "causation_id": command_id,
            "command_id": command_id,
            "command_type": "PostBatch",
            "correlation_id": command_id,
        }
    )


def event_table(n: int, aggregate_ids: Sequence[str], *, first_id: int = 1) -> pa.Table:
    """``n`` ``Posted`` events as an import table, as ``PostBatch(n=10)`` commands would write them.

    Commands (runs of ten events of one ledger, sharing their metadata) are
    dealt round-robin to ``aggregate_ids``, so the log interleaves the ledgers
    the way concurrent traffic does. Event ids are sequential UUIDs from ``first_id``.
    """
    import numpy as np
    import pyarrow as pa

    from cqrs_lab.stores.arrow import event_arrow_schema

    streams, batch = len(aggregate_ids), 10
    owners = [(k // batch) % streams for k in range(n)]
    sequences = [(k // batch // streams) * batch + k % batch + 1 for k in range(n)]
    base = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    columns: dict[str, Any] = {
        "position": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "aggregate_type": pa.array([Ledger.aggregate_type] * n, pa.string()),
        "aggregate_id": pa.array([aggregate_ids[i] for i in owners], pa.string()),
        "sequence": pa.array(sequences, pa.int64()),
        "event_type": pa.array([Posted.event_type] * n, pa.string()),
        "event_version": pa.array([Posted.event_version] * n, pa.string()),
        "payload": pa.array([posted(s).model_dump_json() for s in sequences], pa.string()),
        "metadata": pa.array(
            [metadata_json(str(uuid.UUID(int=first_id + k // batch))) for k in range(n)], pa.string()
        ),
        "recorded_at": pa.array(np.arange(n, dtype=np.int64) + base, pa.timestamp("us", tz="UTC")),
        "event_id": pa.array([str(uuid.UUID(int=first_id + k)) for k in range(n)], pa.string()),
    }
    return pa.table(columns, schema=event_arrow_schema())


def log_ids(n: int) -> list[str]:
    """Aggregate ids of a global log of ``n`` events: 100 events per ledger."""
    return [f"ledger-{i}" for i in range(max(1, n // 100))]


Row = tuple[str, str, int, str, str, str, str, datetime, str]
"""An ``events`` row without ``position``: the columns of ``INSERT_COLUMNS``."""
INSERT_COLUMNS = tuple(c for c in EVENT_COLUMNS if c != "position")


def rows(aggregate_id: str, first_sequence: int, events: Sequence[Posted]) -> list[Row]:
    """One command's rows, serialized as the framework serializes them."""
    metadata = metadata_json(str(uuid.uuid4()))
    now = datetime.now(UTC)
    return [
        (
            Ledger.aggregate_type,
            aggregate_id,
            first_sequence + i,
            e.event_type,
            e.event_version,
            e.model_dump_json(),
            metadata,
            now,
            str(uuid.uuid4()),
        )
        for i, e in enumerate(events)
    ]

"""Write ``(table, row, cells)`` rows to HBase from Spark's Python workers, in Arrow batches.

Each Python worker opens one Thrift connection (kept for the life of the worker, as Spark
reuses workers) and sends its partition's rows in ``mutateRows`` calls of
``hbase.batch_size`` rows, so a cluster writes in parallel from every executor and nothing
funnels through the driver. The cells arrive encoded (``engine/hbase_rows.py``): the only
Python work per row is to pair qualifiers with values, which the benchmark
``benchmarks/archive.py`` measures against the Thrift call itself.

Puts are idempotent (same row key, same cells), so a batch retried after a lost connection,
or a micro-batch replayed after a crash, leaves the tables as one clean write would.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
from pyspark.sql import DataFrame
from thriftpy2.thrift import TException

from fink_broker.config import HBaseSettings
from fink_broker.infra.hbase_client import HBaseUnavailable, connect

log = logging.getLogger(__name__)

#: attempts of one mutateRows call before the task fails (the gateway may restart)
ATTEMPTS = 4
#: seconds before the first retry; doubled at each further one
BACKOFF_S = 1.0
_OUTPUT = "table string, rows long"
#: this worker's connection, reused across tasks while its settings stay the same
_CONNECTIONS: dict[tuple, object] = {}


def _connection(hbase: HBaseSettings, *, fresh: bool = False):
    key = (hbase.thrift_host, hbase.thrift_port, hbase.transport, hbase.protocol)
    if fresh and key in _CONNECTIONS:
        _CONNECTIONS.pop(key).close()  # type: ignore[attr-defined]
    if key not in _CONNECTIONS:
        _CONNECTIONS[key] = connect(hbase)
    return _CONNECTIONS[key]


def _put(hbase: HBaseSettings, table: str, rows: list[tuple[str, dict[str, bytes]]]) -> None:
    """One batch of puts into ``table``, retried on a broken connection."""
    delay = BACKOFF_S
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with _connection(hbase, fresh=attempt > 1).table(table).batch() as batch:
                for row, cells in rows:
                    batch.put(row, cells)
            return
        except (TException, OSError, HBaseUnavailable) as err:
            if attempt == ATTEMPTS:
                raise HBaseUnavailable(
                    f"writing {len(rows)} rows to {table} through {hbase.thrift_host}:"
                    f"{hbase.thrift_port} failed {ATTEMPTS} times: {err}"
                ) from None
            log.warning(
                "HBase put to %s failed (%s); retry %d in %.0f s", table, err, attempt, delay
            )
            time.sleep(delay)
            delay *= 2


def row_cells(batch: pa.RecordBatch) -> Iterator[tuple[str, str, dict[str, bytes]]]:
    """``(table, row key, {family:qualifier: value})`` of each row of an Arrow batch.

    The one Python loop per row of the writer: Arrow hands over whole columns, and each
    row's map is a slice of its flattened keys and values.
    """
    tables = batch.column("table").to_pylist()
    rows = batch.column("row").to_pylist()
    cells = batch.column("cells")
    offsets = cells.offsets.to_pylist()
    qualifiers = cells.keys.to_pylist()
    values = cells.items.to_pylist()
    for i, table in enumerate(tables):
        lo, hi = offsets[i], offsets[i + 1]
        yield table, rows[i], dict(zip(qualifiers[lo:hi], values[lo:hi], strict=True))


@dataclass(frozen=True)
class PutBatches:
    """The ``mapInArrow`` function: puts every row of each Arrow batch, yields counts."""

    hbase: HBaseSettings

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        counts: Counter[str] = Counter()
        size, max_bytes = max(1, self.hbase.batch_size), self.hbase.batch_mib * 2**20
        pending: dict[str, list[tuple[str, dict[str, bytes]]]] = {}
        weight: Counter[str] = Counter()
        for batch in batches:
            for table, row, cells in row_cells(batch):
                group = pending.setdefault(table, [])
                group.append((row, cells))
                weight[table] += sum(map(len, cells.values()))
                if len(group) >= size or weight[table] >= max_bytes:
                    _put(self.hbase, table, group)
                    counts[table] += len(group)
                    pending[table], weight[table] = [], 0
        for table, group in pending.items():
            if group:
                _put(self.hbase, table, group)
                counts[table] += len(group)
        yield pa.RecordBatch.from_pydict(
            {"table": list(counts), "rows": list(counts.values())},
            schema=pa.schema([("table", pa.string()), ("rows", pa.int64())]),
        )


def write_rows(rows: DataFrame, hbase: HBaseSettings) -> dict[str, int]:
    """Put every row of ``rows`` (``engine.hbase_rows.ROW_SCHEMA``); rows written per table.

    The rows of every table come as a union of small frames, one partition each per input
    file; they are coalesced (no shuffle) to one task per core, so each Python worker makes
    few, full ``mutateRows`` calls instead of many small tasks (measured: 4 files per
    micro-batch times 6 tables cost ~5 s of task overhead per batch on 2 cores).
    """
    cores = max(1, rows.sparkSession.sparkContext.defaultParallelism)
    counts: Counter[str] = Counter()
    for row in rows.coalesce(cores).mapInArrow(PutBatches(hbase), _OUTPUT).collect():
        counts[row["table"]] += int(row["rows"])
    return dict(counts)

"""Reads of one survey's HBase archive for the REST API: connections, schemas, alert rows.

Every query first reads an index (or the object's key prefix), then fetches only the main
rows it selected, with the requested columns filtered by HBase itself. Cells are decoded
with the types of the schema table (:mod:`fink_broker.tables.cells`), so values come back
as the science Parquet held them. Index scans live in :mod:`fink_broker.api.index_reads`.

Every Thrift call goes through :meth:`ArchiveStore.table`: a connection is taken from the
pool within ``api.pool_timeout_s`` (else 503, never a wait without end), reopened first
when it sat unused longer than ``api.pool_idle_s`` (the Thrift server has dropped it by
then, and the first read on it would fail), and each row read checks the request's deadline
(:func:`fink_broker.api.limits.check_deadline`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import happybase
import pandas as pd
from happybase.pool import NoConnectionsAvailable
from thriftpy2.thrift import TException

from fink_broker.api.index_reads import IndexReads
from fink_broker.api.limits import Cursor, check_deadline
from fink_broker.config import Settings
from fink_broker.errors import FinkError
from fink_broker.infra.hbase_schema import merged_history_types, merged_types, read_schemas
from fink_broker.surveys.archive_shapes import shape_of
from fink_broker.surveys.base import SurveyAdapter, alert_struct
from fink_broker.tables import layout as L
from fink_broker.tables.cells import typed_frame
from fink_broker.tables.records import parse_record_schemas, row_values, schema_of

#: seconds the merged column types are reused before the schema table is read again
SCHEMA_TTL_S = 60.0
#: main-table keys fetched per Thrift ``getRows`` call
ROWS_PER_CALL = 500
#: rows fetched per Thrift ``scannerGetList`` call of a scan
SCAN_BATCH = 500


class ArchiveUnavailable(FinkError):
    """HBase (through its Thrift gateway) did not answer a query, or not in time."""


@dataclass(frozen=True)
class Page:
    """One page of a paged answer and the cursor of the next (None: the last page)."""

    frame: pd.DataFrame
    cursor: Cursor | None = None


class ArchiveStore(IndexReads):
    """Thread-safe reads of one survey's archive through a pool of Thrift connections."""

    def __init__(self, settings: Settings, adapter: SurveyAdapter) -> None:
        hb = settings.hbase
        self.adapter = adapter
        self.survey = adapter.name
        self.shape = shape_of(adapter.name)
        self.families = self.shape.families
        self.tables = self.shape.tables(hb.namespace)
        self.pool_timeout_s = settings.api.pool_timeout_s
        self.pool_idle_s = settings.api.pool_idle_s
        #: id of a pooled connection -> monotonic time it was last taken or given back
        self._last_used: dict[int, float] = {}
        self._pool_options = {
            "size": settings.api.pool_size,
            "host": hb.thrift_host,
            "port": hb.thrift_port,
            "timeout": int(hb.timeout_s * 1000),
            "transport": hb.transport,
            "protocol": hb.protocol,
            "autoconnect": False,
        }
        self._pool: happybase.ConnectionPool | None = None
        self._types: dict[str, str] = {}
        self._history: dict[str, dict[str, str]] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._read_at = -SCHEMA_TTL_S
        self._lock = threading.RLock()
        self.main_struct = alert_struct(adapter)

    def _connections(self) -> happybase.ConnectionPool:
        """The pool, made at first use: happybase opens a connection to make one, and an
        API started while HBase is down must answer 503, not fail to start."""
        with self._lock:
            if self._pool is None:
                self._pool = happybase.ConnectionPool(**self._pool_options)
            return self._pool

    @contextlib.contextmanager
    def connection(self) -> Iterator[happybase.Connection]:
        """A pooled connection, within ``api.pool_timeout_s``; HBase errors become 503."""
        check_deadline()
        try:
            pool = self._connections()
            with pool.connection(timeout=self.pool_timeout_s) as connection:
                self._reopen_if_idle(connection)
                try:
                    yield connection
                finally:
                    self._last_used[id(connection)] = time.monotonic()
        except NoConnectionsAvailable:
            raise ArchiveUnavailable(
                f"no free HBase connection within {self.pool_timeout_s} s; retry"
            ) from None
        except (TException, OSError) as err:
            raise ArchiveUnavailable(f"HBase did not answer: {err}") from None

    def _reopen_if_idle(self, connection: happybase.Connection) -> None:
        """Reopen a connection unused for more than ``api.pool_idle_s``: the server closed
        its socket, which the client only learns from the next read ("TSocket read 0
        bytes"). A nested use by the same thread finds it just taken, and keeps it."""
        now = time.monotonic()
        last = self._last_used.get(id(connection))
        if last is not None and now - last > self.pool_idle_s:
            connection.close()
            connection.open()
        self._last_used[id(connection)] = now

    @contextlib.contextmanager
    def table(self, kind: L.TableKind) -> Iterator[happybase.Table]:
        with self.connection() as connection:
            yield connection.table(self.tables.name(kind))

    def scan(self, kind: L.TableKind, **options: Any) -> Iterator[tuple[bytes, dict]]:
        """Rows of one table (happybase ``scan`` options), checking the deadline per row."""
        with self.table(kind) as table:
            for key, cells in table.scan(batch_size=SCAN_BATCH, **options):
                check_deadline()
                yield key, cells

    # -- schemas ------------------------------------------------------------------------

    def _refresh(self, *, force: bool = False) -> None:
        """Re-read the schema rows when they are older than the TTL (or when forced)."""
        with self._lock:
            if force or time.monotonic() - self._read_at > SCHEMA_TTL_S:
                rows = self.schemas()
                stale = sorted({int(r["layout"]) for r in rows} - {L.LAYOUT_VERSION})  # type: ignore[call-overload]
                if stale:
                    raise ArchiveUnavailable(
                        f"the {self.survey} archive holds rows of layout {stale}, this API "
                        f"reads layout {L.LAYOUT_VERSION}: rebuild it with `fink archive "
                        f"--rebuild --survey {self.survey}` (README: Migrating an archive)"
                    )
                self._types = merged_types(rows)
                self._history = merged_history_types(rows)
                self._records = {
                    str(r["key"]): parse_record_schemas(r["records"])  # type: ignore[arg-type]
                    for r in rows
                }
                self._read_at = time.monotonic()

    def types(self) -> dict[str, str]:
        """``family:qualifier`` -> Spark type of every archived column (cached)."""
        self._refresh()
        return dict(self._types)

    def history_types(self) -> dict[str, dict[str, str]]:
        """History list -> field -> Spark type of the items the ``upper`` table holds."""
        self._refresh()
        return {name: dict(fields) for name, fields in self._history.items()}

    def schemas(self) -> list[dict[str, object]]:
        """The schema rows: one per broker version and column set written."""
        with self.connection() as connection:
            return read_schemas(connection, self.tables)

    def _record_schemas(self, key: str | None) -> dict[str, Any]:
        if key not in self._records:  # written after our last read of the schema table
            self._refresh(force=True)
        if key not in self._records:
            raise ArchiveUnavailable(f"the archive has rows of an unknown schema {key!r}")
        return self._records[key]

    # -- alerts -------------------------------------------------------------------------

    def rows(
        self, keys: Sequence[bytes], columns: Sequence[str] | None
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Main rows of ``keys`` that exist, in the order of ``keys``."""
        rows: list[tuple[bytes, dict[bytes, bytes]]] = []
        with self.table(L.TableKind.ALERTS) as table:
            for start in range(0, len(keys), ROWS_PER_CALL):
                check_deadline()
                chunk = list(keys[start : start + ROWS_PER_CALL])
                rows += table.rows(chunk, columns=self.cells_for(columns))
        return rows

    def fetch(self, keys: Sequence[bytes], columns: Sequence[str] | None) -> pd.DataFrame:
        """Main rows of ``keys`` (in that order, missing ones skipped), decoded."""
        return self.frame([cells for _, cells in self.rows(keys, columns)], columns)

    def always(self) -> tuple[str, ...]:
        """Columns every alert answer carries, whatever the selection (identification,
        sorting): Fink's object id, alert id and time."""
        fink = self.families.fink
        return tuple(L.column(fink, n) for n in ("objectId", "alertId", "mjd"))

    def frame(self, rows: list[dict[bytes, bytes]], columns: Sequence[str] | None) -> pd.DataFrame:
        """Decoded main rows; a column a row's schema version lacks is null there."""
        types = self.types()
        records = [
            row_values(
                cells,
                self._record_schemas(schema_of(cells, self.families)),
                self.main_struct,
                self.families,
            )
            for cells in rows
        ]
        if columns is None:
            names = sorted(types)
        else:
            names = [*[c for c in self.always() if c not in columns], *columns]
        return typed_frame(records, types, names)

    def cells_for(self, columns: Sequence[str] | None) -> list[bytes]:
        """The main-table cells that hold ``columns`` (all three when None): Fink's record
        and the schema key always, the survey's record only when a survey column is asked."""
        families = self.families
        cells = [families.fink_record, families.schema_cell]
        if columns is None or any(c.startswith(f"{families.survey}:") for c in columns):
            cells.append(families.survey_record)
        return [c.encode() for c in cells]

    def paged_keys(
        self,
        kind: L.TableKind,
        prefixes: Sequence[bytes],
        limit: int,
        cursor: Cursor | None,
        *,
        keys_only: bool = False,
        columns: Sequence[bytes] | None = None,
    ) -> tuple[list[tuple[int, bytes, dict]], Cursor | None]:
        """Rows of the key ranges ``prefixes`` in order, at most ``limit``, from ``cursor``.

        Returns (range index, key, cells) of each row and the cursor of the next page.
        """
        found: list[tuple[int, bytes, dict]] = []
        first = cursor.part if cursor is not None else 0
        key_filter = b"KeyOnlyFilter()" if keys_only else None
        for part in range(first, len(prefixes)):
            prefix = prefixes[part]
            start = prefix
            if cursor is not None and part == cursor.part and cursor.after is not None:
                start = cursor.after + b"\x00"  # the first key after the last one read
            scan = self.scan(
                kind,
                row_start=start,
                row_stop=L.prefix_stop(prefix),
                filter=key_filter,
                columns=columns,
                limit=limit - len(found) + 1,
            )
            for key, cells in scan:
                if len(found) == limit:
                    return found, Cursor(found[-1][0], found[-1][1])
                found.append((part, key, cells))
        return found, None

    def objects(
        self,
        object_ids: Sequence[str],
        columns: Sequence[str] | None,
        limit: int,
        cursor: Cursor | None = None,
    ) -> Page:
        """The alerts of each object (in the order of ``object_ids``, each in time order),
        at most ``limit`` per page."""
        prefixes = [L.object_prefix(i) for i in object_ids]
        cells = self.cells_for(columns)
        found, following = self.paged_keys(
            L.TableKind.ALERTS, prefixes, limit, cursor, columns=cells
        )
        return Page(self.frame([c for _, _, c in found], columns), following)

    def object_keys(self, object_ids: Sequence[str]) -> dict[str, list[bytes]]:
        """The main-table keys of each object's alerts, oldest first (a scan of keys only:
        the key holds the time)."""
        out: dict[str, list[bytes]] = {}
        for object_id in object_ids:
            scan = self.scan(
                L.TableKind.ALERTS,
                row_prefix=L.object_prefix(object_id),
                filter=b"KeyOnlyFilter() AND FirstKeyOnlyFilter()",
            )
            out[object_id] = [key for key, _ in scan]
        return out

    def latest_keys(self, object_ids: Sequence[str]) -> list[bytes]:
        """The main-table key of each object's newest alert (objects without one skipped).

        Keys sort by time within an object, so the last key of its prefix is the newest.
        """
        return [keys[-1] for keys in self.object_keys(object_ids).values() if keys]

    def count(self, kind: L.TableKind) -> int:
        """Rows of one table (a full scan of row keys only: for tests and operators)."""
        scan = self.scan(kind, filter=b"FirstKeyOnlyFilter() AND KeyOnlyFilter()")
        return sum(1 for _ in scan)

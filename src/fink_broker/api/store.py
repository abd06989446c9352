"""Reads of the HBase archive for the REST API: light curves, index scans, cutouts.

Every query first reads an index (or the object's key prefix), then fetches only the main
rows it selected, with the requested columns filtered by HBase itself. Cells are decoded
with the types of the schema table (:mod:`fink_broker.tables.cells`), so values come back
as the science Parquet held them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import happybase
import numpy as np
import pandas as pd
from thriftpy2.thrift import TException

from fink_broker.config import Settings
from fink_broker.errors import FinkError
from fink_broker.infra.hbase_schema import merged_types, read_schemas
from fink_broker.science.xmatch import separation_arcsec
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import alert_struct
from fink_broker.tables import layout as L
from fink_broker.tables.cells import decode_point, typed_frame
from fink_broker.tables.layout import INDEX_TYPES
from fink_broker.tables.records import parse_record_schemas, row_values, schema_of
from fink_broker.tables.sky import disc_ranges

#: seconds the merged column types are reused before the schema table is read again
SCHEMA_TTL_S = 60.0
#: main-table keys fetched per Thrift ``getRows`` call
ROWS_PER_CALL = 500
#: columns every alert answer carries, whatever the selection (sorting, identification)
ALWAYS = (
    L.column(L.FINK_FAMILY, "objectId"),
    L.column(L.FINK_FAMILY, "alertId"),
    L.column(L.FINK_FAMILY, "mjd"),
)


class ArchiveUnavailable(FinkError):
    """HBase (through its Thrift gateway) did not answer a query."""


class ArchiveStore:
    """Thread-safe reads of one survey's archive through a pool of Thrift connections."""

    def __init__(self, settings: Settings, survey: str, *, pool_size: int = 4) -> None:
        hb = settings.hbase
        self.tables = L.ArchiveTables(hb.namespace, survey)
        self.survey = survey
        self._pool = happybase.ConnectionPool(
            size=pool_size,
            host=hb.thrift_host,
            port=hb.thrift_port,
            timeout=int(hb.timeout_s * 1000),
            transport=hb.transport,
            protocol=hb.protocol,
            autoconnect=False,
        )
        self._types: dict[str, str] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._read_at = -SCHEMA_TTL_S
        self._lock = threading.Lock()
        self._main_struct = alert_struct(get_adapter(survey))

    @contextlib.contextmanager
    def _table(self, kind: L.TableKind) -> Iterator[happybase.Table]:
        try:
            with self._pool.connection() as connection:
                yield connection.table(self.tables.name(kind))
        except (TException, OSError) as err:
            raise ArchiveUnavailable(f"HBase did not answer: {err}") from None

    # -- schemas ------------------------------------------------------------------------

    def _refresh(self, *, force: bool = False) -> None:
        """Re-read the schema rows when they are older than the TTL (or when forced)."""
        with self._lock:
            if force or time.monotonic() - self._read_at > SCHEMA_TTL_S:
                rows = self.schemas()
                self._types = merged_types(rows)
                self._records = {
                    str(r["key"]): parse_record_schemas(r["records"])  # type: ignore[arg-type]
                    for r in rows
                }
                self._read_at = time.monotonic()

    def types(self) -> dict[str, str]:
        """``family:qualifier`` -> Spark type of every archived column (cached)."""
        self._refresh()
        return dict(self._types)

    def schemas(self) -> list[dict[str, object]]:
        """The schema rows: one per broker version and column set written."""
        try:
            with self._pool.connection() as connection:
                return read_schemas(connection, self.tables)
        except (TException, OSError) as err:
            raise ArchiveUnavailable(f"HBase did not answer: {err}") from None

    def _record_schemas(self, key: str | None) -> dict[str, Any]:
        if key not in self._records:  # written after our last read of the schema table
            self._refresh(force=True)
        if key not in self._records:
            raise ArchiveUnavailable(f"the archive has rows of an unknown schema {key!r}")
        return self._records[key]

    # -- alerts -------------------------------------------------------------------------

    def _rows(
        self, keys: Sequence[bytes], columns: Sequence[str] | None
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Main rows of ``keys`` that exist, in the order of ``keys``."""
        rows: list[tuple[bytes, dict[bytes, bytes]]] = []
        with self._table(L.TableKind.ALERTS) as table:
            for start in range(0, len(keys), ROWS_PER_CALL):
                chunk = list(keys[start : start + ROWS_PER_CALL])
                rows += table.rows(chunk, columns=_cells_for(columns))
        return rows

    def _fetch(self, keys: Sequence[bytes], columns: Sequence[str] | None) -> pd.DataFrame:
        """Main rows of ``keys`` (in that order, missing ones skipped), decoded."""
        return self._frame([cells for _, cells in self._rows(keys, columns)], columns)

    def _frame(self, rows: list[dict[bytes, bytes]], columns: Sequence[str] | None):
        types = self.types()
        records = [
            row_values(cells, self._record_schemas(schema_of(cells)), self._main_struct)
            for cells in rows
        ]
        if columns is None:
            names = sorted(types)
        else:
            names = [*[c for c in ALWAYS if c not in columns], *columns]
        return typed_frame(records, types, names)

    def objects(self, object_ids: Sequence[str], columns: Sequence[str] | None) -> pd.DataFrame:
        """Every alert of each object, in time order."""
        rows: list[dict[bytes, bytes]] = []
        with self._table(L.TableKind.ALERTS) as table:
            for object_id in object_ids:
                scan = table.scan(
                    row_prefix=L.object_prefix(object_id), columns=_cells_for(columns)
                )
                rows += [cells for _, cells in scan]
        return _by_time(self._frame(rows, columns))

    def history(self, object_ids: Sequence[str]) -> pd.DataFrame:
        """Upper limits (ZTF) and forced photometry (Rubin) of the objects, in time order."""
        points: list[dict[str, Any]] = []
        with self._table(L.TableKind.UPPER) as table:
            for object_id in object_ids:
                for _, cells in table.scan(row_prefix=L.object_prefix(object_id)):
                    point = decode_point(cells[_POINT], INDEX_TYPES, L.INDEX_FAMILY)
                    points.append({_OBJECT: object_id, **point})
        frame = typed_frame(points, INDEX_TYPES)
        if frame.empty:
            return frame
        return frame.sort_values(L.column(L.INDEX_FAMILY, "mjd"), kind="stable", ignore_index=True)

    def latests(
        self,
        label: str,
        n: int,
        columns: Sequence[str] | None,
        start: float | None = None,
        stop: float | None = None,
    ) -> pd.DataFrame:
        """The ``n`` newest alerts of a class, optionally within ``[start, stop]`` (MJD)."""
        prefix = f"{label}{L.KEY_SEP}"
        first = prefix + (L.inverted_mjd_key(stop) if stop is not None else "")
        last = prefix + (L.inverted_mjd_key(start - 1e-8) if start is not None else "\x7f")
        refs: list[bytes] = []
        with self._table(L.TableKind.CLASS) as table:
            for _, cells in table.scan(row_start=first.encode(), row_stop=last.encode()):
                if _within(cells, start, stop):
                    refs.append(cells[_KEY])
                    if len(refs) >= n:
                        break
        return self._fetch(refs, columns)

    def conesearch(
        self,
        ra: float,
        dec: float,
        radius_arcsec: float,
        columns: Sequence[str] | None,
        start: float | None = None,
        stop: float | None = None,
        limit: int = 10000,
    ) -> pd.DataFrame:
        """Alerts within ``radius_arcsec`` of (ra, dec), nearest first, with their
        separation in ``v:separation_arcsec``."""
        found: list[tuple[float, float, bytes]] = []
        with self._table(L.TableKind.PIXEL) as table:
            for lo, hi in disc_ranges(ra, dec, radius_arcsec):
                scan = table.scan(
                    row_start=L.pixel_key(lo).encode(), row_stop=L.pixel_key(hi).encode()
                )
                for _, cells in scan:
                    if _within(cells, start, stop):
                        found.append((_float(cells, "ra"), _float(cells, "dec"), cells[_KEY]))
        if not found:
            return self._fetch([], columns).assign(**{SEPARATION: pd.Series(dtype=float)})
        keys = [key for _, _, key in found]
        separation = separation_arcsec(
            ra, dec, np.array([r for r, _, _ in found]), np.array([d for _, d, _ in found])
        )
        inside = np.flatnonzero(separation <= radius_arcsec)
        order = inside[np.argsort(separation[inside], kind="stable")][:limit]
        by_key = {keys[i]: float(separation[i]) for i in order}
        fetched = self._rows([keys[i] for i in order], columns)
        frame = self._frame([cells for _, cells in fetched], columns)
        frame[SEPARATION] = np.array([by_key[key] for key, _ in fetched], dtype=float)
        return frame

    def sso(self, names: Sequence[str], columns: Sequence[str] | None) -> pd.DataFrame:
        """Alerts of known Solar System objects by name or number, in time order."""
        refs: list[bytes] = []
        with self._table(L.TableKind.SSO) as table:
            for name in names:
                prefix = f"{L.sso_key(name)}{L.KEY_SEP}".encode()
                refs += [cells[_KEY] for _, cells in table.scan(row_prefix=prefix)]
        return _by_time(self._fetch(refs, columns))

    def cutouts(self, alert_ids: Sequence[int], kind: str) -> dict[int, bytes]:
        """Cutout bytes of ``kind`` by alert id (ids without one are absent)."""
        qualifier = L.column(L.CUTOUT_FAMILY, kind).encode()
        with self._table(L.TableKind.CUTOUTS) as table:
            rows = table.rows([str(a).encode() for a in alert_ids], columns=[qualifier])
        return {int(key): cells[qualifier] for key, cells in rows if qualifier in cells}

    def count(self, kind: L.TableKind) -> int:
        """Rows of one table (a full scan of row keys only: for tests and operators)."""
        with self._table(kind) as table:
            scan = table.scan(filter=b"FirstKeyOnlyFilter() AND KeyOnlyFilter()")
            return sum(1 for _ in scan)


SEPARATION = "v:separation_arcsec"
_KEY = L.column(L.INDEX_FAMILY, "key").encode()
_MJD = L.column(L.INDEX_FAMILY, "mjd").encode()


_POINT = L.POINT_CELL.encode()
_OBJECT = L.column(L.INDEX_FAMILY, "objectId")


def _cells_for(columns: Sequence[str] | None) -> list[bytes]:
    """The main-table cells that hold ``columns`` (all three when None): Fink's record
    and the schema key always, the survey's record only when an ``i:`` column is asked."""
    cells = [L.FINK_RECORD, L.SCHEMA_CELL]
    if columns is None or any(c.startswith(f"{L.SURVEY_FAMILY}:") for c in columns):
        cells.append(L.SURVEY_RECORD)
    return [c.encode() for c in cells]


def _float(cells: dict[bytes, bytes], name: str) -> float:
    value = cells.get(L.column(L.INDEX_FAMILY, name).encode())
    return float(value) if value is not None else float("nan")


def _within(cells: dict[bytes, bytes], start: float | None, stop: float | None) -> bool:
    if start is None and stop is None:
        return True
    mjd = float(cells[_MJD])
    return (start is None or mjd >= start) and (stop is None or mjd <= stop)


def _by_time(frame: pd.DataFrame) -> pd.DataFrame:
    mjd = L.column(L.FINK_FAMILY, "mjd")
    if mjd not in frame.columns or frame.empty:
        return frame
    return frame.sort_values(mjd, kind="stable", ignore_index=True)

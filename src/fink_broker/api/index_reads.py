"""Index scans of the archive for the REST API: classes, tags, anomalies, the sky, Solar
System names, histories, the resolver's names, statistics and cutouts.

A mixin of :class:`fink_broker.api.store.ArchiveStore`: each method reads one index table,
keeps the rows its query selects (a time window, a radius, a sky region), and fetches the
main rows of the alerts they point to. Layout: :mod:`fink_broker.tables.layout`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fink_broker.science.xmatch import separation_arcsec
from fink_broker.tables import layout as L
from fink_broker.tables import statistics as S
from fink_broker.tables.cells import decode_point, typed_frame

if TYPE_CHECKING:
    from fink_broker.api.limits import Cursor
    from fink_broker.api.store import Page

_KEY = L.column(L.INDEX_FAMILY, "key").encode()
_MJD = L.column(L.INDEX_FAMILY, "mjd").encode()
_FIRST = L.column(L.INDEX_FAMILY, "first").encode()
_POINT = L.POINT_CELL.encode()
_KIND = L.column(L.INDEX_FAMILY, "kind").encode()
_LIST = L.column(L.INDEX_FAMILY, "list").encode()
#: what the ``kind`` of a cone search or sky map filters on: the object's first detection
#: (``within``, Fink's default) or the alert itself (``across``)
TIME_KINDS = ("within", "across")


def number(cells: dict[bytes, bytes], name: str) -> float:
    value = cells.get(L.column(L.INDEX_FAMILY, name).encode())
    return float(value) if value is not None else float("nan")


def within(value: float, start: float | None, stop: float | None) -> bool:
    """Whether ``value`` lies in ``[start, stop]`` (an open side is unbounded)."""
    return (start is None or value >= start) and (stop is None or value <= stop)


@dataclass(frozen=True)
class Hit:
    """One alert an index scan selected: its main-table key, object, time and position."""

    key: bytes
    obj: str
    mjd: float
    ra: float
    dec: float
    #: the object's first detection (MJD)
    first: float


def latest_per_object(hits: Iterable[Hit]) -> list[Hit]:
    """The newest hit of each object (Fink's one row per object). Alerts without an object
    (Rubin sources of Solar System objects: ``/sso`` serves them) are no object's."""
    newest: dict[str, Hit] = {}
    for hit in hits:
        if not L.is_object_key(hit.obj):
            continue
        if hit.obj not in newest or hit.mjd > newest[hit.obj].mjd:
            newest[hit.obj] = hit
    return list(newest.values())


class IndexReads:
    """Index scans; needs ``scan``, ``fetch``, ``paged_keys``, ``types`` of the store."""

    scan: Callable[..., Any]
    fetch: Callable[..., pd.DataFrame]
    paged_keys: Callable[..., Any]
    history_types: Callable[[], dict[str, dict[str, str]]]
    families: L.Families

    def newest(
        self,
        kind: L.TableKind,
        label: str | None,
        n: int,
        start: float | None,
        stop: float | None,
        keep: Callable[[dict[bytes, bytes]], bool] | None = None,
    ) -> list[bytes]:
        """Main keys of the ``n`` newest alerts of a newest-first index (``class``,
        ``tag``: by ``label``; ``anomaly``: None), within ``[start, stop]`` (MJD)."""
        prefix = "" if label is None else f"{label}{L.KEY_SEP}"
        first = prefix + (L.inverted_mjd_key(stop) if stop is not None else "")
        last = prefix + (L.inverted_mjd_key(start - 1e-8) if start is not None else "\x7f")
        refs: list[bytes] = []
        for _, cells in self.scan(kind, row_start=first.encode(), row_stop=last.encode()):
            if within(float(cells[_MJD]), start, stop) and (keep is None or keep(cells)):
                refs.append(cells[_KEY])
                if len(refs) >= n:
                    break
        return refs

    def pixel_hits(
        self,
        ranges: Sequence[tuple[int, int]],
        start: float | None,
        stop: float | None,
        time_kind: str,
        max_scan: int,
    ) -> list[Hit]:
        """Alerts of the cone-search index in runs of pixels, kept by the time window:
        on the object's first detection (``within``) or on the alert (``across``)."""
        hits: list[Hit] = []
        seen = 0
        for lo, hi in ranges:
            scan = self.scan(
                L.TableKind.PIXEL,
                row_start=L.pixel_key(lo).encode(),
                row_stop=L.pixel_key(hi).encode(),
            )
            for key, cells in scan:
                seen += 1
                if seen > max_scan:
                    raise OverflowError(f"more than {max_scan} alerts to examine")
                mjd = float(cells[_MJD])
                first = float(cells.get(_FIRST, cells[_MJD]))
                if within(first if time_kind == "within" else mjd, start, stop):
                    obj = L.key_parts(key)[2]
                    ra, dec = number(cells, "ra"), number(cells, "dec")
                    hits.append(Hit(cells[_KEY], obj, mjd, ra, dec, first))
        return hits

    def cone(
        self,
        ra: float,
        dec: float,
        radius_arcsec: float,
        hits: list[Hit],
        n: int,
        columns: Sequence[str] | None,
    ) -> pd.DataFrame:
        """The newest alert of each object within ``radius_arcsec``, nearest first, at most
        ``n``, with its separation (``v:separation_degree``, ``v:separation_arcsec``)."""
        separation = separation_arcsec(
            ra, dec, np.array([h.ra for h in hits]), np.array([h.dec for h in hits])
        )
        inside = [h for h, s in zip(hits, separation, strict=True) if s <= radius_arcsec]
        chosen = latest_per_object(inside)
        by_key = {h.key: float(s) for h, s in zip(hits, separation, strict=True)}
        chosen.sort(key=lambda h: (by_key[h.key], h.obj))
        chosen = chosen[:n]
        frame = self.fetch([h.key for h in chosen], columns)
        seps = np.array([by_key[h.key] for h in chosen], dtype=float)
        frame[SEPARATION_DEGREE] = seps / 3600.0
        frame[SEPARATION] = seps
        return frame

    def sso_keys(self, names: Sequence[str], limit: int, cursor: Cursor | None):
        """Main keys of the alerts of Solar System objects by name, paged."""
        prefixes = [f"{L.sso_key(name)}{L.KEY_SEP}".encode() for name in names]
        found, following = self.paged_keys(L.TableKind.SSO, prefixes, limit, cursor)
        return [cells[_KEY] for _, _, cells in found], following

    def history(
        self,
        object_ids: Sequence[str],
        kinds: Sequence[str],
        limit: int,
        cursor: Cursor | None = None,
    ) -> tuple[Page, dict[str, str]]:
        """History items of the objects (``upper`` table) of the given kinds, as the survey
        sent them (survey family), with ``<fink>:tag`` = the kind and ``<fink>:mjd``; and the
        types of their columns."""
        from fink_broker.api.store import Page

        prefixes = [L.object_prefix(i) for i in object_ids]
        found, following = self.paged_keys(L.TableKind.UPPER, prefixes, limit, cursor)
        lists = self.history_types()
        survey, fink = self.families.survey, self.families.fink
        types: dict[str, str] = {}
        points: list[dict[str, Any]] = []
        for part, _, cells in found:
            kind = cells[_KIND].decode()
            if kind not in kinds:
                continue
            fields = {
                L.column(survey, k): t for k, t in lists.get(cells[_LIST].decode(), {}).items()
            }
            point = decode_point(cells[_POINT], fields, survey)
            types.update(fields)
            point[L.column(fink, "tag")] = kind
            point[L.column(fink, "mjd")] = float(cells[_MJD])
            point[L.column(fink, "objectId")] = object_ids[part]
            points.append(point)
        types[L.column(fink, "mjd")] = "double"
        return Page(typed_frame(points, types), following), types

    def names(self, name: str, nmax: int, sources: Callable[[str], bool]) -> list[dict[str, Any]]:
        """Entries of the resolver's table for ``name`` (case-insensitive): exact matches,
        then, when ``nmax`` > 1, names that start with it (autocompletion)."""
        lowered = name.strip().lower()
        out: list[dict[str, Any]] = []
        exact = f"{lowered}{L.KEY_SEP}".encode()
        prefixes = [exact] + ([lowered.encode()] if nmax > 1 else [])
        seen: set[bytes] = set()
        for prefix in prefixes:
            for key, cells in self.scan(L.TableKind.NAMES, row_prefix=prefix):
                entry = {k.decode().split(":", 1)[1]: v.decode() for k, v in cells.items()}
                if key in seen or not sources(entry.get("source", "")):
                    continue
                seen.add(key)
                out.append(entry)
                if len(out) >= nmax:
                    return out
        return out

    def statistics(self, date: str, limit: int) -> list[tuple[str, S.Counts]]:
        """(night, counts) of the nights whose YYYYMMDD starts with ``date``, oldest first."""
        out = []
        for key, cells in self.scan(L.TableKind.STATISTICS, row_prefix=date.encode(), limit=limit):
            out.append((key.decode(), S.merge(cells.values())))
        return out

    def cutouts(
        self, alert_ids: Sequence[int], kinds: Sequence[str]
    ) -> dict[int, dict[str, bytes]]:
        """Per alert id: the stamps of ``kinds`` it has and its main key (``"key"``)."""
        wanted = [L.column(L.CUTOUT_FAMILY, k).encode() for k in kinds] + [_KEY]
        with self.table(L.TableKind.CUTOUTS) as table:  # type: ignore[attr-defined]
            rows = table.rows([str(a).encode() for a in alert_ids], columns=wanted)
        out: dict[int, dict[str, bytes]] = {}
        for key, cells in rows:
            found = {k.decode().split(":", 1)[1]: v for k, v in cells.items()}
            if any(k in found for k in kinds):
                out[int(key)] = found
        return out


SEPARATION = "v:separation_arcsec"
SEPARATION_DEGREE = "v:separation_degree"

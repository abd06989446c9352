"""Routes about the archive rather than alerts: schema, statistics, resolver, blocks.

``/resolver`` answers from what the archive holds, offline: Fink's ``simbad`` and ``tns``
resolvers ask online services, here ``simbad`` looks up the cross-match catalogues'
counterparts of archived alerts (VSX, GCVS, OpenNGC, Hipparcos...), ``tns`` a catalogue
named ``tns`` if one was added (``fink catalogs add tns ...``), ``ssodnet`` the Solar
System objects' names, and ``fink`` every name, including the archive's own object and
alert ids. ``reverse=true`` gives the names of one object.
"""

from __future__ import annotations

import re

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from fink_broker.api import models as M
from fink_broker.api import parsing as P
from fink_broker.api.columns import column_docs
from fink_broker.api.computed import COMPUTED, computed_types
from fink_broker.api.context import SurveyApi
from fink_broker.api.routing import both
from fink_broker.config import Settings
from fink_broker.science.local_catalogues import local_module
from fink_broker.tables import layout as L

_DATE = re.compile(r"[0-9]{0,8}", re.ASCII)
#: resolver -> which names of the ``names`` table it answers with
_SOURCES = {
    "ssodnet": lambda source: source == "sso",
    "tns": lambda source: source == "tns",
    "simbad": lambda source: source not in ("sso", "object", "alert", "tns"),
    "fink": lambda source: True,
}


def register(router: APIRouter, api: SurveyApi, settings: Settings) -> None:
    """The metadata routes of one survey."""
    store, limits, shape, families = api.store, api.limits, api.shape, api.families

    def schema(params: M.Nothing, request: Request) -> Response:
        # read at each request: `fink catalogs add` may run while the API serves
        module = local_module(settings)
        docs = list(
            column_docs(api.adapter, store.types(), [module] if module else [], families.survey)
        )
        groups = {
            f"{shape.schema_title} ({families.survey}:)": families.survey,
            f"Fink science module outputs ({families.fink}:)": families.fink,
        }
        out: dict[str, object] = {
            title: {
                d["name"]: {k: d[k] for k in ("type", "unit", "doc")}
                for d in docs
                if d["family"] == family
            }
            for title, family in groups.items()
        }
        computed = computed_types()
        out[f"Fink on-the-fly added values ({L.COMPUTED_FAMILY}:)"] = {
            L.column(L.COMPUTED_FAMILY, n): {
                "type": computed[L.column(L.COMPUTED_FAMILY, n)],
                "unit": "",
                "doc": d,
            }
            for n, d in COMPUTED.items()
        }
        out[f"Cutouts ({L.CUTOUT_FAMILY}:)"] = {
            L.column(L.CUTOUT_FAMILY, f"cutout{k}_stampData"): {
                "type": "array",
                "unit": "",
                "doc": f"2D array of the {k} cutout",
            }
            for k in L.CUTOUT_KINDS
        }
        out["versions"] = [
            {"broker_version": r["broker_version"], "last_written": r["last_written"]}
            for r in store.schemas()
        ]
        return JSONResponse(out)

    def statistics(params: M.Statistics, request: Request) -> Response:
        if not _DATE.fullmatch(params.date):
            raise P.BadParameter("date", f"{params.date!r}: give YYYYMMDD, YYYYMM, YYYY or ''")
        names = shape.statistics
        rows = []
        for night, counts in store.statistics(params.date, limits.max_rows):
            row: dict[str, object] = {
                names.night: f"{names.night_prefix}{night}",
                names.alerts: counts.get("alerts", 0),
                names.sso: counts.get("sso", 0),
            }
            row.update(
                {names.band.format(band=b): n for b, n in sorted(counts.get("band", {}).items())}
            )
            row.update(
                {
                    names.label.format(label=lab): n
                    for lab, n in sorted(counts.get("label", {}).items())
                }
            )
            rows.append(row)
        frame = pd.DataFrame(rows)
        counts_columns = [c for c in frame.columns if c != names.night]
        if len(frame):
            frame[counts_columns] = frame[counts_columns].fillna(0).astype("int64")
        if params.schema_:
            return JSONResponse({"schema": list(frame.columns) or [names.night, names.alerts]})
        if params.columns:
            wanted = [c.strip() for c in params.columns.split(",") if c.strip()]
            frame = (
                frame[
                    [names.night, *[c for c in wanted if c in frame.columns and c != names.night]]
                ]
                if len(frame)
                else frame
            )
        # counts are JSON numbers (only 64-bit ids travel as strings)
        types = {c: "int" if c != names.night else "string" for c in frame.columns}
        return api.answer(frame, params.output_format, request, None, types)

    def resolver(params: M.Resolver, request: Request) -> Response:
        name = params.name if params.name is not None else params.name_or_id
        parameter = "name" if params.name is not None else "name_or_id"
        if name is None or not name.strip():
            raise P.BadParameter("name", "give name (or name_or_id)")
        nmax = min(params.nmax, limits.max_rows)
        if params.reverse:
            object_id = P.object_ids(name, parameter, 1)[0]
            frame = names_of(object_id, params.resolver)
        else:
            P.names(name, parameter, 1)
            entries = store.names(name, nmax, _SOURCES[params.resolver])
            frame = resolved(entries, params.resolver)
        return api.answer(frame.head(nmax), params.output_format, request, None, {})

    def resolved(entries: list[dict], which: str) -> pd.DataFrame:
        rows = []
        for e in entries:
            row = {
                api.fink("name"): e.get("name"),
                api.fink("source"): e.get("source"),
                api.object_column: e.get("objectId"),
                api.alert_column: e.get("alertId"),
                api.ra_column: float(e["ra"]) if "ra" in e else None,
                api.dec_column: float(e["dec"]) if "dec" in e else None,
            }
            if which == "simbad":  # Sesame's names, which Fink's simbad resolver returns
                row.update(
                    {
                        "oname": e.get("name"),
                        "jradeg": row[api.ra_column],
                        "jdedeg": row[api.dec_column],
                    }
                )
            rows.append(row)
        return pd.DataFrame(rows)

    def names_of(object_id: str, which: str) -> pd.DataFrame:
        keys = store.latest_keys([object_id])
        latest = store.fetch(keys, None)
        if latest.empty:
            return pd.DataFrame()
        row = latest.iloc[0]
        entries = [{"name": object_id, "source": "object"}]
        sso = row.get(api.fink("sso_name"))
        if isinstance(sso, str):
            entries.append({"name": sso, "source": "sso"})
        prefix = f"{families.fink}:xm_"
        for column, value in row.items():
            if (
                column.startswith(prefix)
                and column.endswith("_id")
                and isinstance(value, str)
                and value
            ):
                entries.append({"name": value, "source": column[len(prefix) : -3]})
        common = {
            "objectId": object_id,
            "alertId": row.get(api.fink("alertId")),
            "ra": row.get(api.fink("ra")),
            "dec": row.get(api.fink("dec")),
        }
        return resolved([{**common, **e} for e in entries if _SOURCES[which](e["source"])], which)

    def blocks(params: M.Nothing, request: Request) -> Response:
        # the quality cuts, the building blocks of Fink's filters (and of raw2science)
        return JSONResponse({c.name: c.description for c in api.adapter.cuts})

    both(router, "/api/v1/schema", M.Nothing, schema, "Archived columns: type, unit, description")
    both(router, "/api/v1/statistics", M.Statistics, statistics, "Nightly counts of the archive")
    both(router, "/api/v1/resolver", M.Resolver, resolver, "Names to objects, offline")
    if "blocks" in shape.routes:
        both(router, "/api/v1/blocks", M.Nothing, blocks, "The quality blocks of filters")

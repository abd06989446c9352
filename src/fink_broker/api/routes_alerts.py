"""Routes that return alerts of given objects: Fink's objects, sources, fp and sso.

ZTF's ``/objects`` is the light curve (with upper limits and bad-quality points on
request, ``d:tag``); Rubin's is the diaObject summary of each object (from its newest
alert, ``r:<diaObject field>``), its light curve being ``/sources`` and its forced
photometry ``/fp``. Light curves come newest first, as Fink sorts them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi import APIRouter, Request

from fink_broker.api import cutouts as stamps
from fink_broker.api import models as M
from fink_broker.api import parsing as P
from fink_broker.api.context import SurveyApi
from fink_broker.api.limits import Cursor, page_of
from fink_broker.api.routing import both
from fink_broker.tables import layout as L


def newest_first(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    if column not in frame.columns or frame.empty:
        return frame.reset_index(drop=True)
    return frame.sort_values(column, ascending=False, kind="stable", ignore_index=True)


def stamp_column(kind: str) -> str:
    """Fink's column of a cutout array (``b:cutoutScience_stampData``)."""
    return L.column(L.CUTOUT_FAMILY, f"cutout{kind}_stampData")


def with_cutouts(api: SurveyApi, frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The frame with a 2D array column per cutout kind (all three for ``All``)."""
    kinds = list(L.CUTOUT_KINDS) if kind == "All" else [kind]
    ids = frame[api.fink("alertId")]
    found = api.store.cutouts([int(a) for a in ids.dropna()], kinds)
    for k in kinds:
        frame[stamp_column(k)] = [
            stamps.array(found[int(a)][k]) if pd.notna(a) and k in found.get(int(a), {}) else None
            for a in ids
        ]
    return frame


def not_archived(points: pd.DataFrame, alert_keys: dict[str, list[bytes]], api: SurveyApi):
    """History points that are not archived alerts of their object: a detection in an
    alert's history that is itself an archived alert is that alert (``valid``), not a
    bad-quality point. Times match to 1e-6 d (both are the survey's time, moved to MJD;
    the archive's key holds it to 1e-8 d)."""
    archived = {
        (obj, round(float(L.key_parts(key)[1]), 6))
        for obj, keys in alert_keys.items()
        for key in keys
    }
    if points.empty or not archived:
        return points
    objects = points[api.fink("objectId")].astype(str)
    times = np.round(points[api.fink("mjd")].to_numpy(dtype=float), 6)
    known = [(o, t) in archived for o, t in zip(objects, times, strict=True)]
    return points[~np.array(known, dtype=bool)]


def register(router: APIRouter, api: SurveyApi) -> None:
    """The object routes the survey serves."""
    limits, store, shape = api.limits, api.store, api.shape
    routes = shape.routes

    def ids_of(value: str) -> list[str]:
        return P.object_ids(value, shape.object_param, limits.max_objects)

    def light_curve(ids: list[str], params: M.Paged, cursor: Cursor | None) -> tuple:
        pages: list = []

        def fetch(columns):
            page = store.objects(ids, columns, limits.max_rows, cursor)
            pages.append(page)
            return page.frame

        frame = api.alerts(fetch, params.columns, curve=True)
        return frame, pages[0].cursor

    def ztf_objects(params: M.ZtfObjects, request: Request):
        """The alerts of the objects, then (``withupperlim``) their history points: the
        cursor's part counts the objects of the alerts' pages, then those of the points'."""
        ids = ids_of(params.objectId)
        if params.withcutouts and params.output_format == "votable":
            raise P.BadParameter("withcutouts", "cutout arrays need json, csv or parquet output")
        cursor = api.cursor(params.cursor)
        past_alerts = cursor is not None and cursor.part >= len(ids)
        if past_alerts and not params.withupperlim:
            raise P.BadParameter("cursor", "is past the last page")
        frame, following = pd.DataFrame(), None
        if not past_alerts:
            frame, following = light_curve(ids, params, cursor)
            if params.withcutouts:
                frame = with_cutouts(api, frame, params.cutout_kind)
            if params.withupperlim:
                frame[api.fink("tag")] = "valid"
        types: dict[str, str] = {}
        if params.withupperlim and following is None:
            room = limits.max_rows - len(frame)
            if room == 0:
                following = Cursor(len(ids), None)
            else:
                start = Cursor(cursor.part - len(ids), cursor.after) if past_alerts else None
                kinds = [h.kind for h in shape.histories]
                history, types = store.history(ids, kinds, room, start)
                points = not_archived(history.frame, store.object_keys(ids), api)
                frame = pd.concat([frame, points], ignore_index=True) if len(frame) else points
                if history.cursor is not None:
                    following = Cursor(history.cursor.part + len(ids), history.cursor.after)
        return api.answer(
            newest_first(frame, api.fink("mjd")), params.output_format, request, following, types
        )

    def rubin_objects(params: M.RubinObjects, request: Request):
        ids, following = page_of(
            ids_of(params.diaObjectId), api.cursor(params.cursor), limits.max_rows
        )
        summary = shape.summary_struct
        prefix = f"{api.families.survey}:{summary}."
        types = store.types()
        mapping = {
            L.column(api.families.survey, n[len(prefix) :]): n
            for n in types
            if n.startswith(prefix)
        }
        fink = {n: n for n in types if n.startswith(f"{api.families.fink}:")}
        known = {**mapping, **fink}
        stored, _ = api.selection(params.columns, lambda: {k: types[v] for k, v in known.items()})
        wanted = list(known) if stored is None else stored
        keys = store.latest_keys(ids)
        frame = store.fetch(keys, [known[c] for c in wanted])
        frame = frame.rename(columns={v: k for k, v in mapping.items()})
        frame = frame[[c for c in [*store.always(), *wanted] if c in frame.columns]]
        frame = frame.loc[:, ~frame.columns.duplicated()]
        summary_types = {k: types[v] for k, v in mapping.items()}
        return api.answer(frame, params.output_format, request, following, summary_types)

    def sources(params: M.RubinSources, request: Request):
        cursor = api.cursor(params.cursor)
        frame, following = light_curve(ids_of(params.diaObjectId), params, cursor)
        return api.answer(
            newest_first(frame, api.fink("mjd")), params.output_format, request, following
        )

    def forced(params: M.RubinSources, request: Request):
        ids = ids_of(params.diaObjectId)
        page, types = store.history(ids, ["forced"], limits.max_rows, api.cursor(params.cursor))
        frame = page.frame
        stored, _ = api.selection(params.columns, lambda: {**types, api.fink("tag"): "string"})
        if stored is not None:
            frame = frame[[c for c in stored if c in frame.columns]]
        frame = newest_first(frame, api.time_column)
        return api.answer(frame, params.output_format, request, page.cursor, types)

    def sso(params: M.Sso, request: Request):
        if params.withEphem or params.withResiduals:
            which = "withEphem" if params.withEphem else "withResiduals"
            raise P.BadParameter(which, "needs an online service (Miriade, SsODNet): not offline")
        names = P.names(params.n_or_d, "n_or_d", limits.max_objects)
        keys, following = store.sso_keys(names, limits.max_rows, api.cursor(params.cursor))
        frame = api.alerts(lambda columns: store.fetch(keys, columns), params.columns, curve=True)
        frame = (
            frame.sort_values(api.fink("mjd"), kind="stable", ignore_index=True)
            if len(frame)
            else frame
        )
        return api.answer(frame, params.output_format, request, following)

    if shape.summary_struct is None:
        both(router, "/api/v1/objects", M.ZtfObjects, ztf_objects, "Light curves of objects")
    else:
        both(router, "/api/v1/objects", M.RubinObjects, rubin_objects, "diaObject summaries")
    if "sources" in routes:
        both(router, "/api/v1/sources", M.RubinSources, sources, "Light curves (diaSources)")
    if "fp" in routes:
        both(router, "/api/v1/fp", M.RubinSources, forced, "Forced photometry of objects")
    both(router, "/api/v1/sso", M.Sso, sso, "Alerts of known Solar System objects")

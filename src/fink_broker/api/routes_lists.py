"""Routes that list the newest alerts of a kind: latests (a Fink label), tags (a filter),
anomaly (``anomaly_score``); and the cutouts of one alert.

``trend`` and ``color`` of ``/latests`` need the alerts' light curves: the objects of the
listed alerts are read (Fink's values only, a few cells per alert) and the computed
``v:rate`` and ``v:g-r`` of the listed alerts taken from them.
"""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from fink_broker.api import cutouts as stamps
from fink_broker.api import models as M
from fink_broker.api import parsing as P
from fink_broker.api.computed import COLOR, add_computed, v
from fink_broker.api.context import SurveyApi
from fink_broker.api.routes_alerts import newest_first, stamp_column
from fink_broker.api.routing import both
from fink_broker.science.classification import RULES
from fink_broker.tables import layout as L

RATE = (v("rate"), v("sigma(rate)"))


def class_labels() -> list[str]:
    """The labels ``/latests`` lists alerts by (the ``class`` index)."""
    return [label for label, _ in RULES]


def register(router: APIRouter, api: SurveyApi, filter_names: list[str]) -> None:
    """The list routes and cutouts the survey serves."""
    store, limits, shape = api.store, api.limits, api.shape

    def cap(n: int) -> int:
        return min(n, limits.max_rows)

    def with_curves(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
        """``frame`` with the computed ``names`` of each of its alerts, from its object's
        light curve (matched on object id and time, the values both rows hold)."""
        obj, mjd = api.fink("objectId"), api.fink("mjd")
        objects = list(dict.fromkeys(frame[obj].dropna()))
        inputs = [c for c in api.computed.needs(names) if c in store.types()]
        curves = store.objects(objects, inputs, limits.max_rows).frame
        curves = add_computed(curves, api.computed, names)[[obj, mjd, *names]]
        return frame.drop(columns=[n for n in names if n in frame]).merge(
            curves.drop_duplicates([obj, mjd]), on=[obj, mjd], how="left"
        )

    def newest(kind, label, params, start, stop, request, *, trend=None, color=False):
        wanted = cap(params.n)
        computed = [*RATE] if trend else []
        computed += [v(n) for n in COLOR] if color else []
        # a trend keeps some of the alerts: read up to ten times as many candidates
        scanned = wanted if trend is None else min(limits.max_rows, 10 * wanted)
        keys = store.newest(kind, label, scanned, start, stop)
        frame = api.alerts(lambda columns: store.fetch(keys, columns), params.columns)
        if computed and len(frame):
            frame = with_curves(frame, computed)
        if trend is not None:
            rate = pd.to_numeric(frame.get(v("rate")), errors="coerce")
            frame = frame[rate < 0 if trend == "rising" else rate > 0]
        frame = newest_first(frame, api.fink("mjd")).head(wanted)
        return api.answer(frame, params.output_format, request)

    def latests(params: M.Latests, request: Request):
        labels = class_labels()
        if params.class_ not in labels:
            raise P.BadParameter("class", f"{params.class_!r} is not a Fink class; one of {labels}")
        start, stop = P.time_window(params.startdate, params.stopdate, tai=api.tai)
        return newest(
            L.TableKind.CLASS,
            params.class_,
            params,
            start,
            stop,
            request,
            trend=params.trend,
            color=params.color,
        )

    def tags(params: M.Tags, request: Request):
        if params.tag is None:
            return JSONResponse(filter_names)
        if params.tag not in filter_names:
            raise P.BadParameter("tag", f"{params.tag!r} is not a tag; one of {filter_names}")
        start, stop = P.time_window(params.startdate, params.stopdate, tai=api.tai)
        return newest(L.TableKind.TAG, params.tag, params, start, stop, request)

    def anomaly(params: M.Anomaly, request: Request):
        start = P.parse_time(params.start_date, "start_date", tai=api.tai)
        stop = P.parse_time(params.stop_date, "stop_date", tai=api.tai)
        return newest(L.TableKind.ANOMALY, None, params, start, stop, request)

    def classes(params: M.Nothing, request: Request):
        return JSONResponse(
            {"Fink classifiers": class_labels(), "Fink classifier rules": dict(RULES)}
        )

    def cutout(params: M.Cutouts, request: Request) -> Response:
        if params.kind == "All" and params.output_format != "array":
            raise P.BadParameter("kind", "kind=All needs output-format=array")
        alert_param = next(
            (n for n in (shape.alert_param, "alertId") if getattr(params, n, None)), None
        )
        object_value = getattr(params, shape.object_param, None)
        if alert_param is None and object_value is None:
            raise P.BadParameter(
                shape.object_param, f"give {shape.object_param} or {shape.alert_param}"
            )
        owner = None
        if object_value is not None:
            owner = P.object_ids(object_value, shape.object_param, 1)[0]
        if alert_param is not None:
            alert = P.alert_ids(getattr(params, alert_param), alert_param, 1)[0]
        else:
            latest = store.latest_keys([owner])
            if not latest:
                raise HTTPException(404, f"{shape.object_param}: no alert of {owner}")
            found = store.fetch(latest, [api.fink("alertId")])
            alert = int(found[api.fink("alertId")].iloc[0])
        kinds = list(L.CUTOUT_KINDS) if params.kind == "All" else [params.kind]
        stored = store.cutouts([alert], kinds).get(alert)
        if (
            stored
            and owner is not None
            and not stored.get("key", b"").startswith(L.object_prefix(owner))
        ):
            stored = None  # the alert is another object's
        missing = [k for k in kinds if not stored or k not in stored]
        if missing:
            raise HTTPException(
                404, f"{alert_param or shape.object_param}: no {missing[0]} cutout for {alert}"
            )
        if params.output_format == "array":
            return JSONResponse({stamp_column(k): stamps.array(stored[k]) for k in kinds})
        stamp = stored[kinds[0]]
        if params.output_format == "FITS":
            return Response(stamps.fits_bytes(stamp), media_type="application/fits")
        try:
            png = stamps.png(
                stamp,
                params.stretch,
                params.colormap,
                params.pmin,
                params.pmax,
                params.convolution_kernel,
            )
        except stamps.UnknownColormap as err:
            raise P.BadParameter("colormap", str(err)) from None
        return Response(png, media_type="image/png")

    if "latests" in shape.routes:
        both(router, "/api/v1/latests", M.Latests, latests, "Newest alerts of a Fink class")
    if "classes" in shape.routes:
        both(router, "/api/v1/classes", M.Nothing, classes, "The labels Fink gives alerts")
    if "tags" in shape.routes:
        both(router, "/api/v1/tags", M.Tags, tags, "Newest alerts passing a filter; or the tags")
    both(router, "/api/v1/anomaly", M.Anomaly, anomaly, "Newest alerts flagged anomalous")
    both(router, "/api/v1/cutouts", M.Cutouts, cutout, "The cutouts of an alert")

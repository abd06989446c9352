"""The REST API over the HBase archive (FastAPI; OpenAPI documentation at ``/docs``).

One process serves one survey (``stream2raw.survey``), as Fink runs one API per survey.
Every endpoint answers json (default), csv, parquet or votable (``output-format``).
Invalid parameters give HTTP 400 (or 422 for a missing or mistyped one) with a message that
names the parameter; an id the archive does not know gives an empty answer, not an error;
an unreachable HBase gives 503.
"""

import re
from typing import Annotated, Literal

import pandas as pd
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from fink_broker import __version__
from fink_broker.api import cutouts as stamps
from fink_broker.api.columns import column_docs
from fink_broker.api.formats import render
from fink_broker.api.store import SEPARATION, ArchiveStore, ArchiveUnavailable
from fink_broker.config import Settings
from fink_broker.science.classification import RULES
from fink_broker.science.local_catalogues import local_module
from fink_broker.tables import layout as L

Format = Literal["json", "csv", "parquet", "votable"]
#: the ``cutout-kind`` values (a Literal, so the OpenAPI page lists them): ``L.CUTOUT_KINDS``
Kind = Literal["Science", "Template", "Difference"]
#: object ids as the archive keys them (ZTF ``ZTF20aaelulu``, Rubin digits, replay copies
#: ``ZTF20aaelulu_3``, Rubin Solar System sources ``sso-<name>``)
_OBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$")
TAG = L.column(L.FINK_FAMILY, "tag")
_HISTORY_COLUMNS = {
    "objectId": "objectId",
    "mjd": "mjd",
    "band": "band",
    "kind": "tag",
    "maglim": "maglim",
    "flux": "flux",
    "fluxerr": "fluxerr",
}
_EXTRA_TYPES = {TAG: "string", L.column(L.FINK_FAMILY, "maglim"): "double", SEPARATION: "double"}


def bad(parameter: str, message: str) -> HTTPException:
    """HTTP 400 naming the parameter at fault."""
    return HTTPException(status_code=400, detail=f"{parameter}: {message}")


def parse_time(value: str | None, parameter: str) -> float | None:
    """An MJD (``60000.5``) or an ISO 8601 UTC date (``2020-01-01T08:00``) as MJD.

    Rubin times are TAI: the 37 s TAI-UTC offset is below any useful time window.
    """
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        pass
    from astropy.time import Time

    try:
        return float(Time(value.strip(), scale="utc").mjd)
    except ValueError:
        raise bad(parameter, f"{value!r} is neither an MJD nor an ISO 8601 date") from None


class ObjectsQuery(BaseModel):
    """Body of ``POST /api/v1/objects`` (the same fields as the GET parameters)."""

    model_config = ConfigDict(populate_by_name=True)
    objectId: str = Field(description="one object id or several, comma-separated")
    columns: str | None = Field(None, description="comma-separated family:qualifier columns")
    withupperlim: bool = False
    withcutouts: bool = False
    cutout_kind: Kind = Field("Science", alias="cutout-kind")
    output_format: Format = Field("json", alias="output-format")


def create_app(settings: Settings, store: ArchiveStore | None = None) -> FastAPI:
    """The API of the configured survey over the configured HBase."""
    survey = settings.stream2raw.survey
    store = store or ArchiveStore(settings, survey)
    limits = settings.api
    app = FastAPI(
        title=f"Fink API ({survey})",
        version=__version__,
        description=(
            f"Alerts of the {survey} stream archived by Fink: light curves, latest alerts by "
            "class, cone search, Solar System objects, cutouts, and the column schema. "
            "Columns are named family:qualifier: i: the survey's values, d: Fink's."
        ),
    )

    @app.exception_handler(ArchiveUnavailable)
    def unavailable(_request: Request, err: ArchiveUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    def invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        messages = []
        for e in err.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body"))
            messages.append(f"{where or 'request'}: {e.get('msg')}")
        return JSONResponse({"detail": "; ".join(messages)}, status_code=422)

    def selection(columns: str | None) -> list[str] | None:
        if not columns:
            return None
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        known = store.types()
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise bad("columns", f"unknown column(s) {unknown}; see /api/v1/schema")
        return wanted

    def object_ids(value: str) -> list[str]:
        ids = [v.strip() for v in value.split(",") if v.strip()]
        if not ids:
            raise bad("objectId", "give at least one object id")
        if len(ids) > limits.max_objects:
            raise bad("objectId", f"{len(ids)} ids; at most {limits.max_objects} per request")
        wrong = [v for v in ids if not _OBJECT_ID.match(v)]
        if wrong:
            raise bad("objectId", f"{wrong[0]!r} is not a valid object id")
        return ids

    def window(startdate: str | None, stopdate: str | None) -> tuple[float | None, float | None]:
        start = parse_time(startdate, "startdate")
        stop = parse_time(stopdate, "stopdate")
        if start is not None and stop is not None and stop < start:
            raise bad("stopdate", "is before startdate")
        return start, stop

    def answer(frame: pd.DataFrame, fmt: str) -> Response:
        return render(frame, fmt, {**store.types(), **_EXTRA_TYPES})

    def with_cutouts(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
        name = L.column(L.CUTOUT_FAMILY, f"cutout{kind}")
        ids = frame[L.column(L.FINK_FAMILY, "alertId")].dropna().astype(int).tolist()
        found = store.cutouts(ids, kind)
        alert_ids = frame[L.column(L.FINK_FAMILY, "alertId")]
        frame[name] = [
            stamps.array(found[int(a)]) if pd.notna(a) and int(a) in found else None
            for a in alert_ids
        ]
        return frame

    def light_curves(query: ObjectsQuery) -> Response:
        ids = object_ids(query.objectId)
        frame = store.objects(ids, selection(query.columns))
        if query.withcutouts:
            if query.output_format == "votable":
                raise bad("withcutouts", "cutout arrays need json, csv or parquet output")
            frame = with_cutouts(frame, query.cutout_kind)
        if query.withupperlim:
            frame[TAG] = "valid"
            renamed = {
                L.column(L.INDEX_FAMILY, src): L.column(L.FINK_FAMILY, dst)
                for src, dst in _HISTORY_COLUMNS.items()
            }
            history = store.history(ids).rename(columns=renamed)
            history = history[[c for c in renamed.values() if c in history.columns]]
            frame = pd.concat([frame, history], ignore_index=True) if len(history) else frame
            frame = frame.sort_values(L.column(L.FINK_FAMILY, "mjd"), kind="stable")
            frame = frame.reset_index(drop=True)
        return answer(frame, query.output_format)

    @app.get("/api/v1/objects", summary="All alerts of one or several objects")
    def objects_get(
        objectId: Annotated[str, Query(description="object id(s), comma-separated")],
        columns: Annotated[str | None, Query(description="family:qualifier list")] = None,
        withupperlim: Annotated[bool, Query(description="add upper limits / forced")] = False,
        withcutouts: Annotated[bool, Query(description="add a cutout array per alert")] = False,
        cutout_kind: Annotated[Kind, Query(alias="cutout-kind")] = "Science",
        output_format: Annotated[Format, Query(alias="output-format")] = "json",
    ) -> Response:
        return light_curves(
            ObjectsQuery(
                objectId=objectId,
                columns=columns,
                withupperlim=withupperlim,
                withcutouts=withcutouts,
                cutout_kind=cutout_kind,
                output_format=output_format,
            )
        )

    @app.post("/api/v1/objects", summary="All alerts of objects (JSON body)")
    def objects_post(query: ObjectsQuery) -> Response:
        return light_curves(query)

    @app.get("/api/v1/latests", summary="Latest alerts of a Fink class")
    def latests(
        class_: Annotated[str, Query(alias="class", description="a label of /api/v1/classes")],
        n: Annotated[int, Query(ge=1, le=limits.max_results)] = 10,
        startdate: Annotated[str | None, Query(description="MJD or ISO 8601 (UTC)")] = None,
        stopdate: Annotated[str | None, Query(description="MJD or ISO 8601 (UTC)")] = None,
        columns: str | None = None,
        output_format: Annotated[Format, Query(alias="output-format")] = "json",
    ) -> Response:
        labels = [label for label, _ in RULES]
        if class_ not in labels:
            raise bad("class", f"{class_!r} is not a Fink class; one of {labels}")
        start, stop = window(startdate, stopdate)
        frame = store.latests(class_, n, selection(columns), start, stop)
        frame = frame.sort_values(L.column(L.FINK_FAMILY, "mjd"), ascending=False)
        return answer(frame.reset_index(drop=True), output_format)

    @app.get("/api/v1/conesearch", summary="Alerts within a radius of a position")
    def conesearch(
        ra: Annotated[float, Query(ge=0.0, lt=360.0, description="right ascension, deg")],
        dec: Annotated[float, Query(ge=-90.0, le=90.0, description="declination, deg")],
        radius: Annotated[float, Query(gt=0.0, description="radius, arcsec")],
        startdate: Annotated[str | None, Query(description="MJD or ISO 8601 (UTC)")] = None,
        stopdate: Annotated[str | None, Query(description="MJD or ISO 8601 (UTC)")] = None,
        columns: str | None = None,
        output_format: Annotated[Format, Query(alias="output-format")] = "json",
    ) -> Response:
        if radius > limits.max_radius_arcsec:
            raise bad("radius", f"{radius} arcsec exceeds the maximum {limits.max_radius_arcsec}")
        start, stop = window(startdate, stopdate)
        frame = store.conesearch(
            ra, dec, radius, selection(columns), start, stop, limit=limits.max_results
        )
        return answer(frame, output_format)

    @app.get("/api/v1/sso", summary="Alerts of known Solar System objects")
    def sso(
        n_or_d: Annotated[str, Query(description="name or number(s), comma-separated")],
        columns: str | None = None,
        output_format: Annotated[Format, Query(alias="output-format")] = "json",
    ) -> Response:
        names = [v.strip() for v in n_or_d.split(",") if v.strip()]
        if not names:
            raise bad("n_or_d", "give a Solar System object name or number")
        if any(L.KEY_SEP in L.sso_key(v) for v in names):
            raise bad("n_or_d", f"names do not contain {L.KEY_SEP!r}")
        return answer(store.sso(names, selection(columns)), output_format)

    @app.get("/api/v1/classes", summary="The labels Fink gives alerts")
    def classes() -> list[dict[str, str]]:
        return [{"class": label, "rule": rule} for label, rule in RULES]

    @app.get("/api/v1/schema", summary="Archived columns: type, unit, description")
    def schema() -> dict[str, object]:
        versions = store.schemas()
        # read at each request: `fink catalogs add` may run while the API serves
        module = local_module(settings)
        local = [module] if module is not None else []
        return {
            "survey": survey,
            "columns": list(column_docs(survey, store.types(), local)),
            "versions": [
                {"broker_version": v["broker_version"], "last_written": v["last_written"]}
                for v in versions
            ],
        }

    @app.get("/api/v1/cutouts", summary="One image cutout of an alert")
    def cutout(
        alertId: Annotated[str, Query(description="ZTF candid or Rubin diaSourceId")],
        kind: Kind = "Science",
        output_format: Annotated[
            Literal["FITS", "PNG", "array"], Query(alias="output-format")
        ] = "FITS",
    ) -> Response:
        if not alertId.strip().isdigit():
            raise bad("alertId", f"{alertId!r} is not an integer alert id")
        found = store.cutouts([int(alertId)], kind)
        if not found:
            if output_format == "array":
                return JSONResponse([])
            raise HTTPException(404, detail=f"alertId: no {kind} cutout for {alertId}")
        stamp = found[int(alertId)]
        if output_format == "FITS":
            return Response(stamps.fits_bytes(stamp), media_type="application/fits")
        if output_format == "PNG":
            return Response(stamps.png(stamp), media_type="image/png")
        return JSONResponse(stamps.array(stamp))

    return app

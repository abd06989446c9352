"""The REST API over the HBase archive of both surveys (FastAPI; OpenAPI at ``/docs``).

One process serves every survey, each under its own prefix with Fink's routes,
parameters and column names: ``/ztf/api/v1/...`` answers as ``api.ztf.fink-portal.org``
does and ``/rubin/api/v1/...`` (also ``/lsst/...``) as ``api.lsst.fink-portal.org``, so a
Fink script runs unchanged once its base URL is ``http://<host>:<port>/<survey>``. The
unprefixed ``/api/v1/...`` serves the configured survey (``stream2raw.survey``), and
``/<survey>/scs`` is an IVOA Simple Cone Search.

Every route takes GET (query string) and POST (JSON body) and answers json (default),
csv, parquet or votable (``output-format``). A wrong value gives 400, a missing, mistyped
or unknown parameter 422, both naming it; an id the archive does not know gives an empty
answer; an unreachable HBase, no free connection in time or a request past its time
give 503. Request bounds: :mod:`fink_broker.api.limits`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from fink_broker import __version__
from fink_broker.api import routes_alerts, routes_lists, routes_meta, routes_sky
from fink_broker.api.context import SurveyApi
from fink_broker.api.limits import RequestLimits, RequestTimeout
from fink_broker.api.parsing import BadParameter
from fink_broker.api.store import ArchiveStore, ArchiveUnavailable
from fink_broker.config import Settings
from fink_broker.plugins.filters import enabled_filters
from fink_broker.surveys import SurveyAdapter, build_surveys
from fink_broker.surveys.archive_shapes import shape_of


def survey_adapters(settings: Settings) -> dict[str, SurveyAdapter]:
    """Every survey's adapter, built once for the app (the one place the API asks)."""
    return build_surveys(settings)


def survey_router(settings: Settings, adapter: SurveyAdapter, store: ArchiveStore) -> APIRouter:
    """Fink's routes of one survey (its archive shape says which)."""
    api = SurveyApi(adapter, store, settings.api)
    tags = (
        [f.name for f in enabled_filters(adapter.name, settings.distribution.filters)]
        if settings.archive.tags
        else []
    )
    router = APIRouter()
    routes_alerts.register(router, api)
    routes_lists.register(router, api, tags)
    routes_sky.register(router, api)
    routes_meta.register(router, api, settings)
    return router


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(ArchiveUnavailable)
    def unavailable(_request: Request, err: ArchiveUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(RequestTimeout)
    def timeout(_request: Request, err: RequestTimeout) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=503)

    @app.exception_handler(BadParameter)
    def bad(_request: Request, err: BadParameter) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    def invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        messages = []
        for e in err.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body"))
            messages.append(f"{where or 'request'}: {e.get('msg')}")
        return JSONResponse({"detail": "; ".join(messages)}, status_code=422)


def create_app(settings: Settings, stores: dict[str, ArchiveStore] | None = None) -> FastAPI:
    """The API of every survey over the configured HBase."""
    adapters = survey_adapters(settings)
    stores = stores or {name: ArchiveStore(settings, a) for name, a in adapters.items()}
    app = FastAPI(
        title="Fink API",
        version=__version__,
        description=(
            "Alerts of the ZTF and Rubin streams archived by Fink, with Fink's routes, "
            "parameters and column names: /ztf/api/v1/... as api.ztf.fink-portal.org, "
            "/rubin/api/v1/... as api.lsst.fink-portal.org. Columns are family:qualifier: "
            "ZTF i: (survey) and d: (Fink), Rubin r: and f:, v: computed at query time, "
            "b: cutouts. Answers of more than api.max_rows rows come in pages: send the "
            "Fink-Next-Cursor header back as cursor."
        ),
    )
    _install_errors(app)
    default = settings.stream2raw.survey
    for name, adapter in adapters.items():
        router = survey_router(settings, adapter, stores[name])
        app.include_router(router, prefix=f"/{name}", tags=[name])
        for alias in shape_of(name).aliases:
            app.include_router(router, prefix=f"/{alias}", include_in_schema=False)
        if name == default:
            app.include_router(router, include_in_schema=False)

    @app.get("/", summary="The surveys served and their base URLs")
    def surveys() -> dict[str, object]:
        return {
            "surveys": {
                n: {"base": f"/{n}", "aliases": list(shape_of(n).aliases)} for n in adapters
            },
            "default": default,
            "docs": "/docs",
        }

    @app.api_route("/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    def unknown(path: str) -> JSONResponse:
        raise HTTPException(404, f"no route /{path}; the routes are listed at /docs")

    limits = settings.api
    app.add_middleware(
        RequestLimits,
        max_url_bytes=limits.max_url_bytes,
        max_body_bytes=limits.max_body_bytes,
        timeout_s=limits.request_timeout_s,
    )
    return app

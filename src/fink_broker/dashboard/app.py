"""The dashboard's web application: one page, its scripts, and the JSON it polls.

Routes:

- ``/``: the page (``static/index.html``), which loads ``/static/dashboard.js`` and
  Plotly's own ``plotly.min.js``, served from the ``plotly`` Python package: the page
  works on a machine without internet;
- ``/api/snapshot``: every panel's latest reading (:class:`Collector`);
- ``/api/lightcurve?objectId=…`` and ``/api/cutout?alertId=…&kind=…``: the REST API's
  answers passed on, or 503 with the sentence the panel shows when it is away.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response

from fink_broker import __version__
from fink_broker.dashboard.api_client import ApiUnavailable
from fink_broker.dashboard.collector import Collector

_STATIC = resources.files("fink_broker.dashboard") / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
#: cutouts never change for an alert id: the browser may keep them
_CUTOUT_CACHE = "public, max-age=86400, immutable"


@functools.cache
def plotly_js() -> bytes:
    """plotly.min.js as the ``plotly`` package ships it (read once per process)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode()


def _static(name: str) -> bytes:
    return (_STATIC / name).read_bytes()


def create_app(collector: Collector, *, start: bool = True) -> FastAPI:
    """The application over ``collector``; ``start`` runs its loops while the app lives."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start:
            collector.start()
        try:
            yield
        finally:
            collector.stop()

    app = FastAPI(
        title="Fink dashboard",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.collector = collector

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name == "plotly.min.js":
            return Response(plotly_js(), media_type=_TYPES[".js"])
        suffix = name[name.rfind(".") :] if "." in name else ""
        if suffix not in _TYPES or "/" in name or name.startswith("."):
            raise HTTPException(404, detail=f"no {name}")
        try:
            return Response(_static(name), media_type=_TYPES[suffix])
        except FileNotFoundError:
            raise HTTPException(404, detail=f"no {name}") from None

    @app.get("/api/snapshot")
    def snapshot() -> dict[str, Any]:
        return collector.snapshot()

    @app.get("/api/lightcurve")
    def light_curve(
        objectId: Annotated[str, Query(min_length=1, max_length=80)],
    ) -> Any:
        try:
            points = collector.api.light_curve(objectId)
        except ApiUnavailable as err:
            return _unavailable(err)
        return {"objectId": objectId, "points": points}

    @app.get("/api/cutout")
    def cutout(
        alertId: Annotated[str, Query(pattern=r"^\d{1,20}$")],
        kind: Literal["Science", "Template", "Difference"] = "Science",
    ) -> Response:
        try:
            png = collector.api.cutout_png(alertId, kind)
        except ApiUnavailable as err:
            return _unavailable(err)
        if png is None:
            return JSONResponse({"detail": f"no {kind} cutout of {alertId} in the archive"}, 404)
        return Response(png, media_type="image/png", headers={"Cache-Control": _CUTOUT_CACHE})

    return app


def _unavailable(err: ApiUnavailable) -> JSONResponse:
    """The API's own 400 stays a 400; anything else means the API is not there (503)."""
    status = 400 if err.status == 400 else 503
    return JSONResponse({"detail": str(err)}, status_code=status)

"""Routes that search the sky: Fink's conesearch and skymap, and IVOA Simple Cone Search.

All three read the cone-search index (HEALPix order 10), keep the alerts inside the
region and time window, and answer one row per object: its newest alert there, as
Fink groups them.
"""

from __future__ import annotations

import math

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from fink_broker.api import models as M
from fink_broker.api import parsing as P
from fink_broker.api import scs
from fink_broker.api import skymap as S
from fink_broker.api.context import SurveyApi
from fink_broker.api.index_reads import SEPARATION, latest_per_object
from fink_broker.api.limits import page_of
from fink_broker.api.routing import both
from fink_broker.surveys.base import TAI_MINUS_UTC_SECONDS
from fink_broker.tables.sky import disc_ranges

#: Fink's column of the event time of /skymap answers (a JD)
EVENT_JD = "v:jdstartgw"
JD_MINUS_MJD = 2400000.5


def register(router: APIRouter, api: SurveyApi) -> None:
    """Sky routes of one survey."""
    store, limits = api.store, api.limits

    def hits_in(ranges, start, stop, kind, parameter: str):
        try:
            return store.pixel_hits(ranges, start, stop, kind, limits.max_scan_rows)
        except OverflowError as err:
            raise P.BadParameter(parameter, f"{err}: narrow the search or give dates") from None

    def cone_frame(ra, dec, radius, start, stop, kind, n, columns):
        if radius > limits.max_radius_arcsec:
            raise P.BadParameter(
                "radius", f"{radius} arcsec exceeds the maximum {limits.max_radius_arcsec}"
            )
        hits = hits_in(disc_ranges(ra, dec, radius), start, stop, kind, "radius")
        n = min(n, limits.max_rows)
        return api.alerts(lambda cols: store.cone(ra, dec, radius, hits, n, cols), columns)

    def conesearch(params: M.Conesearch, request: Request) -> Response:
        ra, dec = P.parse_position(params.ra, params.dec)
        if not math.isfinite(params.radius):
            raise P.BadParameter("radius", "give a finite radius in arcsec")
        start, stop = P.time_window(params.startdate, params.stopdate, params.window, tai=api.tai)
        kind = params.kind or api.shape.cone_kind
        frame = cone_frame(ra, dec, params.radius, start, stop, kind, params.n, params.columns)
        return api.answer(frame, params.output_format, request)

    def skymap(params: M.Skymap, request: Request) -> Response:
        if params.event_name:
            raise P.BadParameter(
                "event_name", "GraceDB is an online service: send the map as bayestar"
            )
        if not params.bayestar:
            raise P.BadParameter("bayestar", "give the sky map (FITS, gzipped or not)")
        try:
            payload = S.decode_payload(params.bayestar, limits.max_skymap_bytes)
            region = S.credible_region(payload, params.credible_level)
        except S.BadSkymap as err:
            raise P.BadParameter("bayestar", str(err)) from None
        # the map's time is UTC; Rubin's alert times are TAI
        event = region.event_mjd + (TAI_MINUS_UTC_SECONDS / 86400.0 if api.tai else 0.0)
        start, stop = event - params.n_day_before, event + params.n_day_after
        hits = hits_in(region.index_ranges(), start, stop, "across", "credible_level")
        hits = [h for h in hits if h.first >= start]
        if hits:
            inside = region.contains(
                np.array([h.ra for h in hits]), np.array([h.dec for h in hits])
            )
            hits = [h for h, keep in zip(hits, inside, strict=True) if keep]
        chosen = sorted(latest_per_object(hits), key=lambda h: h.obj)
        page, following = page_of(chosen, api.cursor(params.cursor), limits.max_rows)
        frame = api.alerts(lambda cols: store.fetch([h.key for h in page], cols), params.columns)
        frame[EVENT_JD] = region.event_mjd + JD_MINUS_MJD
        return api.answer(frame, params.output_format, request, following, {EVENT_JD: "double"})

    def simple_cone_search(request: Request) -> Response:
        query = {k.upper(): v for k, v in request.query_params.items()}
        try:
            ra, dec, sr = (float(query[k]) for k in ("RA", "DEC", "SR"))
        except KeyError as err:
            return Response(scs.error(f"{err.args[0]}: required"), media_type=scs.MEDIA_TYPE)
        except ValueError:
            return Response(
                scs.error("RA, DEC and SR are decimal degrees"), media_type=scs.MEDIA_TYPE
            )
        problems = [
            name
            for name, ok in (
                ("RA", math.isfinite(ra) and 0 <= ra < 360),
                ("DEC", math.isfinite(dec) and -90 <= dec <= 90),
                ("SR", math.isfinite(sr) and 0 <= sr * 3600 <= limits.max_radius_arcsec),
            )
            if not ok
        ]
        if problems:
            message = (
                f"{problems[0]}: out of range (SR at most {limits.max_radius_arcsec / 3600} deg)"
            )
            return Response(scs.error(message), media_type=scs.MEDIA_TYPE)
        if sr == 0:
            frame = store.fetch([], None).iloc[0:0]
        else:
            try:
                wanted = ",".join(api.fink(n) for n in ("ra", "dec", "band", "mag"))
                frame = cone_frame(
                    ra, dec, sr * 3600, None, None, "across", limits.max_rows, wanted
                )
            except P.BadParameter as err:
                return Response(scs.error(str(err)), media_type=scs.MEDIA_TYPE)
        names = {api.fink(n): n for n in ("objectId", "alertId", "mjd", "ra", "dec", "band", "mag")}
        frame = frame.rename(columns={**names, SEPARATION: "separation"})
        return Response(scs.votable(frame), media_type=scs.MEDIA_TYPE)

    both(router, "/api/v1/conesearch", M.Conesearch, conesearch, "Objects within a radius")
    both(router, "/api/v1/skymap", M.Skymap, skymap, "Objects inside a GW credible region")
    router.add_api_route(
        "/scs",
        simple_cone_search,
        methods=["GET"],
        summary="IVOA Simple Cone Search 1.03 (RA, DEC, SR in degrees; VOTable)",
    )

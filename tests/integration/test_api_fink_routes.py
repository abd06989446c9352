"""Fink's routes and parameters, in Fink's own spelling, against the archive of both
surveys in a real HBase: each request gets an answer of Fink's shape.

One table row per (survey, route, parameters): the request goes as a GET (query string)
and as a POST (JSON body, what Fink's examples send), both must give the same answer,
and the answer must have Fink's columns with Fink's types, one row per object where Fink
groups (cone search, Rubin's ``/objects``). Values are checked against the science
archive where a route selects (objects, light curves, cutouts); ``test_archive.py``
checks every value of the light curves, this module the shapes of every route.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from astropy.coordinates import Angle
from astropy.io import fits
from PIL import Image

from fink_broker.engine.canonical import canonical_columns

pytestmark = pytest.mark.integration

#: Fink's computed columns of a light curve
COMPUTED = ("v:classification", "v:lastdate", "v:firstdate", "v:lapse", "v:constellation")


@dataclass(frozen=True)
class Sample:
    """Ids of the archived sample the requests name, read from the science archives."""

    ztf_object: str
    ztf_alerts: list[str]
    ztf_ra: float
    ztf_dec: float
    ztf_label: str
    rubin_object: str
    rubin_sources: list[str]
    rubin_ra: float
    rubin_dec: float
    rubin_sso: str
    rubin_night: str
    ztf_night: str


@pytest.fixture(scope="module")
def sample(archived) -> Sample:
    _, sciences = archived
    ztf, rubin = sciences["ztf"], sciences["rubin"]
    rows = ztf.select("objectId", "candid", "candidate.ra", "candidate.dec", "finkclass")
    by_object: dict[str, list] = {}
    for row in rows.collect():
        by_object.setdefault(row["objectId"], []).append(row)
    ztf_object = max(sorted(by_object), key=lambda o: len(by_object[o]))
    first = by_object[ztf_object][0]
    canon = canonical_columns(rubin, "rubin", ["objectId", "alertId", "ra", "dec"])
    rubin_rows = rubin.select(*[c.alias(n) for n, c in canon.items()], "sso_name", "night")
    rubin_by: dict[str, list] = {}
    sso = None
    for row in rubin_rows.collect():
        if row["objectId"] is not None:
            rubin_by.setdefault(row["objectId"], []).append(row)
        sso = sso or row["sso_name"]
    rubin_object = max(sorted(rubin_by), key=lambda o: len(rubin_by[o]))
    assert len(by_object[ztf_object]) >= 3 and len(rubin_by[rubin_object]) >= 3
    assert sso is not None, "the Rubin sample has a known Solar System object"
    return Sample(
        ztf_object=ztf_object,
        ztf_alerts=sorted(str(r["candid"]) for r in by_object[ztf_object]),
        ztf_ra=float(first["ra"]),
        ztf_dec=float(first["dec"]),
        ztf_label=first["finkclass"],
        rubin_object=rubin_object,
        rubin_sources=sorted(str(r["alertId"]) for r in rubin_by[rubin_object]),
        rubin_ra=float(rubin_by[rubin_object][0]["ra"]),
        rubin_dec=float(rubin_by[rubin_object][0]["dec"]),
        rubin_sso=sso,
        rubin_night=str(rubin_by[rubin_object][0]["night"]),
        ztf_night=str(ztf.select("night").first()[0]),
    )


def sexagesimal(ra: float, dec: float) -> tuple[str, str]:
    """``hh:mm:ss.sss``, ``+dd:mm:ss.ss``: how Fink's users also write positions."""
    hours = Angle(ra, "deg").to_string(unit="hourangle", sep=":", precision=4)
    degrees = Angle(dec, "deg").to_string(unit="deg", sep=":", precision=3, alwayssign=True)
    return hours, degrees


def rows_of(answer) -> list[dict[str, Any]]:
    assert answer.headers["content-type"].startswith("application/json"), answer.text[:200]
    body = answer.json()
    assert isinstance(body, list), body
    return body


def has_columns(rows: list[dict], *names: str) -> None:
    assert rows, "an empty answer shows no shape"
    missing = [n for n in names if any(n not in r for r in rows)]
    assert not missing, (missing, sorted(rows[0])[:40])


def of_type(rows: list[dict], kind: type, *names: str) -> None:
    for name in names:
        values = [r[name] for r in rows if r.get(name) is not None]
        assert values, f"{name}: no value to check"
        assert all(isinstance(v, kind) for v in values), (name, values[:3])


def one_row_per(rows: list[dict], column: str) -> None:
    ids = [r[column] for r in rows]
    assert len(ids) == len(set(ids)), f"more than one row per {column}"


# -- the shapes -------------------------------------------------------------------------


def ztf_light_curve(s: Sample, rows: list[dict]) -> None:
    has_columns(rows, "i:objectId", "i:candid", "i:jd", "i:magpsf", "i:fid", "d:finkclass")
    has_columns(rows, *COMPUTED, "v:rate", "v:g-r")
    of_type(rows, str, "i:candid", "i:objectId", "v:lastdate", "v:classification")
    of_type(rows, float, "i:jd", "i:magpsf", "v:lapse")
    assert {r["i:objectId"] for r in rows} == {s.ztf_object}
    assert sorted(r["i:candid"] for r in rows) == s.ztf_alerts
    jds = [r["i:jd"] for r in rows]
    assert jds == sorted(jds, reverse=True), "newest first, as Fink"


def ztf_with_limits(s: Sample, rows: list[dict]) -> None:
    tags = {r["d:tag"] for r in rows}
    assert "valid" in tags and tags <= {"valid", "upperlim", "badquality"}, tags
    limits = [r for r in rows if r["d:tag"] == "upperlim"]
    assert limits and all(r.get("i:diffmaglim") is not None for r in limits)
    assert sorted(r["i:candid"] for r in rows if r["d:tag"] == "valid") == s.ztf_alerts


def ztf_with_cutouts(s: Sample, rows: list[dict]) -> None:
    has_columns(rows, "b:cutoutScience_stampData")
    image = np.array(rows[0]["b:cutoutScience_stampData"], dtype=float)
    assert image.ndim == 2 and image.shape[0] > 10
    assert "b:cutoutTemplate_stampData" not in rows[0]


def selected(*names: str) -> Callable[[Sample, list[dict]], None]:
    def check(s: Sample, rows: list[dict]) -> None:
        has_columns(rows, *names)
        extra = set(rows[0]) - set(names)
        # the ids and time of each alert come with any selection (sorting, grouping)
        assert extra <= {"d:objectId", "d:alertId", "d:mjd", "f:objectId", "f:alertId", "f:mjd"}

    return check


def cone(object_column: str, survey_ra: str) -> Callable[[Sample, list[dict]], None]:
    def check(s: Sample, rows: list[dict]) -> None:
        has_columns(rows, object_column, survey_ra, "v:separation_degree")
        one_row_per(rows, object_column)
        seps = [r["v:separation_degree"] for r in rows]
        assert seps == sorted(seps), "nearest first"

    return check


def ztf_cone(s: Sample, rows: list[dict]) -> None:
    cone("i:objectId", "i:ra")(s, rows)
    assert s.ztf_object in {r["i:objectId"] for r in rows}


def rubin_cone(s: Sample, rows: list[dict]) -> None:
    cone("r:diaObjectId", "r:ra")(s, rows)
    assert s.rubin_object in {r["r:diaObjectId"] for r in rows}
    of_type(rows, str, "r:diaObjectId", "r:diaSourceId")


def latest_alerts(survey_object: str) -> Callable[[Sample, list[dict]], None]:
    def check(s: Sample, rows: list[dict]) -> None:
        has_columns(rows, survey_object, "v:classification", "v:lastdate")
        assert len(rows) <= 2

    return check


def ztf_trend(s: Sample, rows: list[dict]) -> None:
    has_columns(rows, "i:objectId", "v:rate")
    assert all(r["v:rate"] < 0 for r in rows), "rising: brighter, magnitudes falling"


def ztf_color(s: Sample, rows: list[dict]) -> None:
    has_columns(rows, "i:objectId", "v:g-r", "v:rate(g-r)", "v:sigma(g-r)")


def rubin_summary(s: Sample, rows: list[dict]) -> None:
    has_columns(rows, "r:diaObjectId", "r:ra", "r:dec", "f:mjd")
    of_type(rows, str, "r:diaObjectId")
    one_row_per(rows, "r:diaObjectId")
    assert [r["r:diaObjectId"] for r in rows] == [s.rubin_object]
    assert not [c for c in rows[0] if c.startswith("r:diaObject.")], "Fink's bare names"


def rubin_sources(s: Sample, rows: list[dict]) -> None:
    has_columns(rows, "r:diaSourceId", "r:diaObjectId", "r:midpointMjdTai", "r:psfFlux")
    has_columns(rows, "r:band", "f:mjd", *COMPUTED)
    of_type(rows, str, "r:diaSourceId", "r:diaObjectId")
    of_type(rows, float, "r:midpointMjdTai", "r:psfFlux")
    assert sorted(r["r:diaSourceId"] for r in rows) == s.rubin_sources
    assert not [c for c in rows[0] if c[:2] in ("i:", "d:")], "Rubin's families are r: and f:"


def rubin_forced(s: Sample, rows: list[dict]) -> None:
    has_columns(rows, "r:midpointMjdTai", "r:psfFlux", "r:band", "f:tag")
    assert {r["f:tag"] for r in rows} == {"forced"}
    times = [r["r:midpointMjdTai"] for r in rows]
    assert times == sorted(times, reverse=True)


def sso_alerts(s: Sample, rows: list[dict]) -> None:
    has_columns(rows, "r:diaSourceId", "f:sso_name", "r:midpointMjdTai")
    assert {r["f:sso_name"] for r in rows} == {s.rubin_sso}


def tag_list(s: Sample, body: Any) -> None:
    assert isinstance(body, list) and body and all(isinstance(t, str) for t in body)


def classes(s: Sample, body: Any) -> None:
    assert s.ztf_label in body["Fink classifiers"]


def schema(family_survey: str, family_fink: str) -> Callable[[Sample, Any], None]:
    def check(s: Sample, body: Any) -> None:
        titles = list(body)
        survey = next(t for t in titles if t.endswith(f"({family_survey}:)"))
        fink = next(t for t in titles if t.endswith(f"({family_fink}:)"))
        for group in (survey, fink):
            entry = next(iter(body[group].values()))
            assert set(entry) == {"type", "unit", "doc"}
        assert any("(v:)" in t for t in titles) and any("(b:)" in t for t in titles)

    return check


def statistics(night_column: str, alerts_column: str, prefix: str):
    def check(s: Sample, rows: list[dict]) -> None:
        has_columns(rows, night_column, alerts_column)
        assert len(rows) == 1
        night = s.ztf_night if prefix else s.rubin_night
        assert rows[0][night_column] == f"{prefix}{night}"
        of_type(rows, int, alerts_column)

    return check


def resolved(object_column: str, expected: Callable[[Sample], str]):
    def check(s: Sample, rows: list[dict]) -> None:
        has_columns(rows, object_column)
        assert expected(s) in {r[object_column] for r in rows}

    return check


def sso_names(s: Sample, rows: list[dict]) -> None:
    """A Solar System name resolves to its alerts (Rubin sources of no diaObject)."""
    has_columns(rows, "f:name", "f:source", "r:diaSourceId")
    assert {r["f:name"] for r in rows} == {s.rubin_sso} and {r["f:source"] for r in rows} == {"sso"}
    of_type(rows, str, "r:diaSourceId")


def empty_list(s: Sample, rows: list[dict]) -> None:
    assert rows == []


def anomalous(s: Sample, rows: list[dict]) -> None:
    has_columns(rows, "i:objectId", "d:anomaly_score", "v:classification")
    assert len(rows) <= 10
    assert all(r["d:anomaly_score"] <= -0.5 for r in rows), "archive.anomaly_threshold"


def blocks(s: Sample, body: Any) -> None:
    assert body and all(isinstance(v, str) and v for v in body.values()), body


def png_image(s: Sample, answer) -> None:
    assert answer.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(answer.content))
    assert image.size[0] > 10


def png_colour(s: Sample, answer) -> None:
    png_image(s, answer)
    assert Image.open(io.BytesIO(answer.content)).mode == "RGBA"


def fits_file(s: Sample, answer) -> None:
    assert fits.open(io.BytesIO(answer.content))[0].header["NAXIS"] >= 0


def all_arrays(s: Sample, body: Any) -> None:
    kinds = ("Science", "Template", "Difference")
    assert set(body) == {f"b:cutout{k}_stampData" for k in kinds}
    assert all(np.array(v, dtype=float).ndim == 2 for v in body.values())


@dataclass(frozen=True)
class Case:
    """One Fink request: survey, route, parameters (from the sample), and its shape."""

    survey: str
    route: str
    params: Callable[[Sample], dict[str, Any]]
    check: Callable[[Sample, Any], None]
    #: json: a list of rows; body: any JSON; raw: the response itself
    kind: str = "json"

    @property
    def name(self) -> str:
        return f"{self.survey}-{self.route}"


CASES = [
    # ZTF: api.ztf.fink-portal.org
    Case("ztf", "objects", lambda s: {"objectId": s.ztf_object}, ztf_light_curve),
    Case(
        "ztf",
        "objects",
        lambda s: {"objectId": s.ztf_object, "withupperlim": True},
        ztf_with_limits,
    ),
    Case(
        "ztf",
        "objects",
        lambda s: {"objectId": s.ztf_object, "withcutouts": True, "cutout-kind": "Science"},
        ztf_with_cutouts,
    ),
    Case(
        "ztf",
        "objects",
        lambda s: {"objectId": s.ztf_object, "columns": "i:jd,i:magpsf,v:lapse"},
        selected("i:jd", "i:magpsf", "v:lapse"),
    ),
    Case(
        "ztf",
        "objects",
        lambda s: {"objectId": s.ztf_object, "output-format": "json"},
        ztf_light_curve,
    ),
    Case("ztf", "latests", lambda s: {"class": s.ztf_label, "n": 2}, latest_alerts("i:objectId")),
    Case(
        "ztf",
        "latests",
        lambda s: {"class": s.ztf_label, "n": 100, "trend": "rising"},
        ztf_trend,
    ),
    Case("ztf", "latests", lambda s: {"class": s.ztf_label, "n": 5, "color": True}, ztf_color),
    Case(
        "ztf",
        "conesearch",
        lambda s: {"ra": s.ztf_ra, "dec": s.ztf_dec, "radius": 5, "n": 10},
        ztf_cone,
    ),
    Case(
        "ztf",
        "conesearch",
        lambda s: (
            dict(zip(("ra", "dec"), sexagesimal(s.ztf_ra, s.ztf_dec), strict=True)) | {"radius": 5}
        ),
        ztf_cone,
    ),
    Case(
        "ztf",
        "conesearch",
        # a JD startdate (Fink's rule: above 2,400,000 is a JD) and a window in days
        lambda s: {
            "ra": s.ztf_ra,
            "dec": s.ztf_dec,
            "radius": 5,
            "startdate": 2400000.5 + 10000.0,
            "window": 60000.0,
        },
        ztf_cone,
    ),
    Case(
        "ztf",
        "conesearch",
        lambda s: {
            "ra": s.ztf_ra,
            "dec": s.ztf_dec,
            "radius": 5,
            "startdate": "2090-01-01 00:00:00",
            "stopdate": "2090-01-02 00:00:00",
        },
        empty_list,
    ),
    Case("ztf", "classes", lambda s: {}, classes, "body"),
    Case("ztf", "schema", lambda s: {}, schema("i", "d"), "body"),
    Case(
        "ztf",
        "statistics",
        lambda s: {"date": s.ztf_night},
        statistics("key:key", "basic:sci", "ztf_"),
    ),
    Case(
        "ztf",
        "resolver",
        lambda s: {"resolver": "fink", "name": s.ztf_object.lower()},
        resolved("i:objectId", lambda s: s.ztf_object),
    ),
    Case(
        "ztf",
        "resolver",
        lambda s: {"resolver": "fink", "name": s.ztf_object, "reverse": True},
        resolved("i:objectId", lambda s: s.ztf_object),
    ),
    Case("ztf", "anomaly", lambda s: {"n": 10}, anomalous),
    Case("ztf", "cutouts", lambda s: {"objectId": s.ztf_object}, png_image, "raw"),
    Case(
        "ztf",
        "cutouts",
        lambda s: {
            "objectId": s.ztf_object,
            "candid": s.ztf_alerts[0],
            "kind": "Difference",
            "stretch": "linear",
            "colormap": "viridis",
            "pmin": 1,
            "pmax": 99,
            "convolution_kernel": "gauss",
        },
        png_colour,
        "raw",
    ),
    Case(
        "ztf",
        "cutouts",
        lambda s: {"objectId": s.ztf_object, "kind": "All", "output-format": "array"},
        all_arrays,
        "body",
    ),
    Case(
        "ztf",
        "cutouts",
        lambda s: {"objectId": s.ztf_object, "kind": "Template", "output-format": "FITS"},
        fits_file,
        "raw",
    ),
    # Rubin: api.lsst.fink-portal.org
    Case("rubin", "objects", lambda s: {"diaObjectId": s.rubin_object}, rubin_summary),
    Case("rubin", "sources", lambda s: {"diaObjectId": s.rubin_object}, rubin_sources),
    Case(
        "rubin",
        "sources",
        lambda s: {"diaObjectId": s.rubin_object, "columns": "r:psfFlux,r:midpointMjdTai"},
        selected("r:psfFlux", "r:midpointMjdTai"),
    ),
    Case("rubin", "fp", lambda s: {"diaObjectId": s.rubin_object}, rubin_forced),
    Case(
        "rubin",
        "conesearch",
        lambda s: {"ra": s.rubin_ra, "dec": s.rubin_dec, "radius": 5, "kind": "across"},
        rubin_cone,
    ),
    Case(
        "rubin",
        "conesearch",
        lambda s: {"ra": s.rubin_ra, "dec": s.rubin_dec, "radius": 5, "kind": "within"},
        rubin_cone,
    ),
    Case("rubin", "sso", lambda s: {"n_or_d": s.rubin_sso}, sso_alerts),
    Case("rubin", "tags", lambda s: {}, tag_list, "body"),
    Case("rubin", "blocks", lambda s: {}, blocks, "body"),
    Case("rubin", "schema", lambda s: {}, schema("r", "f"), "body"),
    Case(
        "rubin",
        "statistics",
        lambda s: {"date": s.rubin_night},
        statistics("f:night", "f:alerts", ""),
    ),
    Case(
        "rubin",
        "resolver",
        lambda s: {"resolver": "ssodnet", "name_or_id": s.rubin_sso.lower()},
        sso_names,
    ),
    Case(
        "rubin",
        "cutouts",
        lambda s: {"diaSourceId": s.rubin_sources[0], "kind": "Science"},
        png_image,
        "raw",
    ),
    Case(
        "rubin",
        "cutouts",
        lambda s: {"diaSourceId": s.rubin_sources[0], "output-format": "FITS"},
        fits_file,
        "raw",
    ),
]


def as_query(params: dict[str, Any]) -> dict[str, str]:
    """Query-string values as a browser or ``requests.get`` would send them."""
    return {k: str(v) for k, v in params.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fink_request_gets_finks_shape_by_get_and_post(api, sample, case):
    params = case.params(sample)
    path = f"/{case.survey}/api/v1/{case.route}"
    got = api.get(path, params=as_query(params))
    posted = api.post(path, json=params)
    assert got.status_code == 200, (params, got.text[:500])
    assert posted.status_code == 200, (params, posted.text[:500])
    if case.kind == "raw":
        assert got.content == posted.content
        case.check(sample, got)
        return
    body = got.json()
    assert posted.json() == body, "GET and POST answer alike"
    case.check(sample, rows_of(got) if case.kind == "json" else body)


def test_every_route_of_finks_lists_is_served_by_get_and_post(api):
    """Fink's routes of each survey (issue 25's list), both methods, in the OpenAPI spec."""
    spec = json.loads(api.get("/openapi.json").text)["paths"]
    routes = {
        "ztf": "objects latests conesearch sso cutouts classes schema statistics resolver "
        "skymap anomaly",
        "rubin": "objects sources fp conesearch tags cutouts schema statistics resolver blocks",
    }
    for survey, names in routes.items():
        for name in names.split():
            path = f"/{survey}/api/v1/{name}"
            assert {"get", "post"} <= set(spec.get(path, {})), path
    assert "/ztf/scs" in spec and "/rubin/scs" in spec


def test_one_process_serves_both_surveys_and_finks_lsst_host_name(api, sample):
    """``/lsst`` is Fink's name of the Rubin host; unprefixed routes serve the configured
    survey (ZTF here), so a script that only swaps its base URL runs unchanged."""
    rubin = api.get("/rubin/api/v1/sources", params={"diaObjectId": sample.rubin_object})
    lsst = api.get("/lsst/api/v1/sources", params={"diaObjectId": sample.rubin_object})
    assert rubin.status_code == lsst.status_code == 200 and rubin.json() == lsst.json()
    plain = api.get("/api/v1/objects", params={"objectId": sample.ztf_object})
    assert (
        plain.json()
        == api.get("/ztf/api/v1/objects", params={"objectId": sample.ztf_object}).json()
    )
    surveys = api.get("/").json()
    assert set(surveys["surveys"]) == {"ztf", "rubin"}


def test_rubin_answers_to_the_former_column_names_as_documented_aliases(api, sample):
    """``i:``/``d:`` named Rubin columns before this API followed Fink's ``r:``/``f:``;
    a selection in the old names still works and answers in Fink's names."""
    old = api.get(
        "/rubin/api/v1/sources",
        params={"diaObjectId": sample.rubin_object, "columns": "i:psfFlux,d:mjd"},
    ).json()
    assert old and all({"r:psfFlux", "f:mjd"} <= set(r) for r in old)

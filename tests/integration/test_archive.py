"""archive and the REST API on the science archive of the 150 real alerts, with a real
standalone HBase (started by ``fink_broker.infra.hbase_local``) and a real Spark session.

The archive must hold one main-table row per science alert (and keep that count when a
night is archived again); the API must give back, for each object, exactly the alerts of
the science archive with every value equal, and its cone, class and Solar System queries
must select what independent computations on the science archive select.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.io.votable import parse_single_table
from PIL import Image
from pyspark.sql import types as T

from fink_broker.api.store import ArchiveStore
from fink_broker.engine.canonical import canonical_columns
from fink_broker.services import archive
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import alert_struct, survey_fields
from fink_broker.tables.layout import TableKind

pytestmark = pytest.mark.integration

SURVEYS = ("ztf", "rubin")


def families(survey: str) -> tuple[str, str]:
    """(survey family, Fink family) of the API columns, as Fink names them."""
    return ("i", "d") if survey == "ztf" else ("r", "f")


def url(survey: str, route: str) -> str:
    return f"/{survey}/api/v1/{route}"


def science_rows(science) -> list[dict[str, Any]]:
    return [r.asDict(recursive=True) for r in science.collect()]


def object_ids(science, survey: str) -> list[str]:
    canon = canonical_columns(science, survey, ["objectId"])["objectId"]
    return sorted({r[0] for r in science.select(canon).collect() if r[0] is not None})


def table_counts(settings, survey: str) -> dict[str, int]:
    store = ArchiveStore(settings, get_adapter(survey))
    return {kind.value: store.count(kind) for kind in TableKind}


@pytest.mark.parametrize("survey", SURVEYS)
def test_one_main_row_per_alert_and_rearchiving_changes_nothing(archived, survey):
    settings, sciences = archived
    science = sciences[survey]
    settings.stream2raw.survey = survey
    before = table_counts(settings, survey)
    assert before["alerts"] == science.count() > 0
    assert before["cutouts"] == science.count()
    assert before["pixel"] == science.count()
    assert before["class"] == science.count()
    assert before["schema"] == 1
    assert before["upper"] > 0 and before["names"] > 0 and before["statistics"] > 0
    nights = sorted({r[0] for r in science.select("night").distinct().collect()})
    for night in nights:
        written = archive.archive_night(settings, night)
        assert written[archive.archive_tables(settings, survey).name(TableKind.ALERTS)] > 0
    assert table_counts(settings, survey) == before
    settings.stream2raw.survey = "ztf"


def jsonable(value: Any, dtype: T.DataType) -> Any:
    """What the API's JSON must say for a science-archive value (written independently)."""
    if value is None:
        return None
    if isinstance(dtype, T.LongType):
        return str(value)
    if isinstance(dtype, T.FloatType) and math.isfinite(value):
        return float(str(np.float32(value)))  # the shortest decimal of the float32
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime):
        return pd.Timestamp(value, tz="UTC").isoformat()
    return value


def expected_columns(row: dict[str, Any], schema: T.StructType, survey: str) -> dict[str, Any]:
    """``family:qualifier`` -> JSON value of one science alert, per the documented layout."""
    adapter = get_adapter(survey)
    main, fields = alert_struct(adapter), survey_fields(adapter)
    own, fink = families(survey)
    out: dict[str, Any] = {}
    structs = []
    for field in schema.fields:
        name, value = field.name, row[field.name]
        if name.startswith("cutout"):
            continue
        if name not in fields:
            out[f"{fink}:{name}"] = jsonable(value, field.dataType)
        elif isinstance(field.dataType, T.StructType):
            structs.append(field)
        elif not isinstance(field.dataType, T.ArrayType):
            out[f"{own}:{name}"] = jsonable(value, field.dataType)
    # struct fields after the top-level ones, which win over their copies (candid)
    for field in structs:
        value = row[field.name]
        for sub in field.dataType.fields:
            qualifier = sub.name if field.name == main else f"{field.name}.{sub.name}"
            sub_value = None if value is None else value[sub.name]
            out.setdefault(f"{own}:{qualifier}", jsonable(sub_value, sub.dataType))
    return out


@pytest.mark.parametrize("survey", SURVEYS)
def test_light_curves_equal_the_science_archive(archived, api, survey):
    """Every alert of every object, every value equal to the science archive's, newest
    first (Fink's order); Rubin's light curve is /sources, ZTF's /objects."""
    _, sciences = archived
    science = sciences[survey]
    adapter = get_adapter(survey)
    _, fink = families(survey)
    route, param = ("objects", "objectId") if survey == "ztf" else ("sources", "diaObjectId")
    canon = canonical_columns(science, survey, ["objectId"])["objectId"]
    rows = [r.asDict(recursive=True) for r in science.withColumn("_oid", canon).collect()]
    checked = 0
    for object_id in object_ids(science, survey):
        answer = api.get(url(survey, route), params={param: object_id})
        assert answer.status_code == 200, answer.text
        got = {r[f"{fink}:alertId"]: r for r in answer.json()}
        mine = [r for r in rows if r["_oid"] == object_id]
        assert sorted(got) == sorted(str(r[adapter.alert_id]) for r in mine), object_id
        for row in mine:
            record = got[str(row[adapter.alert_id])]
            for name, value in expected_columns(row, science.schema, survey).items():
                assert record.get(name) == value, (object_id, name, record.get(name), value)
            checked += 1
        mjds = [r[f"{fink}:mjd"] for r in answer.json()]
        assert mjds == sorted(mjds, reverse=True)
    assert checked == len([r for r in rows if r["_oid"] is not None])
    assert checked >= 3 * len(object_ids(science, survey)) - 3, "the later alerts are archived"


def test_upper_limits_and_bad_quality_points_are_the_alert_histories(archived, api):
    """withupperlim adds each non-detection of the histories (d:tag upperlim, with ZTF's
    own fields) and each earlier detection that is not an archived alert (badquality)."""
    _, sciences = archived
    science = sciences["ztf"]
    seen = {"upperlim": 0, "badquality": 0}
    archived_times: dict[str, set] = {}
    for row in science.collect():
        archived_times.setdefault(row["objectId"], set()).add(round(row["candidate"]["jd"], 6))
    for object_id in object_ids(science, "ztf"):
        limits, detections = set(), set()
        for row in science.where(science.objectId == object_id).collect():
            for prv in row["prv_candidates"] or []:
                if prv["magpsf"] is None:
                    limits.add((prv["jd"], prv["diffmaglim"]))
                elif round(prv["jd"], 6) not in archived_times[object_id]:
                    detections.add((prv["jd"], prv["candid"]))
        answer = api.get(
            url("ztf", "objects"), params={"objectId": object_id, "withupperlim": "True"}
        ).json()
        uppers = {
            (r["i:jd"], float(np.float32(r["i:diffmaglim"])))
            for r in answer
            if r["d:tag"] == "upperlim"
        }
        assert uppers == {(jd, float(np.float32(m))) for jd, m in limits}, object_id
        bad = {(r["i:jd"], int(r["i:candid"])) for r in answer if r["d:tag"] == "badquality"}
        assert bad == detections, object_id
        assert sum(r["d:tag"] == "valid" for r in answer) >= 1
        seen["upperlim"] += len(limits)
        seen["badquality"] += len(detections)
    assert seen["upperlim"] > 0 and seen["badquality"] > 0, f"the test checks nothing: {seen}"


@pytest.mark.parametrize("survey", SURVEYS)
def test_conesearch_returns_the_newest_alert_of_each_object_inside_the_radius(
    archived, api, survey
):
    _, sciences = archived
    science = sciences[survey]
    adapter = get_adapter(survey)
    _, fink = families(survey)
    canon = canonical_columns(science, survey, ["objectId", "mjd"])
    positions = science.select(
        canon["objectId"].alias("obj"),
        canon["mjd"].alias("mjd"),
        adapter.alert_id,
        adapter.ra,
        adapter.dec,
    ).toPandas()
    positions = positions[positions["obj"].notna()]
    alert = adapter.alert_id.split(".")[-1]
    coords = SkyCoord(positions["ra"].to_numpy() * u.deg, positions["dec"].to_numpy() * u.deg)
    limit = 18000.0
    crowd = [int((coords.separation(c).arcsec <= limit).sum()) for c in coords]
    centre = int(np.argmax(crowd))
    separation = coords.separation(coords[centre]).arcsec
    positions = positions.assign(sep=separation)
    for radius in (
        10.0,
        limit,
        float(np.sort(np.unique(np.round(separation, 3)))[min(2, len(separation) - 1)]) + 0.001,
    ):
        answer = api.get(
            url(survey, "conesearch"),
            params={
                "ra": float(coords[centre].ra.deg),
                "dec": float(coords[centre].dec.deg),
                "radius": radius,
            },
        )
        assert answer.status_code == 200, answer.text
        inside = positions[positions["sep"] <= radius]
        newest = inside.sort_values("mjd").groupby("obj").tail(1)
        got = answer.json()
        assert sorted(r[f"{fink}:alertId"] for r in got) == sorted(str(i) for i in newest[alert])
        assert len({r[f"{fink}:objectId"] for r in got}) == len(got), "one row per object"
        seps = [r["v:separation_arcsec"] for r in got]
        assert seps == sorted(seps) and all(s <= radius for s in seps)
        assert all(
            abs(r["v:separation_degree"] * 3600 - r["v:separation_arcsec"]) < 1e-9 for r in got
        )
    assert crowd[centre] >= 2 or survey == "ztf", "no two Rubin alerts within the radius"


def test_sso_and_class_queries_return_what_the_science_archive_says(archived, api):
    _, sciences = archived
    science = sciences["rubin"]
    rows = science_rows(science)
    named = [r for r in rows if r["sso_name"] is not None]
    assert named, "the Rubin sample has known Solar System objects"
    for name in {r["sso_name"] for r in named}:
        answer = api.get(url("rubin", "sso"), params={"n_or_d": name})
        assert answer.status_code == 200, answer.text
        got = sorted(r["f:alertId"] for r in answer.json())
        assert got == sorted(str(r["diaSourceId"]) for r in named if r["sso_name"] == name)
        spaced = api.get(url("rubin", "sso"), params={"n_or_d": f" {name.lower()} "}).json()
        assert sorted(r["f:alertId"] for r in spaced) == got
    ztf_rows = science_rows(sciences["ztf"])
    labels = api.get(url("ztf", "classes")).json()["Fink classifiers"]
    assert "Unknown" in labels
    for label in {r["finkclass"] for r in ztf_rows}:
        members = [r for r in ztf_rows if r["finkclass"] == label]
        answer = api.get(url("ztf", "latests"), params={"class": label, "n": 1000}).json()
        assert sorted(r["d:alertId"] for r in answer) == sorted(str(r["candid"]) for r in members)
        mjds = [r["d:mjd"] for r in answer]
        assert mjds == sorted(mjds, reverse=True)
        newest = api.get(url("ztf", "latests"), params={"class": label, "n": 1}).json()
        assert [r["d:mjd"] for r in newest] == mjds[:1]
        start = sorted(mjds)[len(mjds) // 2]
        windowed = api.get(
            url("ztf", "latests"), params={"class": label, "n": 1000, "startdate": start}
        ).json()
        assert sorted(r["d:mjd"] for r in windowed) == sorted(m for m in mjds if m >= start)


def test_every_format_parses_with_its_standard_reader(archived, api):
    _, sciences = archived
    object_id = object_ids(sciences["ztf"], "ztf")[0]
    columns = "i:candid,i:magpsf,i:jd,d:mjd,d:finkclass,d:lc_amplitude_r"
    params = {"objectId": object_id, "columns": columns}
    as_json = pd.DataFrame(api.get(url("ztf", "objects"), params=params).json())
    assert set(columns.split(",")) <= set(as_json.columns)
    csv = api.get(url("ztf", "objects"), params={**params, "output-format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    from_csv = pd.read_csv(io.StringIO(csv.text))
    parquet = api.get(url("ztf", "objects"), params={**params, "output-format": "parquet"})
    from_parquet = pd.read_parquet(io.BytesIO(parquet.content))
    votable = api.get(url("ztf", "objects"), params={**params, "output-format": "votable"})
    from_votable = parse_single_table(io.BytesIO(votable.content))
    from_votable = from_votable.to_table(use_names_over_ids=True).to_pandas()
    for frame in (from_csv, from_parquet, from_votable):
        assert len(frame) == len(as_json) >= 3
        assert [str(v) for v in frame["i:candid"]] == list(as_json["i:candid"])
        assert np.allclose(frame["i:magpsf"].astype(float), as_json["i:magpsf"].astype(float))
    assert from_parquet["i:magpsf"].dtype == np.float32


def test_cutouts_as_fits_png_and_array(archived, api):
    _, sciences = archived
    row = sciences["ztf"].first()
    stamp = gzip.decompress(row["cutoutScience"]["stampData"])
    fits_answer = api.get(
        url("ztf", "cutouts"),
        params={"objectId": row["objectId"], "candid": row["candid"], "output-format": "FITS"},
    )
    assert fits_answer.status_code == 200 and fits_answer.content == stamp
    data = fits.open(io.BytesIO(fits_answer.content))[0].data
    png = api.get(
        url("ztf", "cutouts"), params={"objectId": row["objectId"], "candid": row["candid"]}
    )
    assert png.headers["content-type"] == "image/png", "Fink's default output is PNG"
    assert Image.open(io.BytesIO(png.content)).size == data.shape[::-1]
    array = api.get(
        url("ztf", "cutouts"),
        params={"alertId": row["candid"], "kind": "Difference", "output-format": "array"},
    ).json()
    difference = fits.open(io.BytesIO(gzip.decompress(row["cutoutDifference"]["stampData"])))
    expected = np.asarray(difference[0].data, dtype=float)
    got = np.array(array["b:cutoutDifference_stampData"], dtype=float)
    assert np.allclose(got, expected, equal_nan=True)
    rubin = sciences["rubin"].first()
    raw = api.get(
        url("rubin", "cutouts"),
        params={"diaSourceId": rubin["diaSourceId"], "kind": "Template", "output-format": "FITS"},
    )
    assert raw.status_code == 200 and fits.open(io.BytesIO(raw.content))[0] is not None


def test_schema_documents_every_archived_column(archived, api):
    for survey in SURVEYS:
        own, fink = families(survey)
        schema = api.get(url(survey, "schema")).json()
        fink_columns = next(v for k, v in schema.items() if k.endswith(f"({fink}:)"))
        survey_columns = next(v for k, v in schema.items() if k.endswith(f"({own}:)"))
        assert schema["versions"] and schema["versions"][0]["broker_version"]
        assert fink_columns[f"{fink}:mjd"]["type"] == "double"
        assert fink_columns[f"{fink}:mjd"]["unit"] == "d"
        assert fink_columns[f"{fink}:finkclass"]["doc"]
        main = "i:magpsf" if survey == "ztf" else "r:psfFlux"
        assert survey_columns[main]["doc"], main
        assert [n for n, c in fink_columns.items() if not c["doc"]] == []
        assert "v:classification" in schema["Fink on-the-fly added values (v:)"]


def test_bad_requests_say_which_parameter_is_wrong(archived, api):
    base = "/ztf/api/v1"
    missing = api.get(f"{base}/objects")
    assert missing.status_code == 422 and "objectId" in missing.json()["detail"]
    wide = api.get(f"{base}/conesearch", params={"ra": 10, "dec": 10, "radius": 1e6})
    assert wide.status_code == 400 and "radius" in wide.json()["detail"]
    off_sky = api.get(f"{base}/conesearch", params={"ra": 10, "dec": 100, "radius": 5})
    assert off_sky.status_code == 400 and "dec" in off_sky.json()["detail"]
    malformed = api.get(f"{base}/objects", params={"objectId": "ZTF 20'; drop"})
    assert malformed.status_code == 400 and "objectId" in malformed.json()["detail"]
    bad_id = api.get(f"{base}/cutouts", params={"candid": "12ab"})
    assert bad_id.status_code == 400 and "candid" in bad_id.json()["detail"]
    bad_class = api.get(f"{base}/latests", params={"class": "Dragons"})
    assert bad_class.status_code == 400 and "class" in bad_class.json()["detail"]
    bad_column = api.get(f"{base}/objects", params={"objectId": "ZTF1", "columns": "i:nope"})
    assert bad_column.status_code == 400 and "columns" in bad_column.json()["detail"]
    bad_date = api.get(f"{base}/latests", params={"class": "Unknown", "startdate": "soon"})
    assert bad_date.status_code == 400 and "startdate" in bad_date.json()["detail"]
    unknown_param = api.get(f"{base}/objects", params={"objectId": "ZTF1", "colums": "i:jd"})
    assert unknown_param.status_code == 422 and "colums" in unknown_param.json()["detail"]
    unknown = api.get(f"{base}/objects", params={"objectId": "ZTF99zzzzzzz"})
    assert unknown.status_code == 200 and unknown.json() == []
    assert api.get(f"{base}/sso", params={"n_or_d": "no such rock"}).json() == []
    missing_cutout = api.get(f"{base}/cutouts", params={"candid": "1"})
    assert missing_cutout.status_code == 404 and "candid" in missing_cutout.json()["detail"]
    docs = api.get("/docs")
    assert docs.status_code == 200
    spec = json.loads(api.get("/openapi.json").text)
    assert {"/ztf/api/v1/conesearch", "/rubin/api/v1/sources", "/rubin/scs"} <= set(spec["paths"])

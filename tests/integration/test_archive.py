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
from fastapi.testclient import TestClient
from PIL import Image
from pyspark.sql import types as T

from fink_broker.api.app import create_app
from fink_broker.api.store import ArchiveStore
from fink_broker.engine.canonical import canonical_columns
from fink_broker.services import archive
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import alert_struct, survey_fields
from fink_broker.tables.layout import TableKind
from tests.spark.test_raw2science import make_lake, run_bounded

pytestmark = pytest.mark.integration

SURVEYS = ("ztf", "rubin")


@pytest.fixture(scope="module")
def archived(spark, datasim, local_hbase, tmp_path_factory):
    """Science archives of both surveys, archived into HBase by the streaming service."""
    settings, _ = make_lake(spark, datasim, tmp_path_factory.mktemp("archive"))
    settings.hbase = local_hbase.hbase
    settings.hbase.namespace = "itarchive"
    settings.archive.trigger = "availableNow"
    out = {}
    for survey in SURVEYS:
        science = run_bounded(spark, settings, survey)
        settings.stream2raw.survey = survey
        query = archive.start(settings, spark)
        query.awaitTermination()
        assert query.exception() is None
        out[survey] = science
    return settings, out


def client_for(settings, survey: str) -> TestClient:
    settings.stream2raw.survey = survey
    return TestClient(create_app(settings))


def science_rows(science) -> list[dict[str, Any]]:
    return [r.asDict(recursive=True) for r in science.collect()]


def object_ids(science, survey: str) -> list[str]:
    canon = canonical_columns(science, survey, ["objectId"])["objectId"]
    return sorted({r[0] for r in science.select(canon).collect() if r[0] is not None})


def table_counts(settings, survey: str) -> dict[str, int]:
    store = ArchiveStore(settings, survey)
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
    nights = sorted({r[0] for r in science.select("night").distinct().collect()})
    for night in nights:
        written = archive.archive_night(settings, night)
        assert written[archive.archive_tables(settings, survey).name(TableKind.ALERTS)] > 0
    assert table_counts(settings, survey) == before


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
    out: dict[str, Any] = {}
    structs = []
    for field in schema.fields:
        name, value = field.name, row[field.name]
        if name.startswith("cutout"):
            continue
        if name not in fields:
            out[f"d:{name}"] = jsonable(value, field.dataType)
        elif isinstance(field.dataType, T.StructType):
            structs.append(field)
        elif not isinstance(field.dataType, T.ArrayType):
            out[f"i:{name}"] = jsonable(value, field.dataType)
    # struct fields after the top-level ones, which win over their copies (candid)
    for field in structs:
        value = row[field.name]
        for sub in field.dataType.fields:
            qualifier = sub.name if field.name == main else f"{field.name}.{sub.name}"
            sub_value = None if value is None else value[sub.name]
            out.setdefault(f"i:{qualifier}", jsonable(sub_value, sub.dataType))
    return out


@pytest.mark.parametrize("survey", SURVEYS)
def test_light_curves_equal_the_science_archive(archived, survey):
    settings, sciences = archived
    science = sciences[survey]
    client = client_for(settings, survey)
    adapter = get_adapter(survey)
    canon = canonical_columns(science, survey, ["objectId"])["objectId"]
    rows = [r.asDict(recursive=True) for r in science.withColumn("_oid", canon).collect()]
    checked = 0
    for object_id in object_ids(science, survey):
        answer = client.get("/api/v1/objects", params={"objectId": object_id})
        assert answer.status_code == 200, answer.text
        got = {r["d:alertId"]: r for r in answer.json()}
        mine = [r for r in rows if r["_oid"] == object_id]
        assert sorted(got) == sorted(str(r[adapter.alert_id]) for r in mine), object_id
        for row in mine:
            record = got[str(row[adapter.alert_id])]
            for name, value in expected_columns(row, science.schema, survey).items():
                assert record.get(name) == value, (object_id, name, record.get(name), value)
            checked += 1
        mjds = [r["d:mjd"] for r in answer.json()]
        assert mjds == sorted(mjds)
    assert checked == len([r for r in rows if r["_oid"] is not None])


def test_upper_limits_are_the_alert_histories(archived):
    settings, sciences = archived
    science = sciences["ztf"]
    client = client_for(settings, "ztf")
    seen = 0
    for object_id in object_ids(science, "ztf"):
        limits = set()
        for row in science.where(science.objectId == object_id).collect():
            for prv in row["prv_candidates"] or []:
                if prv["magpsf"] is None:
                    limits.add((prv["jd"] - 2400000.5, prv["diffmaglim"]))
        answer = client.get(
            "/api/v1/objects", params={"objectId": object_id, "withupperlim": "true"}
        ).json()
        uppers = {(r["d:mjd"], r["d:maglim"]) for r in answer if r["d:tag"] == "upperlim"}
        assert uppers == limits, object_id
        assert sum(r["d:tag"] == "valid" for r in answer) >= 1
        seen += len(limits)
    assert seen > 0, "no upper limit in the sample: the test checks nothing"


@pytest.mark.parametrize("survey", SURVEYS)
def test_conesearch_returns_the_alerts_inside_the_radius_only(archived, survey):
    settings, sciences = archived
    science = sciences[survey]
    client = client_for(settings, survey)
    adapter = get_adapter(survey)
    positions = science.select(adapter.alert_id, adapter.ra, adapter.dec).toPandas()
    ids = [str(i) for i in positions[adapter.alert_id.split(".")[-1]]]
    coords = SkyCoord(positions["ra"].to_numpy() * u.deg, positions["dec"].to_numpy() * u.deg)
    limit = settings.api.max_radius_arcsec
    # centre on the alert with the most neighbours within the largest radius allowed
    crowd = [int((coords.separation(c).arcsec <= limit).sum()) for c in coords]
    centre = int(np.argmax(crowd))
    separation = coords.separation(coords[centre]).arcsec
    nearest = np.sort(separation)
    radii = [10.0, limit]
    if crowd[centre] >= 3:  # a radius between two neighbours: one in, one out
        radii.append(float((nearest[1] + nearest[2]) / 2))
    for radius in radii:
        answer = client.get(
            "/api/v1/conesearch",
            params={
                "ra": float(coords[centre].ra.deg),
                "dec": float(coords[centre].dec.deg),
                "radius": radius,
            },
        )
        assert answer.status_code == 200, answer.text
        got = [r["d:alertId"] for r in answer.json()]
        expected = {i for i, s in zip(ids, separation, strict=True) if s <= radius}
        assert ids[centre] in got
        assert set(got) == expected, radius
        assert len(got) == len(expected)
        seps = [r["v:separation_arcsec"] for r in answer.json()]
        assert seps == sorted(seps) and all(s <= radius for s in seps)
        truth = {i: s for i, s in zip(ids, separation, strict=True)}
        assert all(abs(s - truth[i]) < 1e-6 for i, s in zip(got, seps, strict=True))
    assert crowd[centre] >= 2 or survey == "ztf", "no two Rubin alerts within the radius"


def test_sso_and_class_queries_return_what_the_science_archive_says(archived):
    settings, sciences = archived
    science = sciences["rubin"]
    client = client_for(settings, "rubin")
    rows = science_rows(science)
    named = [r for r in rows if r["sso_name"] is not None]
    assert named, "the Rubin sample has known Solar System objects"
    for name in {r["sso_name"] for r in named}:
        answer = client.get("/api/v1/sso", params={"n_or_d": name})
        assert answer.status_code == 200, answer.text
        got = sorted(r["d:alertId"] for r in answer.json())
        assert got == sorted(str(r["diaSourceId"]) for r in named if r["sso_name"] == name)
        spaced = client.get("/api/v1/sso", params={"n_or_d": f" {name.lower()} "}).json()
        assert sorted(r["d:alertId"] for r in spaced) == got
    labels = client.get("/api/v1/classes").json()
    assert "Unknown" in {c["class"] for c in labels}
    for label in {r["fink_class"] for r in rows}:
        members = [r for r in rows if r["fink_class"] == label]
        answer = client.get("/api/v1/latests", params={"class": label, "n": 1000}).json()
        assert sorted(r["d:alertId"] for r in answer) == sorted(
            str(r["diaSourceId"]) for r in members
        )
        mjds = [r["d:mjd"] for r in answer]
        assert mjds == sorted(mjds, reverse=True)
        newest = client.get("/api/v1/latests", params={"class": label, "n": 1}).json()
        assert [r["d:mjd"] for r in newest] == mjds[:1]
        start = sorted(mjds)[len(mjds) // 2]
        windowed = client.get(
            "/api/v1/latests", params={"class": label, "n": 1000, "startdate": start}
        ).json()
        assert sorted(r["d:mjd"] for r in windowed) == sorted(m for m in mjds if m >= start)


def test_every_format_parses_with_its_standard_reader(archived):
    settings, sciences = archived
    client = client_for(settings, "ztf")
    object_id = object_ids(sciences["ztf"], "ztf")[0]
    columns = "i:candid,i:magpsf,i:jd,d:mjd,d:fink_class,d:lc_amplitude_r"
    params = {"objectId": object_id, "columns": columns}
    as_json = pd.DataFrame(client.get("/api/v1/objects", params=params).json())
    assert set(columns.split(",")) <= set(as_json.columns)
    csv = client.get("/api/v1/objects", params={**params, "output-format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    from_csv = pd.read_csv(io.StringIO(csv.text))
    parquet = client.get("/api/v1/objects", params={**params, "output-format": "parquet"})
    from_parquet = pd.read_parquet(io.BytesIO(parquet.content))
    votable = client.get("/api/v1/objects", params={**params, "output-format": "votable"})
    from_votable = parse_single_table(io.BytesIO(votable.content))
    from_votable = from_votable.to_table(use_names_over_ids=True).to_pandas()
    for frame in (from_csv, from_parquet, from_votable):
        assert len(frame) == len(as_json)
        assert [str(v) for v in frame["i:candid"]] == list(as_json["i:candid"])
        assert np.allclose(frame["i:magpsf"].astype(float), as_json["i:magpsf"].astype(float))
    assert from_parquet["i:magpsf"].dtype == np.float32


def test_cutouts_as_fits_png_and_array(archived):
    settings, sciences = archived
    client = client_for(settings, "ztf")
    row = sciences["ztf"].first()
    stamp = gzip.decompress(row["cutoutScience"]["stampData"])
    answer = client.get("/api/v1/cutouts", params={"alertId": row["candid"]})
    assert answer.status_code == 200 and answer.content == stamp
    data = fits.open(io.BytesIO(answer.content))[0].data
    png = client.get("/api/v1/cutouts", params={"alertId": row["candid"], "output-format": "PNG"})
    assert Image.open(io.BytesIO(png.content)).size == data.shape[::-1]
    array = client.get(
        "/api/v1/cutouts",
        params={"alertId": row["candid"], "kind": "Difference", "output-format": "array"},
    ).json()
    difference = fits.open(io.BytesIO(gzip.decompress(row["cutoutDifference"]["stampData"])))
    expected = np.asarray(difference[0].data, dtype=float)
    assert np.allclose(np.array(array, dtype=float), expected, equal_nan=True)
    rubin = sciences["rubin"].first()
    raw = client_for(settings, "rubin").get(
        "/api/v1/cutouts", params={"alertId": rubin["diaSourceId"], "kind": "Template"}
    )
    assert raw.status_code == 200 and fits.open(io.BytesIO(raw.content))[0] is not None


def test_schema_documents_every_archived_column(archived):
    settings, _ = archived
    for survey in SURVEYS:
        schema = client_for(settings, survey).get("/api/v1/schema").json()
        columns = {c["name"]: c for c in schema["columns"]}
        assert schema["versions"] and schema["versions"][0]["broker_version"]
        assert columns["d:mjd"]["type"] == "double" and columns["d:mjd"]["unit"] == "d"
        assert columns["d:fink_class"]["doc"]
        main = "i:magpsf" if survey == "ztf" else "i:psfFlux"
        assert columns[main]["doc"], main
        undocumented = [n for n, c in columns.items() if not c["doc"] and n.startswith("d:")]
        assert undocumented == []


def test_bad_requests_say_which_parameter_is_wrong(archived):
    settings, _ = archived
    client = client_for(settings, "ztf")
    missing = client.get("/api/v1/objects")
    assert missing.status_code == 422 and "objectId" in missing.json()["detail"]
    wide = client.get("/api/v1/conesearch", params={"ra": 10, "dec": 10, "radius": 1e6})
    assert wide.status_code == 400 and "radius" in wide.json()["detail"]
    off_sky = client.get("/api/v1/conesearch", params={"ra": 10, "dec": 100, "radius": 5})
    assert off_sky.status_code == 422 and "dec" in off_sky.json()["detail"]
    malformed = client.get("/api/v1/objects", params={"objectId": "ZTF 20'; drop"})
    assert malformed.status_code == 400 and "objectId" in malformed.json()["detail"]
    bad_id = client.get("/api/v1/cutouts", params={"alertId": "12ab"})
    assert bad_id.status_code == 400 and "alertId" in bad_id.json()["detail"]
    bad_class = client.get("/api/v1/latests", params={"class": "Dragons"})
    assert bad_class.status_code == 400 and "class" in bad_class.json()["detail"]
    bad_column = client.get("/api/v1/objects", params={"objectId": "ZTF1", "columns": "i:nope"})
    assert bad_column.status_code == 400 and "columns" in bad_column.json()["detail"]
    bad_date = client.get("/api/v1/latests", params={"class": "Unknown", "startdate": "soon"})
    assert bad_date.status_code == 400 and "startdate" in bad_date.json()["detail"]
    unknown = client.get("/api/v1/objects", params={"objectId": "ZTF99zzzzzzz"})
    assert unknown.status_code == 200 and unknown.json() == []
    assert client.get("/api/v1/sso", params={"n_or_d": "no such rock"}).json() == []
    missing_cutout = client.get("/api/v1/cutouts", params={"alertId": "1"})
    assert missing_cutout.status_code == 404 and "alertId" in missing_cutout.json()["detail"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    spec = json.loads(client.get("/openapi.json").text)
    assert "/api/v1/conesearch" in spec["paths"]

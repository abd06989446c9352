"""Tables of the former layout (``_``-joined keys, Rubin families ``i``/``d``) in a real
HBase: the archive service and the API refuse them with the fix, and ``fink archive
--rebuild`` makes them the current layout from the science archive."""

from __future__ import annotations

import copy

import pytest
from fastapi.testclient import TestClient

from fink_broker.api.app import create_app
from fink_broker.infra.hbase_client import connect
from fink_broker.infra.hbase_schema import StaleArchive
from fink_broker.services import archive
from fink_broker.tables.layout import TableKind

pytestmark = pytest.mark.integration


def test_former_layout_is_refused_until_rebuilt(spark, archived):
    settings, sciences = archived
    old = copy.deepcopy(settings)
    old.hbase.namespace = "itmigrate"
    ztf, rubin = archive.archive_tables(old, "ztf"), archive.archive_tables(old, "rubin")
    connection = connect(old)
    try:
        # Rubin's main table as this broker created it before Fink's families
        connection.create_table(rubin.name(TableKind.ALERTS), {"i": {}, "d": {}})
        # a ZTF archive of layout 1: a schema row without layout, a '_'-joined key
        for kind in (TableKind.ALERTS, TableKind.SCHEMA):
            names = ("i", "d") if kind == TableKind.ALERTS else ("c", "r")
            connection.create_table(ztf.name(kind), {name: {} for name in names})
        connection.table(ztf.name(TableKind.SCHEMA)).put(
            b"0.1_abcdef", {b"c:d:mjd": b"double", b"r:broker_version": b"0.1"}
        )
        connection.table(ztf.name(TableKind.ALERTS)).put(b"ZTF20aaelulu_58849.5", {b"d:x": b"1"})
    finally:
        connection.close()

    for survey, reason in (("rubin", "families"), ("ztf", "layout")):
        with pytest.raises(StaleArchive, match=rf"(?s){reason}.*--rebuild --survey {survey}"):
            archive.create_tables(old, survey)
    served = TestClient(create_app(old)).get("/ztf/api/v1/schema")
    assert served.status_code == 503 and "--rebuild" in served.json()["detail"]

    old.stream2raw.survey = "ztf"
    nights = archive.rebuild(old, spark)
    assert set(nights) == {str(r[0]) for r in sciences["ztf"].select("night").distinct().collect()}
    assert archive.create_tables(old, "ztf") == [], "every table is there, of the current layout"
    client = TestClient(create_app(old))
    assert client.get("/ztf/api/v1/schema").status_code == 200
    counts = client.get("/ztf/api/v1/statistics", params={"date": ""}).json()
    assert sum(r["basic:sci"] for r in counts) == sciences["ztf"].count()
    objects = {r[0] for r in sciences["ztf"].select("objectId").collect()}
    some = sorted(objects)[0]
    rows = client.get("/ztf/api/v1/objects", params={"objectId": some}).json()
    assert rows and {r["i:objectId"] for r in rows} == {some}

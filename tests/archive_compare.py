"""What two runs of the pipeline on the same input must hold alike, stage by stage.

The cluster test (cluster against local mode) and the one-pass test (one query against
the four services) compare the same things: every archived column but the times of
processing, every message of every filter topic, every HBase row and cell.
"""

from __future__ import annotations

import io
import json

import fastavro
import pandas as pd

from fink_broker.api.store import ArchiveStore
from fink_broker.infra.hbase_client import connect
from fink_broker.infra.hbase_schema import WRITTEN_CELL
from fink_broker.lake import Lake
from fink_broker.plugins.filters import topic_name
from fink_broker.services.distribution import selected_filters
from fink_broker.surveys import get_adapter
from fink_broker.tables import statistics
from fink_broker.tables.layout import ArchiveTables, TableKind, key_parts
from tests.integration.topics import read_topic as read_topic_bytes

#: columns whose values say when a run processed the alert, not what it computed
TIME_COLUMNS = ("fink_ingest_time", "processing_start", "processing_end")


def without_times(names: list[str]) -> list[str]:
    """``names`` but the times of processing."""
    return [n for n in names if n not in TIME_COLUMNS]


def assert_archives_equal(spark, one, other, survey: str, stage: str) -> None:
    """The ``stage`` archives (raw, science) of two settings' roots: same columns, rows
    and values, times of processing aside."""
    a = spark.read.parquet(getattr(Lake(one.paths.root, survey), stage))
    b = spark.read.parquet(getattr(Lake(other.paths.root, survey), stage))
    columns = without_times(b.columns)
    assert without_times(a.columns) == columns, (survey, stage)
    assert a.count() == b.count() > 0, (survey, stage)
    a, b = a.select(*columns), b.select(*columns)
    assert a.exceptAll(b).count() == 0, (survey, stage)
    assert b.exceptAll(a).count() == 0, (survey, stage)


def read_topic(bootstrap: str, topic: str) -> list[dict]:
    """Every record of ``topic`` decoded (key = writer schema), times of processing aside."""
    out = []
    for key, value in read_topic_bytes(bootstrap, topic):
        record = fastavro.schemaless_reader(
            io.BytesIO(value), fastavro.parse_schema(json.loads(key))
        )
        out.append({k: v for k, v in record.items() if k not in TIME_COLUMNS})
    return out


def hbase_rows(settings, survey: str) -> dict[str, dict[bytes, dict[bytes, bytes]]]:
    """Every row of every table of ``survey`` under the settings' namespace, as stored, but
    the time each schema row was written; the main table's packed cells hold processing
    times, so it is compared decoded (:func:`main_rows`)."""
    tables = ArchiveTables(settings.hbase.namespace, survey)
    connection = connect(settings)
    try:
        return {
            kind.value: {
                key: {c: v for c, v in cells.items() if c != WRITTEN_CELL}
                for key, cells in connection.table(tables.name(kind)).scan()
            }
            for kind in TableKind
            if kind != TableKind.ALERTS
        }
    finally:
        connection.close()


def nightly_sums(rows: dict[bytes, dict[bytes, bytes]]) -> dict[bytes, statistics.Counts]:
    """The counts of each night of the statistics table, its per-file cells merged."""
    return {night: statistics.merge(cells.values()) for night, cells in rows.items()}


def main_rows(settings, survey: str) -> pd.DataFrame:
    """The main table decoded as the REST API reads it, processing times left out."""
    tables = ArchiveTables(settings.hbase.namespace, survey)
    connection = connect(settings)
    try:
        keys = [key for key, _ in connection.table(tables.name(TableKind.ALERTS)).scan()]
    finally:
        connection.close()
    objects = sorted({key_parts(key)[0] for key in keys})
    page = ArchiveStore(settings, get_adapter(survey)).objects(objects, None, limit=len(keys))
    assert page.cursor is None, "one page holds every row of the table"
    frame = page.frame
    frame = frame[[c for c in frame.columns if not any(t in c for t in TIME_COLUMNS)]]
    return frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)


def assert_topics_equal(one, other, surveys) -> int:
    """Every filter topic of two settings' prefixes holds the same records; returns how
    many each holds in all."""
    published = 0
    for survey in surveys:
        adapter = get_adapter(survey)
        for f in selected_filters(other, survey):
            got = []
            for s in (one, other):
                topic = topic_name(f, adapter.topic_suffix, s.distribution.topic_prefix)
                records = read_topic(s.kafka.bootstrap_servers, topic)
                got.append(sorted(records, key=lambda r: r[adapter.alert_id]))
            assert got[0] == got[1], (survey, f.name)
            published += len(got[1])
    return published


def assert_hbase_equal(one, other, survey: str) -> None:
    """The HBase tables of two settings' namespaces: the main table decoded, every other
    row and cell as stored (the statistics table by night)."""
    a, b = main_rows(one, survey), main_rows(other, survey)
    assert len(a) == len(b) > 0, survey
    pd.testing.assert_frame_equal(a, b)
    a, b = hbase_rows(one, survey), hbase_rows(other, survey)
    for kind, rows in b.items():
        assert sorted(a[kind]) == sorted(rows), (survey, kind)
        if kind == TableKind.STATISTICS.value:
            # a night's cells are per science file (or per in-memory batch), which the two
            # runs cut differently: the night's sums are what must agree
            a[kind] = nightly_sums(a[kind])
            rows = nightly_sums(rows)
        assert a[kind] == rows, (survey, kind)

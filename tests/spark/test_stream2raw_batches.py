"""stream2raw's micro-batch writer on Kafka-shaped frames: the one-pass write with its
counts, and a batch replayed after a crash (already committed by the raw archive)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import types as T

from fink_broker.config import load_settings
from fink_broker.engine.session import java_strings
from fink_broker.engine.sinks import committed, leaves, write_batch
from fink_broker.lake import Lake
from fink_broker.services.stream2raw import RawBatchWriter
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from tests.conftest import base_overrides
from tests.spark.test_decode import kafka_like

pytestmark = pytest.mark.spark


def test_one_pass_counts_and_a_replayed_batch_changes_nothing(spark, datasim, tmp_path):
    settings = load_settings(None, env={}, overrides=base_overrides(tmp_path))
    adapter = get_adapter("ztf")
    records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / "ztf")][:12]
    good = [adapter.encode(r) for r in records]
    messages = [*good, b"not an avro container", good[0][: len(good[0]) // 2]]
    batch = kafka_like(spark, messages)
    lake = Lake(settings.paths.root, "ztf")
    writer = RawBatchWriter(spark, settings, adapter)
    assert not committed(spark, lake.raw, 0)
    writer(batch, 0)
    assert committed(spark, lake.raw, 0) and not committed(spark, lake.raw, 1)
    writer(batch, 0)  # the same batch again, as after a crash before the checkpoint commit
    writer(kafka_like(spark, good[:3]), 1)  # and a clean batch: its quarantine entry is empty
    assert committed(spark, lake.quarantine, 1)
    raw = spark.read.parquet(lake.raw)
    assert raw.count() == 15 and raw.select("candid").distinct().count() == 12
    quarantine = spark.read.parquet(lake.quarantine)
    assert sorted(r["kafka_offset"] for r in quarantine.collect()) == [12, 13]
    assert {bytes(r["value"]) for r in quarantine.collect()} == set(messages[12:])
    lines = (Path(settings.paths.state_dir) / "metrics" / "stream2raw.jsonl").read_text()
    metrics = [json.loads(line) for line in lines.splitlines()]
    assert [(m["rows_in"], m["rows_out"], m["quarantined"]) for m in metrics] == [
        (14, 12, 2),
        (14, 12, 2),
        (3, 3, 0),
    ]
    assert sum(metrics[0]["detail"]["quarantine_reasons"].values()) == 2


def _column_chunks(path: str) -> list[dict[str, pq.ColumnChunkMetaData]]:
    """The column chunks of the first row group of each Parquet file under ``path``, by
    column path."""
    files = sorted(Path(path).rglob("*.parquet"))
    assert files
    out = []
    for file in files:
        meta = pq.ParquetFile(file).metadata.row_group(0)
        out.append({meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)})
    return out


def test_binary_columns_are_written_without_dictionary_or_statistics(spark, tmp_path):
    """Unique gzipped stamps gain nothing from a dictionary or min/max statistics; the
    other columns keep both.

    Repeated values make the dictionary pay off, so Parquet keeps one wherever the writer
    allows it, and it writes statistics by default: only the options that
    :func:`write_batch` passes can take them away.
    """
    rows = [(i, "20240101", (b"same stamp" * 50, "same name")) for i in range(200)]
    # camelCase, as the surveys name their fields: Parquet column paths are case-sensitive
    frame = spark.createDataFrame(
        rows, "id long, night string, cutoutScience struct<stampData: binary, name: string>"
    )
    path = str(tmp_path / "lake")
    write_batch(spark, frame, path, 0, ["night"])
    for columns in _column_chunks(path):
        encodings = {p: c.encodings for p, c in columns.items()}
        assert not any("DICTIONARY" in e for e in encodings["cutoutScience.stampData"]), encodings
        assert any("DICTIONARY" in e for e in encodings["cutoutScience.name"]), encodings
        stamp, name = columns["cutoutScience.stampData"], columns["cutoutScience.name"]
        assert not (stamp.is_stats_set and stamp.statistics.has_min_max), stamp.statistics
        assert name.is_stats_set and name.statistics.has_min_max, name.statistics


def test_floating_columns_are_written_without_dictionary(spark, tmp_path):
    """Measured values are almost all distinct, so Fink skips the dictionary Parquet would
    try on them; whole numbers and strings keep it.

    The values here repeat, so that Parquet's own choice would be a dictionary for every
    column: only the options that :func:`write_batch` passes can take it away.
    """
    rows = [(i % 3, "20240101", 1.5, "g", [(2.5, 1), (3.5, 2)]) for i in range(200)]
    frame = spark.createDataFrame(
        rows,
        "fid long, night string, magpsf double, band string,"
        " prv_candidates array<struct<jd: double, fid: int>>",
    )
    path = str(tmp_path / "lake")
    write_batch(spark, frame, path, 0, ["night"])
    for columns in _column_chunks(path):
        encodings = {p: c.encodings for p, c in columns.items()}
        dictionary = {p for p, names in encodings.items() if any("DICTIONARY" in n for n in names)}
        assert dictionary == {"fid", "band", "prv_candidates.list.element.fid"}, encodings


def test_leaves_follow_structs_and_lists_not_maps():
    schema = T.StructType(
        [
            T.StructField("id", T.LongType()),
            T.StructField("cutout", T.BinaryType()),
            T.StructField(
                "stamp",
                T.StructType(
                    [T.StructField("data", T.BinaryType()), T.StructField("name", T.StringType())]
                ),
            ),
            T.StructField("images", T.ArrayType(T.BinaryType())),
            T.StructField("prv", T.ArrayType(T.StructType([T.StructField("jd", T.DoubleType())]))),
            T.StructField("extra", T.MapType(T.StringType(), T.DoubleType())),
        ]
    )
    assert [path for path, _ in leaves(schema)] == [
        "id",
        "cutout",
        "stamp.data",
        "stamp.name",
        "images.list.element",
        "prv.list.element.jd",
    ]


def test_java_strings_arrive_whole_and_in_order(spark):
    values = ["parquet.enable.dictionary#candidate.jd", "false", "", "night"]
    assert list(java_strings(spark, values)) == values
    assert list(java_strings(spark, [])) == []
    with pytest.raises(ValueError, match="newline"):
        java_strings(spark, ["two\nlines"])

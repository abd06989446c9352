"""stream2raw's micro-batch writer on Kafka-shaped frames: the one-pass write with its
counts, and a batch replayed after a crash (already committed by the raw archive)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fink_broker.config import load_settings
from fink_broker.engine.sinks import committed
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

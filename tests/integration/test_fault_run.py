"""The fault run of 2,000 ZTF alerts: every service SIGKILLed once at a random moment,
Kafka and HBase restarted once each, and not one alert lost or duplicated in an archive.

One scenario (``fault_run``): the four services of a live night, each its own supervised
`fink start` process with its own Spark JVM, a test Kafka broker and a test HBase of its
own (the session's are not restarted under other tests). The seed of the moments comes
from ``FINK_FAULT_SEED`` (default: drawn, and printed), so an order that fails can be run
again. ``benchmarks/faults.py`` runs the same scenario at 100,000 alerts.
"""

from __future__ import annotations

import os
import random

import pytest

from fink_broker.infra import hbase_local, kafka_local
from fink_broker.kafka_clients import ensure_topics
from tests.integration.conftest import hbase_settings
from tests.integration.fault_run import SERVICES, FaultRun, report, run_settings, store_counts

pytestmark = pytest.mark.integration

TOTAL, RATE = 2000, 15.0


@pytest.fixture
def own_hbase(tmp_path):
    settings = hbase_settings(tmp_path / "hbase-state")
    yield settings
    hbase_local.stop_hbase(settings, timeout=60)


def test_no_alert_lost_or_duplicated_through_kills_and_outages(
    spark, fresh_kafka_settings, own_hbase, datasim, tmp_path
):
    seed = int(os.environ.get("FINK_FAULT_SEED", random.randrange(10**6)))
    kafka_local.start_kafka(fresh_kafka_settings)
    hbase_local.start_hbase(own_hbase)
    settings = run_settings(tmp_path / "run", fresh_kafka_settings, own_hbase, "ztf")
    ensure_topics(settings.kafka, [settings.stream2raw.topic], 2)
    run = FaultRun.create(settings, fresh_kafka_settings, own_hbase, tmp_path / "run")
    try:
        summary = run.run(
            survey="ztf",
            folder=datasim / "ztf",
            total=TOTAL,
            rate=RATE,
            seed=seed,
            settle_timeout=600,
        )
    finally:
        run.stop()
    assert summary.delivery_errors == 0 and summary.alerts == TOTAL, summary
    counts = store_counts(spark, run, "ztf")
    print(f"\nfault run, seed {seed}:", *report(run, counts), sep="\n  ")
    assert {k.service for k in run.kills} == set(SERVICES)
    assert counts["raw"].held == counts["raw"].expected == TOTAL
    for store in ("kafka offsets in raw", "raw", "science", "hbase alerts"):
        c = counts[store]
        assert (c.lost, c.duplicated, c.foreign) == (0, 0, 0), (store, c, seed)
    assert counts["science"].expected > 0
    topics = {name: c for name, c in counts.items() if name.startswith("topic ")}
    assert sum(c.expected for c in topics.values()) > 0, "no filter selected anything"
    for name, c in topics.items():
        assert (c.lost, c.foreign) == (0, 0), (name, c, seed)

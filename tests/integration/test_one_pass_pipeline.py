"""`fink start pipeline` (one query, one micro-batch for every stage) against the four
services run one after the other, on the 150 real alerts; and a SIGKILL of the pipeline in
the middle of a replay of 5,000 alerts.

Both runs read the same input topics, with the same modules (a local catalogue included,
so that ``xmatch_local`` matches) and filters, into their own data roots, topic prefixes
and HBase namespaces. The raw and science archives must hold the same alerts with the same
values (times of processing aside), every filter topic the same messages, and the HBase
tables the same rows and cells.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fink_broker.config import dump_toml, load_settings
from fink_broker.infra import processes
from fink_broker.kafka_clients import ensure_topics
from fink_broker.lake import Lake
from fink_broker.services import pipeline
from fink_broker.services.streaming import committed_batches, metrics_lines
from fink_broker.simulator.replay import replay
from tests.archive_compare import assert_archives_equal, assert_hbase_equal, assert_topics_equal
from tests.cluster.pipeline import SURVEYS, run_pipeline, topic_of
from tests.conftest import REPO, base_overrides
from tests.integration.fault_run import expected_science_ids, raw_ids, science_ids
from tests.spark.test_raw2science import add_near_catalogue

pytestmark = pytest.mark.integration

INPUT, SEPARATE, ONE_PASS = "opin", "opsep", "opone"


def run_settings(tmp: Path, name: str, kafka: str, hbase, catalogues: Path):
    """Settings of one run: its data root, state, topic prefix and HBase namespace."""
    settings = load_settings(
        None,
        env={},
        overrides={
            **base_overrides(tmp / name),
            "kafka.bootstrap_servers": kafka,
            "raw2science.catalogue_dir": str(catalogues),
            "hbase.thrift_port": hbase.hbase.thrift_port,
            "hbase.namespace": name,
            "distribution.topic_prefix": f"{name}_",
        },
    )
    return settings


@pytest.fixture(scope="module")
def runs(spark, local_kafka, local_hbase, datasim, tmp_path_factory):
    """The 150 real alerts of each survey through the four services, and through the
    one-pass pipeline with ``archive.in_pipeline``."""
    tmp = tmp_path_factory.mktemp("one-pass")
    catalogues = tmp / "catalogues"
    add_near_catalogue(datasim, tmp, catalogues)
    separate = run_settings(tmp, SEPARATE, local_kafka.bootstrap, local_hbase, catalogues)
    one_pass = run_settings(tmp, ONE_PASS, local_kafka.bootstrap, local_hbase, catalogues)
    for survey in SURVEYS:
        summary = replay(
            separate, survey=survey, folder=datasim / survey, topic=topic_of(INPUT, survey)
        )
        assert summary.delivery_errors == 0 and summary.delivered == summary.alerts > 0
    run_pipeline(spark, separate, INPUT)

    one_pass.stream2raw.trigger = "availableNow"
    one_pass.archive.in_pipeline = True
    for survey in SURVEYS:
        one_pass.stream2raw.survey = survey
        one_pass.stream2raw.topic = topic_of(INPUT, survey)
        query = pipeline.start(one_pass, spark)
        query.awaitTermination()
        assert query.exception() is None, query.exception()
    return separate, one_pass


@pytest.mark.parametrize("stage", ["raw", "science"])
def test_archives_are_those_of_the_four_services(runs, spark, datasim, stage):
    separate, one_pass = runs
    for survey in SURVEYS:
        assert_archives_equal(spark, one_pass, separate, survey, stage)
    science = spark.read.parquet(Lake(one_pass.paths.root, "ztf").science)
    assert science.where("xm_near_id IS NOT NULL").count() > 0, "xmatch_local matched none"


def test_topics_are_those_of_the_four_services(runs):
    separate, one_pass = runs
    published = assert_topics_equal(one_pass, separate, SURVEYS)
    assert published > 0, "no filter selected any real alert: the test compares nothing"


def test_hbase_rows_are_those_of_the_four_services(runs):
    separate, one_pass = runs
    for survey in SURVEYS:
        assert_hbase_equal(one_pass, separate, survey)


def batch_totals(settings, service: str, survey: str) -> int:
    """``rows_out`` of the batches ``service`` logged for ``survey``, each batch once (both
    surveys' runs share the state folder, and their batch ids)."""
    lines = {
        line["batch_id"]: line
        for line in metrics_lines(settings, service)
        if line.get("detail", {}).get("survey") == survey and "event" not in line
    }
    return sum(line["rows_out"] for line in lines.values())


@pytest.mark.parametrize("survey", SURVEYS)
def test_each_stage_logs_its_batches(runs, datasim, survey):
    """The stages log their lines under their own service names, as the separate
    services do (the dashboard and `fink show` read them), and the pipeline its own."""
    separate, one_pass = runs
    raw = batch_totals(one_pass, "stream2raw", survey)
    assert raw == len(list((datasim / survey).glob("*.avro")))
    science = batch_totals(one_pass, "raw2science", survey)
    assert 0 < science == batch_totals(one_pass, "archive", survey) <= raw
    for service in ("stream2raw", "raw2science", "distribution", "archive"):
        assert batch_totals(one_pass, service, survey) == batch_totals(separate, service, survey)
    lines = [
        line
        for line in metrics_lines(one_pass, pipeline.SERVICE)
        if line["detail"]["survey"] == survey
    ]
    assert sum(line["detail"]["archived"] for line in lines) == raw
    assert sum(line["detail"]["science"] for line in lines) == science
    assert sum(line["rows_out"] for line in lines) == batch_totals(separate, "distribution", survey)
    stages = set().union(*(line["detail"]["stages_s"] for line in lines))
    assert stages == {"stream2raw", "raw2science", "distribution", "archive"}


TOTAL, RATE = 5000, 250.0


def test_sigkill_mid_replay_loses_and_duplicates_nothing(spark, local_kafka, datasim, tmp_path):
    """`fink start pipeline` (a supervised process), SIGKILLed with its process group while
    5,000 alerts are replayed, then started again: raw and science hold each alert once."""
    settings = load_settings(
        None,
        env={},
        overrides={
            **base_overrides(tmp_path),
            "paths.models_cache": str(REPO / "models-cache"),
            "spark.driver_memory": "1g",
            "kafka.bootstrap_servers": local_kafka.bootstrap,
            "stream2raw.survey": "ztf",
            "stream2raw.topic": f"opkill_{tmp_path.name[-8:]}",
            "stream2raw.trigger": "2 seconds",
            "stream2raw.max_offsets_per_trigger": 1000,
            "distribution.topic_prefix": f"opk{tmp_path.name[-6:]}_",
        },
    )
    config = tmp_path / "fink.toml"
    config.write_text(dump_toml(settings))
    ensure_topics(settings.kafka, [settings.stream2raw.topic], 2)

    def fink(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "fink_broker.cli.main", *args, "-c", str(config)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def archived() -> int:
        return sum(b["rows_out"] for b in committed_batches(settings, "stream2raw").values())

    def wait(predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            log = Path(settings.paths.state_dir) / "logs" / "pipeline.log"
            assert time.monotonic() < deadline, (what, log.read_text()[-3000:])
            time.sleep(0.5)

    common = {
        "survey": "ztf",
        "folder": datasim / "ztf",
        "topic": settings.stream2raw.topic,
        "repeat": -(-TOTAL // 50),
    }
    fink("start", "pipeline")
    try:
        warm = replay(settings, nalerts=200, same_cutouts=True, **common)
        wait(lambda: archived() > 0, 300, "the pipeline's first batch")
        record = processes.get(settings, "pipeline")
        assert record is not None
        sent: dict[str, object] = {}

        def produce() -> None:
            try:
                sent["summary"] = replay(
                    settings,
                    nalerts=TOTAL - warm.alerts,
                    skip=warm.alerts,
                    rate=RATE,
                    same_cutouts=True,
                    **common,
                )
            except Exception as err:  # reported below
                sent["error"] = err

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        # in the middle of the replay, while batches are being written
        wait(lambda: archived() >= 1000, 120, "a thousand alerts archived")
        batches_before = len(committed_batches(settings, "stream2raw"))
        os.killpg(record.pid, signal.SIGKILL)
        wait(lambda: not processes.is_running(record), 30, "the SIGKILL to take")
        assert producer.is_alive(), "the replay ended before the kill: nothing was cut"
        fink("start", "pipeline")
        producer.join(timeout=120)
        assert "error" not in sent, sent
        summary = sent["summary"]
        assert summary.delivery_errors == 0 and summary.alerts + warm.alerts == TOTAL
        wait(lambda: archived() >= TOTAL, 300, "every alert archived after the restart")
        science_in = sum(b["rows_in"] for b in committed_batches(settings, "raw2science").values())
        wait(
            lambda: (
                sum(b["rows_in"] for b in committed_batches(settings, "raw2science").values())
                >= TOTAL
            ),
            120,
            f"science to take in every alert ({science_in} so far)",
        )
    finally:
        fink("stop", "all")
    assert len(committed_batches(settings, "stream2raw")) > batches_before
    raw = raw_ids(spark, settings, "ztf")
    assert len(raw) == TOTAL
    assert len({r[0] for r in raw}) == TOTAL, "an alert id twice in raw"
    assert len({(r[1], r[2]) for r in raw}) == TOTAL, "a Kafka offset twice in raw"
    held = science_ids(spark, settings, "ztf")
    assert len(held) == len(set(held)), "an alert twice in science"
    assert set(held) == expected_science_ids(spark, settings, "ztf")
    assert held, "no alert passed the cuts: science compares nothing"

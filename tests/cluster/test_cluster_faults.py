"""Failures on the local cluster while stream2raw archives a live replay of 5,000 alerts.

stream2raw runs live on the cluster (``fink start stream2raw``, its archive and checkpoint
on HDFS) while the simulator publishes. In one run, one after the other:

1. a broker gets SIGKILL in the middle of the replay: the idempotent producer and the
   source move to the new partition leaders, nothing is lost or written twice;
2. the stream2raw driver gets SIGKILL and is started again: it resumes from its
   checkpoint on HDFS (its batch ids go on);
3. a worker, with its executor, gets SIGKILL while the restarted driver's micro-batch runs
   tasks there: Spark runs them again on the other worker.

Raw must then hold each published alert exactly once: every Kafka offset of the topic, no
alert id twice. One scenario, not three tests: each would start an application of its own
(a driver JVM, executors, the shipped environment unpacked), a minute each on 2 cores. The
test puts back what it killed.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from fink_broker.infra import kafka_cluster, processes, spark_standalone
from fink_broker.infra.kafka_local import wait_ready
from fink_broker.lake import Lake
from fink_broker.simulator.replay import replay

pytestmark = pytest.mark.cluster

KILLED_BROKER = 2
VICTIM = 1
#: what Spark's driver logs (WARN, ERROR) when it runs a lost executor's tasks again
LOST_SIGNS = ("Lost task", "ExecutorLostFailure", "Lost executor")


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> end offset of ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "log_level": 0})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def raw_keys(spark, root: str) -> list[tuple]:
    """(alert id, partition, offset) of every ZTF alert in the raw archive of ``root``."""
    raw = spark.read.parquet(Lake(root, "ztf").raw)
    rows = raw.select("candid", "kafka_partition", "kafka_offset").collect()
    return [(r["candid"], r["kafka_partition"], r["kafka_offset"]) for r in rows]


def wait_for(predicate, timeout: float, what: str, poll: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(poll)


def kill_group(record: processes.ServiceRecord) -> None:
    """SIGKILL a recorded process and its children (a node that dies, not one that stops)."""
    os.killpg(record.pid, signal.SIGKILL)
    wait_for(lambda: not processes.is_running(record), 30, f"{record.name} to die", 0.2)


def count_raw(spark, root: str) -> int:
    try:
        return spark.read.parquet(Lake(root, "ztf").raw).count()
    except Exception:  # no committed file yet
        return 0


def executor_logs(work: Path) -> list[Path]:
    return sorted(work.glob("app-*/*/stderr"))


def test_broker_driver_and_worker_killed_during_a_live_replay(cluster, spark, datasim):
    settings = cluster.fresh_settings()
    topic, total, rate = "faults", 5000, 250
    settings.paths.root = settings.paths.root.rstrip("/") + "-faults"
    bootstrap = settings.kafka.bootstrap_servers
    # batches of at most 3,000: the first driver's first batch leaves at least 2,000 alerts
    # for the restarted driver, whose tasks the worker dies under
    start = ["start", "stream2raw", "--topic", topic, "--trigger", "2 seconds"]
    start += ["--max-offsets-per-trigger", "3000"]
    start += ["--root", settings.paths.root]
    started = cluster.fink(*start)
    assert started.returncode == 0, started.stdout
    app_running = lambda: (spark_standalone.master_state(cluster.ports.spark) or {}).get(  # noqa: E731
        "activeapps"
    )
    wait_for(app_running, 300, "stream2raw's application on the master")
    broker = processes.get(settings, kafka_cluster.broker_name(KILLED_BROKER))
    assert broker is not None
    work = spark_standalone.spark_dir(settings) / "work" / spark_standalone.worker_name(VICTIM)
    sent = {}

    def produce() -> None:
        try:
            sent["summary"] = replay(
                settings,
                survey="ztf",
                folder=datasim / "ztf",
                topic=topic,
                repeat=total // 50,
                rate=rate,
                same_cutouts=True,
            )
        except Exception as err:  # reported by the assertion below
            sent["error"] = err

    producer = threading.Thread(target=produce)
    producer.start()
    metrics = Path(settings.paths.state_dir) / "metrics" / "stream2raw.jsonl"
    try:
        time.sleep(8)
        assert producer.is_alive(), "the replay ended before the broker was killed"
        kill_group(broker)  # 1.
        wait_for(metrics.exists, 600, "stream2raw's first micro-batch on the cluster")
        driver = processes.get(settings, "stream2raw")
        assert driver is not None
        kill_group(driver)  # 2.
        before = set(executor_logs(work))
        restarted = cluster.fink(*start)
        assert restarted.returncode == 0, restarted.stdout

        def task_running() -> bool:
            new = [p for p in executor_logs(work) if p not in before]
            return any("Running task" in p.read_text(errors="replace") for p in new)

        wait_for(task_running, 600, f"a task of the restarted driver on worker {VICTIM}", 0.2)
        worker = processes.get(settings, spark_standalone.worker_name(VICTIM))
        assert worker is not None
        kill_group(worker)  # 3.
    finally:
        producer.join(timeout=600)
        kafka_cluster.start_broker(settings, KILLED_BROKER, cluster.ports.kafka)
    try:
        assert "error" not in sent, f"the replay failed: {sent.get('error')!r}"
        summary = sent["summary"]
        assert summary.delivery_errors == 0 and summary.delivered == summary.alerts == total
        wait_for(lambda: count_raw(spark, settings.paths.root) >= total, 600, "all in raw")
    finally:
        stopped = cluster.fink("stop", "stream2raw")
        spark_standalone.start_worker(settings, cluster.ports.spark, VICTIM)
    assert stopped.returncode == 0, stopped.stdout

    ends = end_offsets(bootstrap, topic)
    assert sum(ends.values()) == total, "the idempotent producer wrote each alert once"
    keys = raw_keys(spark, settings.paths.root)
    assert len(keys) == total
    assert len({k[0] for k in keys}) == total, "an alert archived twice"
    assert {(p, o) for _, p, o in keys} == {(p, o) for p, end in ends.items() for o in range(end)}
    # the restarted driver's batch ids go on from the checkpoint's: none starts again at 0
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    ids = [x["batch_id"] for x in lines if "event" not in x]  # not the restart lines
    assert ids.count(0) == 1, ids
    checkpoint = Lake(settings.paths.root, "ztf").checkpoint("stream2raw")
    jvm_path = spark._jvm.org.apache.hadoop.fs.Path(checkpoint)
    fs = jvm_path.getFileSystem(spark._jsc.hadoopConfiguration())
    assert fs.exists(jvm_path.suffix("/offsets")) and fs.exists(jvm_path.suffix("/commits"))
    # the driver ran the lost executor's tasks again
    log = (Path(settings.paths.state_dir) / "logs" / "stream2raw.log").read_text()
    assert any(sign in log for sign in LOST_SIGNS), log[-3000:]
    # the cluster whole again for the next tests
    brokers = [processes.get(settings, kafka_cluster.broker_name(n)) for n in (1, 2, 3)]
    wait_ready(brokers, bootstrap, broker.extra["cluster_id"], 120)
    spark_standalone.wait_ready([], cluster.ports.spark, 2, time.monotonic() + 120)

"""The fault run: a live replay through the four services while each is killed, Kafka is
restarted and HBase is restarted; then every store is counted against what was sent.

Shared by the integration test (``test_fault_run.py``, 2,000 alerts) and the benchmark
(``benchmarks/faults.py``, 100,000): one scenario, two sizes. Each service runs as an
operator runs it, ``fink start <service>`` (a supervised process with a PID file), and is
killed as a machine dies, SIGKILL to its process group, then started again the same way.
Kafka and HBase are stopped and started once each, as an operator's restart does: the
services must ride through both without being touched.

The moments are drawn from a seeded generator (the seed is printed, so a failing order can
be run again). What is checked at the end is what the issue asks:

- raw holds every published alert exactly once (each Kafka offset, no alert id twice);
- science holds exactly the raw alerts that pass the quality cuts, once each;
- the HBase alerts table holds exactly the science alert ids;
- every filter topic holds each alert its filter selects at least once, and nothing else;
  the duplicates (at-least-once publishing after a kill) are counted and reported.
"""

from __future__ import annotations

import copy
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fink_broker.config import Settings, dump_toml, load_settings
from fink_broker.infra import hbase_local, kafka_local, processes
from fink_broker.lake import Lake
from fink_broker.services.streaming import committed_batches, restart_events
from fink_broker.simulator.replay import Progress, ReplaySummary, replay
from fink_broker.surveys import get_adapter
from fink_broker.tables.layout import TableKind
from tests.integration.topics import decode, expected_topics, read_topic

#: the services in data-flow order: each one's input is the previous one's output
SERVICES = ("stream2raw", "raw2science", "distribution", "archive")
#: what each service reads: the upstream service whose ``rows_out`` is its input
UPSTREAM = {"raw2science": "stream2raw", "distribution": "raw2science", "archive": "raw2science"}
RESTART_KAFKA, RESTART_HBASE = "restart kafka", "restart hbase"


def run_settings(folder: Path, kafka: Settings, hbase: Settings, survey: str) -> Settings:
    """Settings of the four services of a fault run: live triggers, a data root and state
    dir in ``folder``, the test broker of ``kafka`` and the HBase of ``hbase``."""
    from tests.conftest import REPO, base_overrides

    settings = load_settings(
        None,
        env={},
        overrides={
            **base_overrides(folder),
            # the services run in ``folder``: the repo's converted models, not ./models-cache
            "paths.models_cache": str(REPO / "models-cache"),
            "spark.driver_memory": "1g",
            "kafka.bootstrap_servers": kafka.kafka.bootstrap_servers,
            "stream2raw.survey": survey,
            "stream2raw.topic": f"faults_{survey}",
            "stream2raw.trigger": "2 seconds",
            "stream2raw.max_offsets_per_trigger": 2000,
            "raw2science.trigger": "3 seconds",
            "distribution.trigger": "3 seconds",
            "distribution.topic_prefix": "flt_",
            "archive.trigger": "3 seconds",
        },
    )
    settings.hbase = copy.deepcopy(hbase.hbase)
    settings.hbase.namespace = "faults"
    return settings


def kill_event(service: str) -> str:
    return f"kill {service}"


def batch_totals(settings: Settings, service: str) -> dict[str, int]:
    """``rows_in`` and ``rows_out`` summed over the committed micro-batches of ``service``,
    a batch replayed after a kill counted once."""
    batches = committed_batches(settings, service).values()
    return {
        "rows_in": sum(int(x.get("rows_in", 0)) for x in batches),
        "rows_out": sum(int(x.get("rows_out", 0)) for x in batches),
        "batches": len(batches),
    }


def restart_reasons(settings: Settings, service: str) -> list[str]:
    """Reasons of the supervised restarts ``service`` logged (queries that failed)."""
    return [str(x.get("reason", "")) for x in restart_events(settings, service)]


@dataclass
class Kill:
    """One SIGKILL: when, what the victim's input held then, and when it had caught up."""

    service: str
    at: float
    input_at_kill: int
    #: micro-batches the service had committed when it was killed
    batches_at_kill: int = 0
    caught_up_s: float | None = None


@dataclass
class FaultRun:
    """The four services of one survey, started, killed and started again by ``fink``.

    ``settings`` point at the run's own data root and state dir, and at ``kafka`` and
    ``hbase`` (the settings their local components were started with).
    """

    settings: Settings
    kafka: Settings
    hbase: Settings
    config: Path
    log: Callable[[str], None] = print
    kills: list[Kill] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    #: alerts the replay has handed to the producer so far
    sent: int = 0

    @classmethod
    def create(cls, settings: Settings, kafka: Settings, hbase: Settings, folder: Path, **kw):
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "fink.toml"
        config.write_text(dump_toml(settings))
        return cls(settings, kafka, hbase, config, **kw)

    # -- the services, as an operator runs them
    def fink(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "fink_broker.cli.main", *args, "-c", str(self.config)],
            cwd=self.config.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, service: str) -> None:
        done = self.fink("start", service)
        if done.returncode != 0:
            raise RuntimeError(f"fink start {service}: {done.stdout}{done.stderr}")

    def input_level(self, service: str) -> int:
        """What ``service``'s input holds now: alerts sent (stream2raw) or upstream rows."""
        if service == "stream2raw":
            return self.sent
        return batch_totals(self.settings, UPSTREAM[service])["rows_out"]

    def kill(self, service: str) -> None:
        """SIGKILL the process group of ``service`` (its supervisor, Spark JVM, workers)."""
        record = processes.get(self.settings, service)
        if record is None:
            raise RuntimeError(f"{service} is not running when it should be killed")
        done = batch_totals(self.settings, service)["batches"]
        self.kills.append(Kill(service, time.monotonic(), self.input_level(service), done))
        os.killpg(record.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while processes.is_running(record):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} survived SIGKILL for 30 s")
            time.sleep(0.2)
        self.start(service)

    def restart_kafka(self, down_s: float) -> None:
        kafka_local.stop_kafka(self.kafka, timeout=60)
        time.sleep(down_s)
        kafka_local.start_kafka(self.kafka)

    def restart_hbase(self, down_s: float) -> None:
        hbase_local.stop_hbase(self.hbase, timeout=120)
        time.sleep(down_s)
        hbase_local.start_hbase(self.hbase)

    # -- progress
    def update_catch_up(self) -> None:
        """Mark the kills whose restarted service has committed a micro-batch and taken in
        all its input of the kill moment (a service killed with nothing left to read and
        given nothing new stays unmarked: :func:`report` says so)."""
        for k in self.kills:
            if k.caught_up_s is None:
                done = batch_totals(self.settings, k.service)
                if done["batches"] > k.batches_at_kill and done["rows_in"] >= k.input_at_kill:
                    k.caught_up_s = time.monotonic() - k.at

    def settled(self, total: int) -> bool:
        """Every service has taken in all its upstream's output, and raw all alerts sent."""
        t = {s: batch_totals(self.settings, s) for s in SERVICES}
        if t["stream2raw"]["rows_out"] < total:
            return False
        science = t["raw2science"]["rows_out"]
        return (
            t["raw2science"]["rows_in"] >= t["stream2raw"]["rows_out"]
            and t["distribution"]["rows_in"] >= science
            and t["archive"]["rows_in"] >= science
        )

    def run(
        self,
        *,
        survey: str,
        folder: Path,
        total: int,
        rate: float,
        seed: int,
        settle_timeout: float,
        first_batch_timeout: float = 300,
        warm_up: int = 200,
    ) -> ReplaySummary:
        """Start the services, send ``warm_up`` alerts and wait for every service's first
        micro-batch, then replay the rest of ``total`` at ``rate`` while the faults happen
        in a seeded random order and moments; wait until every store has settled. Returns
        the summary of both replays together."""
        rng = random.Random(seed)
        self.log(f"fault run: seed={seed} alerts={total} rate={rate}/s")
        for service in SERVICES:
            self.start(service)
        common = {
            "survey": survey,
            "folder": folder,
            "topic": self.settings.stream2raw.topic,
            "repeat": -(-total // 50),
            "same_cutouts": True,
        }
        # a first few alerts, all at once, start every query (a Spark JVM each, models
        # loaded, a first batch committed): the faults then hit working services, during
        # the rest of the replay, not their start-up
        warm = replay(self.settings, nalerts=warm_up, **common)
        self._wait(
            lambda: all(batch_totals(self.settings, s)["batches"] > 0 for s in SERVICES),
            first_batch_timeout,
            "a first micro-batch of every service",
        )
        self.log(f"{time.monotonic() - self.started_at:7.1f} s  all four services running")
        self.sent = warm_up
        sent: dict[str, Any] = {}

        def progress(state: Progress) -> None:
            self.sent = warm_up + state.sent

        def produce() -> None:
            try:
                sent["summary"] = replay(
                    self.settings,
                    nalerts=total - warm_up,
                    skip=warm_up,
                    rate=rate,
                    progress=progress,
                    **common,
                )
            except Exception as err:  # reported below
                sent["error"] = err
            self.sent = total

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        faults = [kill_event(s) for s in SERVICES] + [RESTART_KAFKA, RESTART_HBASE]
        rng.shuffle(faults)
        # the faults are spread over what is left of the replay, in random gaps
        left = max(total - self.sent, 0) / rate
        for fault in faults:
            time.sleep(max(rng.uniform(0.2, 1.0) * left / len(faults), 1.0))
            if fault.startswith("kill "):
                self.kill(fault.split()[1])
            elif fault == RESTART_KAFKA:
                self.restart_kafka(down_s=rng.uniform(3, 10))
            else:
                self.restart_hbase(down_s=rng.uniform(3, 10))
            self.events.append((time.monotonic() - self.started_at, fault))
            self.log(f"{self.events[-1][0]:7.1f} s  {fault}  (alerts sent: {self.sent})")
            self.update_catch_up()
        producer.join(timeout=settle_timeout)
        if "error" in sent:
            raise RuntimeError(f"the replay failed: {sent['error']!r}")
        self._wait(lambda: self.settled(total), settle_timeout, "every store to settle")
        self.update_catch_up()
        summary = sent["summary"]
        summary.alerts += warm.alerts
        summary.delivery_errors += warm.delivery_errors
        return summary

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            self.update_catch_up()
            if time.monotonic() > deadline:
                status = {s: batch_totals(self.settings, s) for s in SERVICES}
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}: {status}")
            for service in SERVICES:
                if processes.get(self.settings, service) is None:
                    log = Path(self.settings.paths.state_dir) / "logs" / f"{service}.log"
                    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                    raise RuntimeError(f"{service} ended by itself: {tail}")
            time.sleep(1.0)

    def stop(self) -> None:
        self.fink("stop", "all", timeout=180)

    def restarts(self) -> dict[str, list[str]]:
        return {s: restart_reasons(self.settings, s) for s in SERVICES}


# -- the counts of the end, per store


def raw_ids(spark: Any, settings: Settings, survey: str) -> list[tuple[Any, int, int]]:
    """(alert id, Kafka partition, offset) of every row of the raw archive."""
    adapter = get_adapter(survey)
    raw = spark.read.parquet(Lake(settings.paths.root, survey).raw)
    rows = raw.select(adapter.alert_id, "kafka_partition", "kafka_offset").collect()
    return [(r[0], r[1], r[2]) for r in rows]


def expected_science_ids(spark: Any, settings: Settings, survey: str) -> set:
    """Ids of the raw alerts that pass the default cuts (written out independently)."""
    from tests.spark.test_raw2science import passes_cuts

    adapter = get_adapter(survey)
    raw = spark.read.parquet(Lake(settings.paths.root, survey).raw)
    struct = "candidate" if survey == "ztf" else "diaSource"
    return {
        r[adapter.alert_id]
        for r in raw.select(adapter.alert_id, struct).collect()
        if passes_cuts(survey, r.asDict(recursive=True))
    }


def science_ids(spark: Any, settings: Settings, survey: str) -> list:
    adapter = get_adapter(survey)
    science = spark.read.parquet(Lake(settings.paths.root, survey).science)
    return [r[0] for r in science.select(adapter.alert_id).collect()]


def hbase_ids(settings: Settings, survey: str) -> list[str]:
    """The alert id of every row of the HBase alerts table (one per row key), decoded from
    the packed cells as the REST API decodes them."""
    from fink_broker.api.store import ArchiveStore

    store = ArchiveStore(settings, get_adapter(survey))
    alert_id = store.always()[1]
    cells = store.cells_for([alert_id])
    rows = [row for _, row in store.scan(TableKind.ALERTS, columns=cells)]
    return [str(v) for v in store.frame(rows, [alert_id])[alert_id]]


def topic_ids(bootstrap: str, topic: str, alert_id: str) -> Counter:
    """How many times each alert id is in ``topic`` (its writer schema is the key)."""
    return Counter(decode(k, v)[alert_id] for k, v in read_topic(bootstrap, topic))


@dataclass
class StoreCounts:
    """Lost and duplicated alerts of one store."""

    expected: int
    held: int
    lost: int
    duplicated: int
    foreign: int = 0

    def line(self, name: str) -> str:
        return (
            f"{name:<28} expected={self.expected:<7} held={self.held:<7} lost={self.lost:<5} "
            f"duplicated={self.duplicated:<5} foreign={self.foreign}"
        )


def compare(expected: set, held: list | Counter) -> StoreCounts:
    counts = held if isinstance(held, Counter) else Counter(held)
    return StoreCounts(
        expected=len(expected),
        held=sum(counts.values()),
        lost=len(expected - set(counts)),
        duplicated=sum(n - 1 for n in counts.values() if n > 1),
        foreign=len(set(counts) - expected),
    )


def store_counts(spark: Any, run: FaultRun, survey: str) -> dict[str, StoreCounts]:
    """Every store of the run against what it must hold."""
    from tests.cluster.test_cluster_faults import end_offsets

    settings = run.settings
    adapter = get_adapter(survey)
    bootstrap = settings.kafka.bootstrap_servers
    raw = raw_ids(spark, settings, survey)
    ends = end_offsets(bootstrap, settings.stream2raw.topic)
    offsets = {(p, o) for p, end in ends.items() for o in range(end)}
    out = {
        "kafka offsets in raw": compare(offsets, [(p, o) for _, p, o in raw]),
        "raw": compare({r[0] for r in raw}, [r[0] for r in raw]),
    }
    out["raw"].expected = sum(ends.values())
    out["raw"].lost = out["raw"].expected - len({r[0] for r in raw})
    want = expected_science_ids(spark, settings, survey)
    out["science"] = compare(want, science_ids(spark, settings, survey))
    out["hbase alerts"] = compare({str(i) for i in want}, hbase_ids(settings, survey))
    for topic, selected in expected_topics(spark, settings, survey).items():
        out[f"topic {topic}"] = compare(selected, topic_ids(bootstrap, topic, adapter.alert_id))
    return out


def report(run: FaultRun, counts: dict[str, StoreCounts]) -> list[str]:
    """The lines the test and the benchmark print."""
    lines = [c.line(name) for name, c in counts.items()]
    for service, reasons in run.restarts().items():
        lines.append(f"restarts {service:<13} {len(reasons)}  {Counter(reasons).most_common(3)}")
    for k in run.kills:
        took = "no input after it" if k.caught_up_s is None else f"{k.caught_up_s:.1f} s"
        lines.append(f"kill {k.service:<13} input_at_kill={k.input_at_kill:<7} caught_up={took}")
    return lines

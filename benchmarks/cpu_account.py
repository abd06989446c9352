"""CPU seconds by kind of process (Spark JVM, Kafka broker, Python workers, driver,
simulator) while a benchmark's block runs: on one machine the broker and the simulator
share the cores with Spark, so a rate is read beside what each of them took."""

from __future__ import annotations

import os
import resource
import time

import psutil


class CpuAccount:
    """CPU seconds used by each kind of process on the machine while the block runs.

    Processes that end inside the block are not counted, but for the children this
    process waited for (the simulator); Spark keeps its Python workers.
    """

    KINDS = (
        ("Spark JVM", "SparkSubmit"),
        # the local cluster's (benchmarks/cluster.py): executors, daemons, HDFS
        ("Spark executors", "CoarseGrainedExecutorBackend"),
        ("Spark master and workers", "org.apache.spark.deploy."),
        ("HDFS", "org.apache.hadoop.hdfs.server."),
        ("HBase", "org.apache.hadoop.hbase."),
        ("Kafka broker", "kafka.Kafka"),
        ("Python workers", "pyspark.daemon"),
        ("simulator", "fink_broker.simulator"),
    )

    def __init__(self, scope: str | None = None) -> None:
        """``scope``: count only this process, its descendants and the processes whose
        command line holds ``scope`` (a benchmark's scratch folder) and their descendants,
        not the Spark JVMs and brokers of other people sharing the machine."""
        self.used: dict[str, float] = {}
        self.seconds = 0.0
        self.scope = scope

    def _in_scope(self, infos: list[dict]) -> set[int]:
        """The pids of the processes in ``scope`` (all when there is none)."""
        if self.scope is None:
            return {info["pid"] for info in infos}
        parent = {info["pid"]: info["ppid"] for info in infos}
        roots = {os.getpid()}
        roots |= {i["pid"] for i in infos if self.scope in " ".join(i["cmdline"] or [])}
        out = set()
        for pid in parent:
            seen, cursor = [], pid
            while cursor and cursor not in roots and cursor in parent and len(seen) < 64:
                seen.append(cursor)
                cursor = parent[cursor]
            if cursor in roots:
                out.add(pid)
        return out

    def _snapshot(self) -> dict[tuple[int, float], tuple[str, float]]:
        out = {}
        attrs = ["pid", "ppid", "cmdline", "create_time", "cpu_times"]
        infos = [proc.info for proc in psutil.process_iter(attrs)]
        mine = self._in_scope(infos)
        for info in infos:
            if info["pid"] not in mine:
                continue
            cmdline = " ".join(info["cmdline"] or [])
            if info["pid"] == os.getpid():
                kind = "Spark driver (Python)"
            else:
                kind = next((k for k, marker in self.KINDS if marker in cmdline), None)
            if kind is not None and info["cpu_times"] is not None:
                times = info["cpu_times"]
                out[(info["pid"], info["create_time"])] = (kind, times.user + times.system)
        return out

    def __enter__(self) -> CpuAccount:
        self._start, self._t0 = self._snapshot(), time.monotonic()
        self._children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self._t0
        end = self._snapshot()
        for key, (kind, cpu) in end.items():
            before = self._start.get(key, (kind, 0.0))[1]
            self.used[kind] = self.used.get(kind, 0.0) + cpu - before
        # children this process waited for (the simulator) are gone by now: their whole
        # CPU time, less what they had used when the block began
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        waited = children.ru_utime + children.ru_stime
        waited -= self._children.ru_utime + self._children.ru_stime
        ended = [(kind, cpu) for key, (kind, cpu) in self._start.items() if key not in end]
        waited -= sum(cpu for kind, cpu in ended if kind == "simulator")
        self.used["simulator"] = self.used.get("simulator", 0.0) + waited

    @classmethod
    def total(cls, accounts: list[CpuAccount]) -> CpuAccount:
        """One account of several blocks (the warm drains, each timed apart from the runs
        that alternate with them): their CPU seconds and wall seconds added up."""
        out = cls()
        for account in accounts:
            out.seconds += account.seconds
            for kind, cpu in account.used.items():
                out.used[kind] = out.used.get(kind, 0.0) + cpu
        return out

    def __str__(self) -> str:
        return ", ".join(f"{kind} {cpu:.0f}" for kind, cpu in sorted(self.used.items()))

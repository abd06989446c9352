"""The 150 real alerts through the four services on the local cluster, against local mode.

The cluster run is one driver process on the standalone master (two executors in the
workers' JVMs, the Python environment shipped, archives and checkpoints on HDFS, topics on
three brokers, HBase through its Thrift gateway); the local run is the test session's
``local[2]`` session on a local data root. Both read the same input topics. Every stage
must hold the same alerts with the same values (times of processing aside), the filter
topics the same messages, the HBase tables the same rows and cells; and the executors must
have run the shipped Python, not the driver's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fink_broker.config import load_settings
from fink_broker.infra import spark_standalone
from fink_broker.science import local_catalogues
from fink_broker.simulator.replay import replay
from tests.archive_compare import assert_archives_equal, assert_hbase_equal, assert_topics_equal
from tests.cluster.conftest import REPO, clean_env
from tests.cluster.pipeline import SURVEYS, data_root, run_pipeline, topic_of
from tests.conftest import base_overrides
from tests.spark.test_raw2science import add_near_catalogue

pytestmark = pytest.mark.cluster

INPUT, ON_CLUSTER, LOCAL = "cin", "fcl", "flo"


@pytest.fixture(scope="module")
def runs(cluster, spark, datasim, tmp_path_factory):
    """Replay both surveys into the cluster's brokers; run the pipeline on the cluster (a
    driver process) and in local mode (this session); return both settings and outputs."""
    tmp = tmp_path_factory.mktemp("pipeline")
    base = cluster.fresh_settings()
    for survey in SURVEYS:
        summary = replay(
            base, survey=survey, folder=datasim / survey, topic=topic_of(INPUT, survey)
        )
        assert summary.delivery_errors == 0 and summary.delivered == summary.alerts > 0
    folder = local_catalogues.catalogue_dir(base)
    add_near_catalogue(datasim, tmp, folder)

    local = load_settings(
        None,
        env={},
        overrides={
            **base_overrides(tmp),
            "kafka.bootstrap_servers": base.kafka.bootstrap_servers,
            "raw2science.catalogue_dir": str(folder),
            "hbase.thrift_port": base.hbase.thrift_port,
            "hbase.namespace": LOCAL,
            "distribution.topic_prefix": f"{LOCAL}_",
        },
    )
    # the cluster run (a driver process) and the local run (this session) side by side: the
    # cluster's application spends its first minute starting executors and unpacking the
    # shipped environment, time the local run uses
    out = tmp / "cluster.json"
    log = tmp / "cluster-driver.log"
    with open(log, "w") as handle:
        driver = ["-m", "tests.cluster.pipeline", str(cluster.config), str(out)]
        running = subprocess.Popen(
            [sys.executable, *driver, INPUT, ON_CLUSTER],
            cwd=REPO,
            env=clean_env(),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        try:
            local_counts = run_pipeline(spark, local, INPUT)
            returncode = running.wait(timeout=600)
        finally:
            if running.poll() is None:
                running.kill()
                running.wait()
    assert returncode == 0, log.read_text()[-5000:]
    on_cluster = json.loads(out.read_text())
    clustered = cluster.fresh_settings()
    clustered.paths.root = data_root(clustered.paths.root, ON_CLUSTER)
    clustered.hbase.namespace = ON_CLUSTER
    clustered.distribution.topic_prefix = f"{ON_CLUSTER}_"
    return {"cluster": (clustered, on_cluster), "local": (local, local_counts)}


def test_counts_equal_those_of_local_mode(runs, datasim):
    clustered, on_cluster = runs["cluster"]
    assert clustered.paths.root.startswith("hdfs://127.0.0.1:")
    assert clustered.spark.master.startswith("spark://127.0.0.1:")
    assert on_cluster["default_parallelism"] == 2, "both executors registered"
    _, local_counts = runs["local"]
    assert on_cluster["counts"] == local_counts
    for survey in SURVEYS:
        assert local_counts[survey]["raw"] == len(list((datasim / survey).glob("*.avro")))
        assert 0 < local_counts[survey]["science"] <= local_counts[survey]["raw"]


@pytest.mark.parametrize("stage", ["raw", "science"])
def test_archived_values_are_identical(runs, spark, stage):
    """Every column of every alert, read back from HDFS and from the local root."""
    clustered, _ = runs["cluster"]
    local, _ = runs["local"]
    assert clustered.paths.root.startswith("hdfs://")
    for survey in SURVEYS:
        assert_archives_equal(spark, clustered, local, survey, stage)


def test_topics_are_equal(runs):
    clustered, _ = runs["cluster"]
    local, _ = runs["local"]
    published = assert_topics_equal(clustered, local, SURVEYS)
    assert published > 0, "no filter selected any real alert: the test compares nothing"


def test_hbase_rows_are_equal(runs):
    clustered, _ = runs["cluster"]
    local, _ = runs["local"]
    for survey in SURVEYS:
        assert_hbase_equal(clustered, local, survey)


def test_executors_ran_the_shipped_python(runs, cluster):
    """The executors' Python came from the archive the driver sent, in their own folders:
    interpreter, fink_broker, the catalogue files of the modules the driver pickled."""
    _, on_cluster = runs["cluster"]
    probe = on_cluster["probe"]
    driver_prefix = probe["driver_prefix"]
    work = str(spark_standalone.spark_dir(cluster.settings) / "work")
    executors = {t["cwd"] for t in probe["tasks"]}
    assert len(executors) == 2, "tasks ran in both workers' executors"
    for task in probe["tasks"]:
        cwd = task["cwd"]
        assert cwd.startswith(work), cwd
        assert task["executable"].startswith(f"{cwd}/fink_python/bin/python"), task
        assert task["prefix"] == f"{cwd}/fink_python", task
        assert task["fink_broker"].startswith(f"{cwd}/fink_python/lib/"), task
        # the worker's Spark puts its own pyspark.zip, py4j and core jar on PYTHONPATH (here
        # its SPARK_HOME is the pinned pyspark of this venv; on a cluster, the worker's own
        # Spark): nothing else of the driver's disk may be on an executor's sys.path
        spark = str(spark_standalone.spark_home())
        spark_path = [p for p in (task["pythonpath"] or "").split(os.pathsep) if p]
        assert spark_path and all(p.startswith(f"{spark}/") for p in spark_path), task
        driver_paths = {p for p in task["sys_path"] if p.startswith((driver_prefix, str(REPO)))}
        assert driver_paths <= set(spark_path), task
    modules = {m["module"]: m["files"] for m in probe["modules"]}
    assert set(modules) == {"xmatch", "xmatch_local"}
    for name, files in modules.items():
        assert files, name
        for path in files:
            assert os.path.dirname(path).startswith(tuple(executors)), (name, path)
            assert not path.startswith(driver_prefix), (name, path)


def test_workers_python_has_neither_pyspark_nor_fink_broker(cluster):
    """Without the shipped environment, an executor's Python could not run a task."""
    python = spark_standalone.bare_python(cluster.settings)
    for package in ("fink_broker", "pyspark", "pandas"):
        found = subprocess.run(
            [str(python), "-c", f"import {package}"], capture_output=True, check=False
        )
        assert found.returncode != 0, package
    record = cluster.settings  # the workers' environment, read from their processes
    from fink_broker.infra import processes

    for index in (1, 2):
        worker = processes.get(record, spark_standalone.worker_name(index))
        assert worker is not None
        environ = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{worker.pid}/environ").read_text().split("\0")
            if "=" in item
        )
        assert environ["PYSPARK_PYTHON"] == str(python)
        assert "PYTHONPATH" not in environ and "VIRTUAL_ENV" not in environ
        assert str(Path(sys.prefix) / "bin") not in environ["PATH"].split(os.pathsep)

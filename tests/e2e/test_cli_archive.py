"""The `fink` command on the archive side, from subprocesses: start/show/stop hbase, init
--hbase, archive --night and --rebuild, start api (queried over HTTP), stop all."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import psutil
import pytest

from fink_broker.config import dump_toml
from tests.e2e.test_cli import REPO
from tests.integration.conftest import free_ports
from tests.spark.test_raw2science import make_lake, run_bounded

pytestmark = pytest.mark.integration


def fink(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fink_broker.cli.main", *args, "-c", str(config)],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def pids_of(show: str) -> dict[str, int]:
    return {line.split()[0]: int(line.split()[1]) for line in show.splitlines()[1:] if line.strip()}


def test_hbase_archive_and_api_from_the_command_line(spark, datasim, tmp_path):
    settings, _ = make_lake(spark, datasim, tmp_path)
    science = run_bounded(spark, settings, "ztf")
    night = science.select("night").first()[0]
    object_id = science.select("objectId").first()[0]
    zookeeper, master, regionserver, thrift, api = free_ports(5)
    settings.local_hbase.zookeeper_port = zookeeper
    settings.local_hbase.master_port = master
    settings.local_hbase.regionserver_port = regionserver
    settings.hbase.thrift_port = thrift
    settings.hbase.namespace = "e2e"
    settings.paths.jar_cache = str(REPO / "jvm-cache")
    config = tmp_path / "fink.toml"
    config.write_text(dump_toml(settings))

    pids: dict[str, int] = {}
    try:
        started = fink(config, "start", "hbase")
        assert started.returncode == 0, started.stdout + started.stderr
        show = fink(config, "show").stdout
        assert "hbase " in show and "hbase_thrift" in show, show
        assert f"127.0.0.1:{thrift}" in show and f"127.0.0.1:{zookeeper}" in show
        pids.update(pids_of(show))

        init = fink(config, "init", "--hbase")
        assert init.returncode == 0, init.stdout + init.stderr
        assert "e2e_ztf_alerts" in init.stdout and "e2e_rubin_pixel" in init.stdout
        again = fink(config, "init", "--hbase")
        assert "already there" in again.stdout

        archived = fink(config, "archive", "--night", night, "--survey", "ztf")
        assert archived.returncode == 0, archived.stdout + archived.stderr
        assert f"e2e_ztf_alerts {science.count()}" in archived.stdout, archived.stdout
        rebuilt = fink(config, "archive", "--rebuild", "--survey", "ztf")
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert "rebuilt the ztf archive from 1 night(s)" in rebuilt.stdout, rebuilt.stdout
        assert f"e2e_ztf_alerts {science.count()}" in rebuilt.stdout, rebuilt.stdout

        served = fink(config, "start", "api", "--survey", "ztf", "--port", str(api))
        assert served.returncode == 0, served.stdout + served.stderr
        base = f"http://127.0.0.1:{api}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/classes", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "state/logs/api.log").read_text()
            time.sleep(0.5)
        answer = httpx.get(f"{base}/api/v1/objects", params={"objectId": object_id}, timeout=30)
        assert answer.status_code == 200
        assert {r["i:objectId"] for r in answer.json()} == {object_id}
        show = fink(config, "show").stdout
        assert "api" in show and f"127.0.0.1:{api}" in show, show
        pids.update(pids_of(show))
    finally:
        stop_all = fink(config, "stop", "all", timeout=180)
    assert stop_all.returncode == 0, stop_all.stdout + stop_all.stderr
    for name in ("api", "hbase"):
        assert f"stopped {name}" in stop_all.stdout, stop_all.stdout
    assert "no Fink service is running" in fink(config, "show").stdout
    for name, pid in pids.items():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", name

"""The `fink` command from a subprocess: init, start, show, stop on kafka, stream2raw and
checkstream, with real processes and PID files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fink(cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "FINK_PATHS_JAR_CACHE": str(REPO / "jvm-cache")}
    return subprocess.run(
        [sys.executable, "-m", "fink_broker.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_help_without_verb_and_per_service(tmp_path):
    out = fink(tmp_path)
    assert out.returncode == 0 and "start" in out.stdout and "simulator" in out.stdout
    for service in ("kafka", "stream2raw", "checkstream", "pipeline"):
        out = fink(tmp_path, "start", service, "-h")
        assert out.returncode == 0 and "--foreground" in out.stdout, service
    assert "--archive" in fink(tmp_path, "start", "pipeline", "-h").stdout


def test_init_start_show_stop(tmp_path, datasim):
    assert fink(tmp_path, "init", "--root", "data").returncode == 0
    for folder in ("raw", "science", "checkpoints", "quarantine", "logs"):
        assert (tmp_path / "data" / folder).is_dir()
    config = (tmp_path / "fink.toml").read_text()
    assert "[stream2raw]" in config and "FINK_KAFKA_BOOTSTRAP_SERVERS" in config
    port, controller = free_port(), free_port()
    ports = ["--port", str(port), "--controller-port", str(controller)]
    os.environ["FINK_LOCAL_KAFKA_PORT"] = str(port)
    os.environ["FINK_LOCAL_KAFKA_CONTROLLER_PORT"] = str(controller)
    try:
        started = fink(tmp_path, "start", "kafka", *ports)
        assert started.returncode == 0, started.stderr
        sim = fink(
            tmp_path,
            "simulator",
            "--survey",
            "ztf",
            "--datasim",
            str(datasim / "ztf"),
            "--topic",
            "e2e_ztf",
            "--bootstrap",
            f"127.0.0.1:{port}",
            "--nbatches",
            "2",
        )
        assert sim.returncode == 0, sim.stdout + sim.stderr
        s2r = fink(
            tmp_path,
            "start",
            "stream2raw",
            "--simulator",
            "--survey",
            "ztf",
            "--topic",
            "e2e_ztf",
            "--trigger",
            "1 second",
        )
        assert s2r.returncode == 0, s2r.stderr
        check = fink(tmp_path, "start", "checkstream", "--simulator", "--topic", "e2e_ztf")
        assert check.returncode == 0, check.stderr
        show = fink(tmp_path, "show")
        assert show.returncode == 0
        for name in ("kafka", "stream2raw", "checkstream"):
            assert name in show.stdout, show.stdout
        assert f"127.0.0.1:{port}" in show.stdout and "topic e2e_ztf" in show.stdout
        pids = {
            line.split()[0]: int(line.split()[1])
            for line in show.stdout.splitlines()[1:]
            if line.strip()
        }
        # stream2raw really ingests: its archive fills up while it runs in the background
        deadline = time.monotonic() + 120
        raw = tmp_path / "data" / "raw" / "ztf"
        while not list(raw.glob("night=*/*.parquet")) and time.monotonic() < deadline:
            time.sleep(1)
        assert list(raw.glob("night=*/*.parquet")), (
            tmp_path / ".fink/logs/stream2raw.log"
        ).read_text()

        stop = fink(tmp_path, "stop", "stream2raw")
        assert stop.returncode == 0 and "stopped stream2raw" in stop.stdout
        assert (
            not psutil.pid_exists(pids["stream2raw"])
            or psutil.Process(pids["stream2raw"]).status() == psutil.STATUS_ZOMBIE
        )
        assert "stream2raw" not in fink(tmp_path, "show").stdout
        assert fink(tmp_path, "stop", "stream2raw").returncode == 1
    finally:
        stop_all = fink(tmp_path, "stop", "all")
        os.environ.pop("FINK_LOCAL_KAFKA_PORT")
        os.environ.pop("FINK_LOCAL_KAFKA_CONTROLLER_PORT")
    assert stop_all.returncode == 0
    assert "stopped kafka" in stop_all.stdout and "stopped checkstream" in stop_all.stdout
    assert "no Fink service is running" in fink(tmp_path, "show").stdout
    for name in ("kafka", "checkstream"):
        assert (
            not psutil.pid_exists(pids[name])
            or psutil.Process(pids[name]).status() == psutil.STATUS_ZOMBIE
        )

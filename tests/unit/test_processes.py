"""PID-file process management with real child processes (no JVM, a few seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from fink_broker.config import Settings
from fink_broker.infra import processes


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings()
    s.paths.state_dir = str(tmp_path / "state")
    return s


@pytest.fixture
def cleanup(settings: Settings):
    """Stop whatever a test left running, so a failed assertion leaks no process."""
    yield
    for record in processes.running(settings):
        processes.stop(settings, record.name, timeout=1.0)


def _wait_for_line(path: Path, prefix: str, timeout: float = 10.0) -> str:
    """The first line of ``path`` that starts with ``prefix`` (the log header, which repeats
    the command line, does not count)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        for line in lines:
            if line.startswith(prefix):
                return line
        time.sleep(0.02)
    raise AssertionError(f"no line starting with {prefix!r} in {path}")


@pytest.mark.usefixtures("cleanup")
def test_start_list_usage_stop(settings: Settings, tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "sleeper.log"
    record = processes.start_background(
        "sleeper",
        ["sleep", "60"],
        settings=settings,
        log_path=log_path,
        ports=[12345],
        topics=["ztf_public"],
        extra={"note": "test"},
    )
    assert psutil.pid_exists(record.pid)
    assert os.getpgid(record.pid) == record.pid  # own process group, detached from ours
    assert os.getsid(record.pid) == record.pid

    listed = processes.running(settings)
    assert [r.name for r in listed] == ["sleeper"]
    assert listed[0] == record
    assert processes.get(settings, "sleeper") == record
    on_disk = json.loads(processes.pid_file(settings, "sleeper").read_text())
    assert on_disk["pid"] == record.pid
    assert on_disk["ports"] == [12345]
    assert on_disk["topics"] == ["ztf_public"]
    assert "starting sleeper: sleep 60" in log_path.read_text()

    use = processes.usage(record, interval=0.05)
    assert use["rss_mib"] > 0
    assert 0 <= use["uptime_s"] < 60
    assert use["processes"] == 1

    with pytest.raises(processes.AlreadyRunningError, match="sleeper is already running"):
        processes.start_background("sleeper", ["sleep", "1"], settings=settings, log_path=log_path)

    started = time.monotonic()
    assert processes.stop(settings, "sleeper", timeout=10.0) is True
    assert time.monotonic() - started < 5.0  # SIGTERM, not the SIGKILL fallback
    assert not psutil.pid_exists(record.pid)
    assert not processes.pid_file(settings, "sleeper").exists()
    assert processes.running(settings) == []
    assert processes.stop(settings, "sleeper") is False


@pytest.mark.usefixtures("cleanup")
def test_stop_reaches_the_whole_process_group(settings: Settings, tmp_path: Path) -> None:
    log_path = tmp_path / "group.log"
    script = "sleep 60 & echo child $!; wait"
    record = processes.start_background(
        "group", ["sh", "-c", script], settings=settings, log_path=log_path
    )
    child_pid = int(_wait_for_line(log_path, "child ").split()[1])
    assert psutil.pid_exists(child_pid)

    assert processes.stop(settings, "group", timeout=10.0) is True
    assert not psutil.pid_exists(record.pid)
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child_pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # the grandchild is reparented to init, which reaps it
    assert not psutil.pid_exists(child_pid)


@pytest.mark.usefixtures("cleanup")
def test_child_ignoring_sigterm_gets_sigkill(settings: Settings, tmp_path: Path) -> None:
    log_path = tmp_path / "stubborn.log"
    code = textwrap.dedent(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ignoring SIGTERM", flush=True)
        time.sleep(60)
        """
    )
    record = processes.start_background(
        "stubborn", [sys.executable, "-c", code], settings=settings, log_path=log_path
    )
    _wait_for_line(log_path, "ignoring SIGTERM")

    started = time.monotonic()
    assert processes.stop(settings, "stubborn", timeout=0.5) is True
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 5.0
    assert not psutil.pid_exists(record.pid)
    assert not processes.pid_file(settings, "stubborn").exists()


def test_stale_pid_file_is_dropped(settings: Settings) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    me = psutil.Process()
    stale = [
        # the process exited
        processes.ServiceRecord("exited", gone.pid, me.create_time(), "x", ["true"]),
        # the PID is alive but belongs to another process (PID reuse): never signal it
        processes.ServiceRecord("reused", me.pid, me.create_time() - 3600, "x", ["old"]),
    ]
    folder = processes.run_dir(settings)
    folder.mkdir(parents=True)
    for record in stale:
        processes.pid_file(settings, record.name).write_text(record.to_json())
    (folder / "garbage.json").write_text("{not json")

    assert processes.running(settings) == []
    assert sorted(p.name for p in folder.glob("*.json")) == []
    processes.pid_file(settings, "reused").write_text(stale[1].to_json())
    assert processes.stop(settings, "reused", timeout=0.1) is False
    assert psutil.pid_exists(me.pid)  # still here: we were not signalled


def test_register_foreground_removes_its_file_at_exit(settings: Settings) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from fink_broker.config import Settings
        from fink_broker.infra import processes
        s = Settings()
        s.paths.state_dir = {settings.paths.state_dir!r}
        record = processes.register_foreground("fg", settings=s, ports=[1234])
        listed = processes.running(s)
        assert [r.pid for r in listed] == [record.pid], listed
        print(record.pid, processes.pid_file(s, "fg").exists())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    pid, existed = out.stdout.split()
    assert existed == "True"
    assert int(pid) != os.getpid()
    assert not processes.pid_file(settings, "fg").exists()
    assert processes.running(settings) == []


def test_invalid_names_are_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="invalid service name"):
        processes.pid_file(settings, "../kafka")

"""Start, list and stop the local processes Fink owns, by PID file only.

Every process Fink starts (the Kafka broker, services run in the background or in the
foreground) is recorded as JSON in ``<state_dir>/run/<name>.json`` with its PID *and* its
creation time. ``fink show`` and ``fink stop`` work from these records alone: Fink never looks
for processes by name pattern, so it cannot kill a broker or a Spark job someone else runs on
the same machine. The creation time guards against PID reuse: a record whose PID now belongs
to another process is stale and is dropped, never signalled.

Background processes run in their own session (hence their own process group), so a stop
reaches their children too (a Spark driver's Python workers, a shell's pipeline) and a
Ctrl-C in the terminal that started them does not.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from fink_broker.config import Settings
from fink_broker.errors import FinkError
from fink_broker.infra.jars import folder_lock

log = logging.getLogger(__name__)

#: psutil derives creation times from the boot time, which the kernel reports to the second
#: and moves when the wall clock is stepped; PIDs are not reused within a second in practice.
CREATE_TIME_TOLERANCE_S = 1.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: processes this interpreter started, kept so that they are reaped (no zombies, no warnings)
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class AlreadyRunningError(FinkError):
    """A service of that name is already running; ``record`` says which process it is."""

    def __init__(self, record: ServiceRecord) -> None:
        super().__init__(
            f"{record.name} is already running (PID {record.pid}, started {record.started_at})"
        )
        self.record = record


@dataclass
class ServiceRecord:
    """What Fink knows about a process it started; stored as ``<state_dir>/run/<name>.json``."""

    name: str
    pid: int
    #: psutil creation time (epoch seconds): tells our process from a later one with its PID
    create_time: float
    #: ISO 8601 UTC start time, for humans
    started_at: str
    argv: list[str]
    #: where stdout/stderr go (None for a foreground process writing to a terminal)
    log_path: str | None = None
    ports: list[int] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """JSON text of the record."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ServiceRecord:
        """Parse a record written by :meth:`to_json`; unknown keys are ignored."""
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def run_dir(settings: Settings) -> Path:
    """``<state_dir>/run``, where the PID files live."""
    return Path(settings.paths.state_dir).expanduser().resolve() / "run"


def pid_file(settings: Settings, name: str) -> Path:
    """Path of the record of service ``name``."""
    if not _NAME.match(name):
        raise ValueError(f"invalid service name {name!r}: use letters, digits, '_', '.', '-'")
    return run_dir(settings) / f"{name}.json"


def _run_lock(settings: Settings) -> contextlib.AbstractContextManager[None]:
    """Serialise check-then-write on the run folder between concurrent ``fink`` commands."""
    return folder_lock(run_dir(settings))


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _write(settings: Settings, record: ServiceRecord) -> None:
    path = pid_file(settings, record.name)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(record.to_json())
    os.replace(tmp, path)  # readers never see half a record


def _process(record: ServiceRecord) -> psutil.Process | None:
    """The live process of ``record``, or None if it exited or its PID was reused."""
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > CREATE_TIME_TOLERANCE_S:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return proc if _is_alive(proc) else None


def is_running(record: ServiceRecord) -> bool:
    """True if the process of ``record`` is still alive (and is still the same process)."""
    return _process(record) is not None


def _load(path: Path) -> ServiceRecord | None:
    try:
        return ServiceRecord.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as err:
        log.warning("ignoring unreadable PID file %s: %s", path, err)
        return None


def _get_locked(settings: Settings, name: str) -> ServiceRecord | None:
    path = pid_file(settings, name)
    record = _load(path)
    if record is None:
        if path.exists():
            path.unlink(missing_ok=True)
        return None
    if _process(record) is None:
        log.info("%s (PID %d) is no longer running: removing %s", name, record.pid, path)
        path.unlink(missing_ok=True)
        return None
    return record


def get(settings: Settings, name: str) -> ServiceRecord | None:
    """The record of ``name`` if that process is running; a stale record is removed."""
    with _run_lock(settings):
        return _get_locked(settings, name)


def running(settings: Settings) -> list[ServiceRecord]:
    """Records of every Fink process still running, by name; stale PID files are removed."""
    folder = run_dir(settings)
    if not folder.is_dir():
        return []
    with _run_lock(settings):
        records = (_get_locked(settings, p.stem) for p in sorted(folder.glob("*.json")))
        return [r for r in records if r is not None]


def start_background(
    name: str,
    argv: Sequence[str],
    *,
    settings: Settings,
    env: Mapping[str, str] | None = None,
    log_path: str | os.PathLike[str],
    ports: Iterable[int] = (),
    topics: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> ServiceRecord:
    """Start ``argv`` detached from this terminal and record it as service ``name``.

    The process gets its own session and process group, stdin from /dev/null and
    stdout+stderr appended to ``log_path``, so it survives the ``fink`` command that started
    it and a stop can signal its whole group. ``env`` is the complete environment, as for
    :class:`subprocess.Popen` (None inherits ours). Raises :class:`AlreadyRunningError` if
    ``name`` is running; the caller waits for readiness itself (this returns once spawned).
    """
    log_file = Path(log_path).expanduser().resolve()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with _run_lock(settings):
        existing = _get_locked(settings, name)
        if existing is not None:
            raise AlreadyRunningError(existing)
        with open(log_file, "ab") as out:
            out.write(f"\n=== fink: {_now_iso()} starting {name}: {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=None if env is None else dict(env),
                start_new_session=True,
            )
        _CHILDREN[popen.pid] = popen
        try:
            create_time = psutil.Process(popen.pid).create_time()
        except psutil.NoSuchProcess:  # already reaped by someone: record it anyway, as stale
            create_time = 0.0
        record = ServiceRecord(
            name=name,
            pid=popen.pid,
            create_time=create_time,
            started_at=_now_iso(),
            argv=list(argv),
            log_path=str(log_file),
            ports=[int(p) for p in ports],
            topics=list(topics),
            extra=dict(extra or {}),
        )
        _write(settings, record)
    log.info("started %s (PID %d), log %s", name, record.pid, log_file)
    return record


def register_foreground(
    name: str,
    *,
    settings: Settings,
    argv: Sequence[str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    ports: Iterable[int] = (),
    topics: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> ServiceRecord:
    """Record the current process as service ``name`` (``--foreground`` runs).

    ``fink show`` and ``fink stop`` then treat it like a background service. The file is
    removed when the interpreter exits normally; after a crash, an ``exec`` (the process
    became the JVM) or a kill, :func:`running` drops it once the PID is gone. ``argv``
    defaults to this process's command line. Raises :class:`AlreadyRunningError` if another
    process runs ``name``.
    """
    me = psutil.Process()
    with _run_lock(settings):
        existing = _get_locked(settings, name)
        if existing is not None and existing.pid != me.pid:
            raise AlreadyRunningError(existing)
        record = ServiceRecord(
            name=name,
            pid=me.pid,
            create_time=me.create_time(),
            started_at=_now_iso(),
            argv=list(argv) if argv is not None else me.cmdline(),
            log_path=None if log_path is None else str(Path(log_path).expanduser().resolve()),
            ports=[int(p) for p in ports],
            topics=list(topics),
            extra=dict(extra or {}),
        )
        _write(settings, record)
    atexit.register(_forget, settings, name, record.pid)
    log.info("registered %s (PID %d) as a foreground service", name, record.pid)
    return record


def unregister(settings: Settings, name: str) -> None:
    """Remove the record of ``name`` if it describes this process (a foreground service
    that ends its work before the interpreter exits, such as a query in a test session)."""
    _forget(settings, name, os.getpid())


def _forget(settings: Settings, name: str, pid: int) -> None:
    """Remove the record of ``name`` if it still describes process ``pid``."""
    with contextlib.suppress(OSError), _run_lock(settings):
        path = pid_file(settings, name)
        record = _load(path)
        if record is not None and record.pid == pid:
            path.unlink(missing_ok=True)


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until every process has fully exited; return the survivors after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    alive = procs
    while True:
        alive = [p for p in alive if _is_alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _is_alive(proc: psutil.Process) -> bool:
    """True until the process has fully exited; a reused PID reads as exited.

    The "zombie" status alone is not enough: when the main thread of a JVM ends during
    shutdown its other threads keep running (ports still bound) under a zombie leader.
    """
    popen = _CHILDREN.get(proc.pid)
    if popen is not None:  # our own child: waitpid is exact, and reaps it
        if popen.poll() is None:
            return True
        del _CHILDREN[proc.pid]
        return False
    try:
        # is_running() also checks the creation time, so a reused PID reads as gone
        if not proc.is_running():
            return False
        return proc.status() != psutil.STATUS_ZOMBIE or proc.num_threads() > 1
    except psutil.NoSuchProcess:
        return False


def _signal(proc: psutil.Process, sig: signal.Signals, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
        if group and _is_alive(proc):
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


def stop(settings: Settings, name: str, *, timeout: float = 30.0) -> bool:
    """Stop service ``name``: SIGTERM, up to ``timeout`` seconds of grace, then SIGKILL.

    A process that leads its own group (every background service) is signalled as a group,
    so its children stop with it; a foreground process that does not lead its group is
    signalled alone, so the shell that ran it survives. Returns False if ``name`` was not
    running. The PID file is removed either way.
    """
    return bool(stop_together(settings, [name], timeout=timeout))


def stop_together(settings: Settings, names: Sequence[str], *, timeout: float = 30.0) -> list[str]:
    """Stop several services at once, as :func:`stop` does one; return those that ran.

    All get SIGTERM first, then share the grace period: the members of a KRaft quorum
    shut down in parallel, where one after the other the last ones would wait for a
    quorum that has already gone.
    """
    targets: list[tuple[ServiceRecord, psutil.Process, bool, list[psutil.Process]]] = []
    for name in names:
        record = get(settings, name)
        if record is None:
            continue
        proc = _process(record)
        try:
            if proc is None:
                raise ProcessLookupError(record.pid)
            group = os.getpgid(proc.pid) == proc.pid
            family = [proc, *proc.children(recursive=True)]
        except (ProcessLookupError, psutil.NoSuchProcess):
            _forget(settings, name, record.pid)
            continue
        targets.append((record, proc, group, family))
    for record, proc, group, _ in targets:
        log.info("stopping %s (PID %d) with SIGTERM", record.name, record.pid)
        _signal(proc, signal.SIGTERM, group)
    alive = _wait_gone([p for *_, family in targets for p in family], timeout)
    for record, proc, group, family in targets:
        survivors = [p for p in family if p in alive]
        if survivors:
            log.warning(
                "%s: PIDs %s still running %.0f s after SIGTERM: sending SIGKILL",
                record.name,
                [p.pid for p in survivors],
                timeout,
            )
            if proc in survivors:
                _signal(proc, signal.SIGKILL, group)
            for child in survivors:
                _signal(child, signal.SIGKILL, False)
    if alive:
        left = _wait_gone(alive, 10.0)
        if left:
            log.error("PIDs %s survived SIGKILL", [p.pid for p in left])
    for record, *_ in targets:
        _forget(settings, record.name, record.pid)
        log.info("stopped %s (PID %d)", record.name, record.pid)
    return [record.name for record, *_ in targets]


def log_tail(path: str | os.PathLike[str], lines: int = 40) -> str:
    """The last ``lines`` of a service log, headed by its path, for a start-up error message."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError:
        return f"({path} is missing)"
    tail = "\n".join(text.strip().splitlines()[-lines:])
    return f"--- {path} (last lines) ---\n{tail}"


def usage(record: ServiceRecord, *, interval: float = 0.2) -> dict[str, float | int]:
    """CPU and memory of a service and its children, for ``fink show``.

    Returns ``cpu_percent`` (100 = one core, measured over ``interval`` seconds),
    ``rss_mib`` (resident memory incl. children: a Spark driver's Python workers count),
    ``uptime_s`` and ``processes``. Raises ProcessLookupError if the service is not running.
    """
    proc = _process(record)
    if proc is None:
        raise ProcessLookupError(f"{record.name} (PID {record.pid}) is not running")

    def family() -> list[psutil.Process]:
        try:
            return [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return [proc]

    def cpu_seconds(procs: list[psutil.Process]) -> dict[int, float]:
        totals = {}
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                t = p.cpu_times()
                totals[p.pid] = t.user + t.system
        return totals

    before = cpu_seconds(family())
    time.sleep(interval)
    procs = family()
    after = cpu_seconds(procs)
    cpu = sum(after[pid] - before.get(pid, after[pid]) for pid in after)
    rss = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            rss += p.memory_info().rss
    return {
        "cpu_percent": round(100.0 * cpu / interval, 1),
        "rss_mib": round(rss / 2**20, 1),
        "uptime_s": round(time.time() - proc.create_time(), 1),
        "processes": len(procs),
    }

"""pytest plugin of ``fink_test --without-integration``: a test that starts a JVM fails.

The tiers without a JVM are selected by markers (``spark``, ``integration``), which
``tests/conftest.py`` also sets from a test's folder and fixtures. This plugin checks the
selection instead of trusting it: a test that starts ``java`` (a Spark session, a Kafka
broker, HBase) fails, whether it does so itself (``subprocess.Popen`` is refused) or
through a child process (a ``java`` process among this process's descendants when the test
ends fails it, and is killed).

Load it with ``pytest -p fink_broker.testing.no_jvm``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

import psutil
import pytest

#: programs that start a JVM (a Spark session starts through spark-submit)
JVM_PROGRAMS = frozenset({"java", "spark-submit", "spark-class", "pyspark", "spark-shell"})


class JvmStarted(RuntimeError):
    """A test of a tier without JVM tried to start one."""


def starts_jvm(args: str | bytes | os.PathLike[str] | Sequence[Any], shell: bool = False) -> bool:
    """True if a ``Popen(args, shell=shell)`` would run a JVM program.

    >>> starts_jvm(["/usr/lib/jvm/bin/java", "-version"]), starts_jvm("ls -l", shell=True)
    (True, False)
    >>> starts_jvm("cd x && spark-submit job.py", shell=True)
    True
    """
    if isinstance(args, str | bytes | os.PathLike):
        text = os.fsdecode(args)
        words = shlex.split(text) if shell else [text]
    else:
        words = [os.fsdecode(a) for a in args][:1]
    return any(os.path.basename(w) in JVM_PROGRAMS for w in words)


_original_init = subprocess.Popen.__init__


def _guarded_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
    if starts_jvm(args, bool(kwargs.get("shell", False))):
        raise JvmStarted(
            f"this tier runs without a JVM, and a test started {args!r}: mark the test "
            "`spark` or `integration`, or move it to tests/spark, tests/integration or tests/e2e"
        )
    _original_init(self, args, *rest, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    """Refuse JVM programs in ``subprocess.Popen`` for the whole run."""
    subprocess.Popen.__init__ = _guarded_init  # type: ignore[method-assign]
    config.addinivalue_line("markers", "jvm_guard: the run refuses JVM programs")


def pytest_unconfigure(config: pytest.Config) -> None:
    subprocess.Popen.__init__ = _original_init  # type: ignore[method-assign]


def _jvm_descendants() -> list[psutil.Process]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            argv = proc.cmdline()
            if argv and os.path.basename(argv[0]) in JVM_PROGRAMS:
                found.append(proc)
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After each test, a JVM among our descendants (started by a child) fails it."""
    try:
        return (yield)
    finally:
        jvms = _jvm_descendants()
        for proc in jvms:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        if jvms:
            pids = ", ".join(str(p.pid) for p in jvms)
            raise JvmStarted(
                f"{item.nodeid} left JVM processes ({pids}) in a tier without a JVM: mark it "
                "`spark` or `integration`"
            )

"""``fink_test``: the tiers it selects, and the guard that fails a test starting a JVM.

The whole ``fink_test --without-integration`` run is CI's first step (``.ci/run``); these
tests check its selection and its guard without running the suite a second time.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fink_broker.testing.no_jvm import starts_jvm
from fink_broker.testing.suite import NotACheckout, repo_root

REPO = Path(__file__).resolve().parents[2]
FINK_TEST = Path(sys.executable).with_name("fink_test")


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FINK_TEST), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def collected(*args: str) -> tuple[list[str], int]:
    """The node ids a run selects, and how many tests the suite has in all."""
    out = run("--no-lint", "--no-cov", *args, "--collect-only", "-q")
    assert out.returncode == 0, out.stdout + out.stderr
    total = re.search(r"(\d+)/(\d+) tests collected", out.stdout)
    assert total, out.stdout[-500:]
    return [line for line in out.stdout.splitlines() if "::" in line], int(total.group(2))


def test_without_integration_selects_no_test_of_a_jvm_tier() -> None:
    light, total = collected("--without-integration")
    heavy, _ = collected("--integration-only")
    assert not set(light) & set(heavy) and len(light) + len(heavy) == total
    jvm_folders = ("tests/spark/", "tests/integration/", "tests/e2e/", "tests/cluster/")
    assert not [n for n in light if n.startswith(jvm_folders)]
    assert all(n.startswith(jvm_folders) for n in heavy)
    # modules without a pytestmark are selected by their folder
    assert any(n.startswith("tests/spark/test_direct_memory.py") for n in heavy)
    assert any(n.startswith("tests/unit/") for n in light)
    assert any(n.startswith("src/fink_broker/") for n in light)  # the doctests


def guarded_pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    test = tmp_path / "test_starts_java.py"
    test.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "fink_broker.testing.no_jvm", "-q", str(test)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_guard_fails_a_test_that_starts_java(tmp_path: Path) -> None:
    out = guarded_pytest(
        tmp_path,
        """
        import subprocess

        def test_java():
            subprocess.run(["java", "-version"], check=True)

        def test_no_java():
            subprocess.run(["true"], check=True)
        """,
    )
    assert out.returncode == 1, out.stdout
    assert "1 failed, 1 passed" in out.stdout
    assert "JvmStarted" in out.stdout and "tier runs without a JVM" in out.stdout


def test_the_guard_fails_a_test_whose_child_starts_java(tmp_path: Path) -> None:
    (tmp_path / "Sleep.java").write_text(
        "class Sleep { public static void main(String[] a) throws Exception {"
        " Thread.sleep(60000); } }"
    )
    out = guarded_pytest(
        tmp_path,
        f"""
        import subprocess, sys, time

        def test_child_starts_java():
            # the guard sees "sh" in Popen; the java it becomes is found when the test ends
            subprocess.Popen(["sh", "-c", "exec java Sleep.java"], cwd={str(tmp_path)!r})
            time.sleep(3)
        """,
    )
    assert out.returncode == 1, out.stdout
    assert "left JVM processes" in out.stdout


def test_jvm_programs_are_recognised() -> None:
    assert starts_jvm(["java", "-cp", "x", "Main"])
    assert starts_jvm(["/opt/spark/bin/spark-submit", "job.py"])
    assert not starts_jvm([sys.executable, "-c", "print('java')"])
    assert starts_jvm("exec java -version", shell=True)


def test_the_checkout_is_found_from_anywhere(tmp_path: Path) -> None:
    assert repo_root(REPO / "src" / "fink_broker") == REPO
    assert repo_root(tmp_path) == REPO  # editable install: the package's own checkout
    with pytest.raises(NotACheckout, match="source checkout"):
        repo_root(tmp_path, package=tmp_path / "site-packages" / "fink_broker")


def test_help_names_the_tiers() -> None:
    out = run("-h")
    assert out.returncode == 0
    assert "--without-integration" in out.stdout and "--integration-only" in out.stdout

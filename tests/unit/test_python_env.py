"""Packing a virtual environment for executors: editable sources in, driver pointers out."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fink_broker.infra import python_env


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A venv with an installed package, pyspark's jars and an editable package whose
    sources live outside it (as ``pip install -e`` leaves them)."""
    prefix = tmp_path / "venv"
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = python_env.site_packages(prefix)
    (site / "demo").mkdir()
    (site / "demo" / "__init__.py").write_text("VALUE = 1\n")
    (site / "pyspark" / "jars").mkdir(parents=True)
    (site / "pyspark" / "__init__.py").write_text("")
    (site / "pyspark" / "jars" / "big.jar").write_bytes(b"jar")
    src = tmp_path / "checkout" / "src"
    (src / "mypkg" / "__pycache__").mkdir(parents=True)
    (src / "mypkg" / "__init__.py").write_text("WHERE = __file__\n")
    (src / "mypkg" / "data.json").write_text("{}")
    (src / "mypkg" / "__pycache__" / "stale.pyc").write_bytes(b"old")
    (src / "mypkg.egg-info").mkdir()
    (site / "__editable__.mypkg-1.0.pth").write_text(f"{src}\n")
    info = site / "mypkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mypkg\nVersion: 1.0\n")
    direct = {"url": f"file://{src.parent}", "dir_info": {"editable": True}}
    (info / "direct_url.json").write_text(json.dumps(direct))
    return prefix


def test_archive_holds_editable_sources_as_installed_and_no_driver_pointer(venv, tmp_path):
    found = python_env.layout(venv)
    archive = tmp_path / "env.tar.gz"
    stats = python_env.pack(found, archive)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        python = tar.getmember("bin/python")
    site = python_env.site_packages(Path("")).as_posix().lstrip("/")
    assert f"{site}/mypkg/__init__.py" in names and f"{site}/mypkg/data.json" in names
    assert f"{site}/demo/__init__.py" in names and f"{site}/pyspark/__init__.py" in names
    assert f"{site}/mypkg-1.0.dist-info/METADATA" in names
    assert not any("__editable__" in n or "direct_url.json" in n for n in names)
    assert not any("pyspark/jars" in n or "stale.pyc" in n or "egg-info" in n for n in names)
    assert python.issym(), "the interpreter stays a link to the base Python, as venv-pack's"
    assert stats["files"] == len([n for n in names if not n.endswith("/")])

    unpacked = tmp_path / "executor" / "fink_python"
    unpacked.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="tar")
    (venv / "lib").rename(venv / "moved")  # the driver's environment is gone
    ran = subprocess.run(
        [str(unpacked / "bin" / "python"), "-c", "import mypkg, demo; print(mypkg.WHERE)"],
        cwd=tmp_path / "executor",
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().startswith(str(unpacked)), ran.stdout


def test_digest_follows_the_editable_sources(venv, tmp_path):
    before = python_env.digest(python_env.layout(venv))
    assert python_env.digest(python_env.layout(venv)) == before
    source = tmp_path / "checkout" / "src" / "mypkg" / "__init__.py"
    source.write_text("WHERE = 'changed'\n")
    assert python_env.digest(python_env.layout(venv)) != before


def test_a_folder_that_is_not_a_venv_is_refused(tmp_path):
    with pytest.raises(python_env.PackError):
        python_env.layout(tmp_path)

"""A third-party science module, installed as its own package, is found without broker changes.

The test builds a tiny distribution in ``tmp_path`` whose ``pyproject.toml`` declares an
entry point in ``fink_broker.science_modules``, pip-installs it into a throw-away virtual
environment layered on the project's ``.venv``, and runs discovery in that environment.

Why the details:

* the project's venv must not change while other test runs use it, hence a separate venv;
  ``python -m venv --system-site-packages`` from a venv would expose the *base* interpreter's
  packages, not ``.venv``'s, so the new venv gets a ``.pth`` that adds ``.venv``'s
  site-packages (``site.addsitedir`` also runs its ``.pth`` files: the editable broker);
* the build must work offline and without ``wheel`` (setuptools 65 in ``.venv`` has no
  ``bdist_wheel``), so the package carries a 30-line in-tree PEP 517 backend
  (``backend-path``) and is installed with ``--no-build-isolation --no-index``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from fink_broker.plugins import discover

PYPROJECT = """
[build-system]
requires = []
build-backend = "mini_backend"
backend-path = ["."]

[project]
name = "fink-hello-module"
version = "0.1.0"

[project.entry-points."fink_broker.science_modules"]
hello_flux = "fink_hello:hello_flux"
"""

BACKEND = '''
"""Minimal PEP 517 backend: packs src/ and the [project] entry points into a wheel."""
import base64, hashlib, tomllib, zipfile
from pathlib import Path


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    name, version = project["name"].replace("-", "_"), project["version"]
    info = f"{name}-{version}.dist-info"
    files = {str(p.relative_to("src")): p.read_bytes() for p in Path("src").rglob("*.py")}
    files[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\\nName: {project['name']}\\nVersion: {version}\\n"
    ).encode()
    files[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\\nGenerator: mini_backend\\nRoot-Is-Purelib: true\\n"
        b"Tag: py3-none-any\\n"
    )
    files[f"{info}/entry_points.txt"] = "".join(
        f"[{group}]\\n" + "".join(f"{k} = {v}\\n" for k, v in points.items()) + "\\n"
        for group, points in project.get("entry-points", {}).items()
    ).encode()
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    files[f"{info}/RECORD"] = ("\\n".join([*record, f"{info}/RECORD,,"]) + "\\n").encode()
    wheel = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(Path(wheel_directory) / wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel
'''

MODULE = '''
"""A third-party Fink science module: the absolute difference flux."""
import pandas as pd

from fink_broker.plugins import science_module


@science_module(
    name="hello_flux",
    version="0.1",
    inputs=["flux"],
    outputs=[("hello_abs_flux", "double", "nJy", "absolute difference flux")],
    surveys=["rubin"],
)
def hello_flux(df):
    """Absolute value of the difference flux."""
    return pd.DataFrame({"hello_abs_flux": df["flux"].abs()}, index=df.index)
'''

PROBE = """
import json
import pandas as pd
from fink_broker.plugins import discover, modules_for, run_module

found = discover()
module = found["hello_flux"]
out = run_module(module, pd.DataFrame({"flux": [-3.0, 4.0]}))
print(json.dumps({
    "names": sorted(found),
    "rubin": [m.name for m in modules_for("rubin", found)],
    "ztf": [m.name for m in modules_for("ztf", found)],
    "values": out["hello_abs_flux"].tolist(),
}))
"""


def run(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def layered_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv that sees the project's .venv packages but installs into its own."""
    root = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", str(root))
    python = root / "bin" / "python"
    own = Path(
        run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    parent = sysconfig.get_paths()["purelib"]
    (own / "_fink_parent_venv.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


def test_third_party_package_is_discovered_without_broker_changes(tmp_path, layered_python):
    package = tmp_path / "fink-hello-module"
    (package / "src" / "fink_hello").mkdir(parents=True)
    (package / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (package / "mini_backend.py").write_text(BACKEND)
    (package / "src" / "fink_hello" / "__init__.py").write_text(MODULE)

    run(
        str(layered_python), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
        "--no-index", "--disable-pip-version-check", "--quiet", str(package),
    )  # fmt: skip
    report = json.loads(run(str(layered_python), "-c", PROBE).strip().splitlines()[-1])

    assert "hello_flux" in report["names"]
    assert {"solar_system", "xmatch", "provenance"} <= set(report["names"])  # built-ins too
    assert "hello_flux" in report["rubin"] and "hello_flux" not in report["ztf"]
    assert report["values"] == [3.0, 4.0]
    # the project's own environment is untouched
    assert "hello_flux" not in discover()

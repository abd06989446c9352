"""The Python environment a driver sends to its executors (``spark.archives``).

On a cluster, executors must not depend on the driver's virtualenv being on their disk: the
driver packs the environment it runs in (``sys.prefix``) into one ``.tar.gz``, Spark sends it
to every executor, which unpacks it into its working folder as ``fink_python/``, and the
Python workers run ``./fink_python/bin/python`` (``PYSPARK_PYTHON`` of the executors).
fink_broker, its dependencies and every plugin package installed next to it travel
together, catalogues shipped inside packages included.

Why not ``venv-pack`` as it is: it refuses an environment with an editable install (a
developer's ``pip install -e .``, which ``scripts/setup.sh`` makes), and it would send
pyspark's 460 MB of jars that executors never load (the worker's Spark runs them). Here an
editable package is packed as an installed one: its sources are copied where the packed
interpreter looks for them, and its ``.pth`` hook, which points at the driver's source
tree, is left out. What stays as venv-pack does it: ``bin/python`` is the same symbolic
link to the base interpreter, so the workers need that Python (same version, same path),
as with any packed virtualenv.

The archive is built once per environment and kept in the jar cache, named by a digest of
the interpreter, the installed distributions and the editable sources: a changed source
file or an installed package makes the next session pack again.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import logging
import os
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fink_broker.config import Settings
from fink_broker.errors import FinkError
from fink_broker.infra.jars import folder_lock, jar_cache_dir

log = logging.getLogger(__name__)

#: the folder each executor unpacks the archive into (``spark.archives`` ``#alias``)
ARCHIVE_ALIAS = "fink_python"
#: the interpreter of the executors' Python workers, relative to their working folder
EXECUTOR_PYTHON = f"./{ARCHIVE_ALIAS}/bin/python"
#: parts of site-packages executors never read: pyspark's jars (their Spark is the worker's)
LEFT_OUT = ("pyspark/jars/",)
#: gzip level: 1 packs 1.1 GB in ~30 s on one core for a 0.4 GB archive; 6 takes 3x longer
#: for 8% less
COMPRESS_LEVEL = 1
#: folders of copied sources that are never packed
SKIPPED_DIRS = ("__pycache__",)


class PackError(FinkError):
    """The running Python is not a virtual environment, or its packing failed."""


@dataclass
class Layout:
    """What goes into the archive: the venv's own files and the editable sources."""

    prefix: Path
    site: Path
    #: archive name -> file of the driver's disk, for sources of editable installs
    sources: dict[str, Path] = field(default_factory=dict)
    #: venv files left out (editable hooks, their ``direct_url.json``)
    hooks: set[Path] = field(default_factory=set)


def site_packages(prefix: Path) -> Path:
    """``lib/pythonX.Y/site-packages`` of ``prefix``."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return prefix / "lib" / version / "site-packages"


def _finder_mapping(finder: Path) -> dict[str, str]:
    """``MAPPING`` of a setuptools editable finder: top-level name -> source folder."""
    tree = ast.parse(finder.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "MAPPING" for t in node.targets
        ):
            return dict(ast.literal_eval(node.value))
    return {}


def _copied(root: Path, arcname: str, out: dict[str, Path]) -> None:
    """Every file below ``root`` (a package folder or a module) under ``arcname``."""
    if root.is_file():
        out[arcname] = root
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(part in SKIPPED_DIRS for part in path.parts):
            out[f"{arcname}/{path.relative_to(root).as_posix()}"] = path


def layout(prefix: Path) -> Layout:
    """The files of the environment at ``prefix``, editable installs resolved to sources.

    Two kinds of editable hooks exist: a ``.pth`` line naming a source folder (setuptools'
    ``src`` layouts, ``pip install -e``), whose packages are copied whole, and a ``.pth``
    that imports a setuptools finder, whose ``MAPPING`` names each package's folder.
    """
    site = site_packages(prefix.resolve())
    if not site.is_dir():
        raise PackError(f"{prefix} has no {site.relative_to(prefix)}: not a virtual environment")
    prefix = prefix.resolve()
    found = Layout(prefix=prefix, site=site)
    base = site.relative_to(prefix).as_posix()
    for pth in sorted(site.glob("*.pth")):
        lines = [line.strip() for line in pth.read_text().splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        folders = [Path(line) for line in lines if not line.startswith("import")]
        external = [f for f in folders if f.is_dir() and prefix not in f.resolve().parents]
        finders = [line.split()[1].split(";")[0] for line in lines if line.startswith("import ")]
        finder_files = [site / f"{name}.py" for name in finders if name.startswith("__editable")]
        if not external and not finder_files:
            continue
        found.hooks.add(pth)
        for folder in external:
            for child in sorted(folder.iterdir()):
                is_package = child.is_dir() and not child.name.endswith((".egg-info", "-info"))
                if (is_package and child.name not in SKIPPED_DIRS) or child.suffix == ".py":
                    _copied(child, f"{base}/{child.name}", found.sources)
        for finder in finder_files:
            found.hooks.add(finder)
            for name, where in _finder_mapping(finder).items():
                _copied(Path(where), f"{base}/{name}", found.sources)
    for dist in importlib.metadata.distributions(path=[str(site)]):
        direct = dist.read_text("direct_url.json")
        info = getattr(dist, "_path", None)  # PathDistribution: its .dist-info folder
        if direct and info and json.loads(direct).get("dir_info", {}).get("editable"):
            # an editable install packed as an installed one: no pointer to the sources
            found.hooks.add(Path(str(info)) / "direct_url.json")
    return found


def _venv_files(found: Layout) -> Iterator[tuple[str, Path]]:
    """(archive name, file) of the environment's own files, left-out parts excepted."""
    base = found.site.relative_to(found.prefix).as_posix()
    skipped = tuple(f"{base}/{part}" for part in LEFT_OUT)
    for folder, dirs, files in os.walk(found.prefix):
        here = Path(folder)
        rel = here.relative_to(found.prefix).as_posix()
        rel = "" if rel == "." else rel
        keep_dirs = []
        for name in sorted(dirs):
            path = here / name
            arcname = f"{rel}/{name}".lstrip("/")
            if (arcname + "/").startswith(skipped):
                continue
            if path.is_symlink():
                yield arcname, path
            else:
                keep_dirs.append(name)
        dirs[:] = keep_dirs
        for name in sorted(files):
            path = here / name
            arcname = f"{rel}/{name}".lstrip("/")
            if path not in found.hooks and not arcname.startswith(skipped):
                yield arcname, path


def digest(found: Layout) -> str:
    """What the archive depends on: interpreter, installed distributions, editable sources."""
    h = hashlib.sha256()
    h.update(f"{sys.version}\0{found.prefix}\0{sorted(LEFT_OUT)}\0".encode())
    dists = sorted(
        (d.metadata["Name"] or "", d.version)
        for d in importlib.metadata.distributions(path=[str(found.site)])
    )
    h.update(repr(dists).encode())
    for arcname, path in sorted(found.sources.items()):
        h.update(arcname.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def pack(found: Layout, output: Path) -> dict[str, int]:
    """Write the archive of ``found`` to ``output``; return its file count and sizes."""
    files = size = 0
    tmp = output.with_name(f".{output.name}.tmp")
    with tarfile.open(tmp, "w:gz", compresslevel=COMPRESS_LEVEL) as archive:
        for arcname, path in _venv_files(found):
            if arcname in found.sources:
                continue  # an editable package also installed: its sources win
            archive.add(path, arcname=arcname, recursive=False)
            files += 1
            size += 0 if path.is_symlink() else path.stat().st_size
        for arcname, path in sorted(found.sources.items()):
            archive.add(path, arcname=arcname, recursive=False)
            files += 1
            size += path.stat().st_size
    os.replace(tmp, output)
    return {"files": files, "bytes": size, "archive_bytes": output.stat().st_size}


def packed_environment(settings: Settings, *, progress: Callable[[str], None] = log.info) -> Path:
    """The archive of the running environment in ``<jar_cache>/python-env/``, packed if missing.

    Raises :class:`PackError` when the running Python is not a virtual environment (the
    system Python cannot be shipped: pass ``spark.python_archive``, or turn
    ``spark.ship_python`` off and install the broker on the workers).
    """
    prefix = Path(sys.prefix)
    if sys.prefix == sys.base_prefix:
        raise PackError(
            f"{prefix} is not a virtual environment: Fink ships its environment to executors "
            "from a venv (or set spark.python_archive, or spark.ship_python = false)"
        )
    found = layout(prefix)
    folder = jar_cache_dir(settings) / "python-env"
    output = folder / f"fink-python-{digest(found)}.tar.gz"
    with folder_lock(folder):
        if output.is_file():
            return output
        progress(f"packing the Python environment {prefix} for the executors into {output}")
        started = time.monotonic()
        stats = pack(found, output)
        for old in folder.glob("fink-python-*.tar.gz"):
            if old != output:
                old.unlink(missing_ok=True)
    log.info(
        "packed %d files (%.0f MB) into %s (%.0f MB) in %.1f s",
        stats["files"],
        stats["bytes"] / 1e6,
        output,
        stats["archive_bytes"] / 1e6,
        time.monotonic() - started,
    )
    return output

"""Build the native tools Fink runs locally from Rust crates, once, into the jar cache.

One lives there: ``<jar_cache>/schema-registry/bin/rivven-schema``, the Confluent-API schema
registry that ``fink start registry`` runs (:mod:`fink_broker.infra.registry_local`). It is the
``rivven-schema`` crate (Apache-2.0), built with ``cargo install --locked`` at a pinned version,
so the build takes the crate's own lock file and is the same on every machine.

Why a Rust binary next to the JVM jars: the JVM registries cannot be had from the registries
this project reaches. Apicurio Registry's Maven artifact (``apicurio-registry-app``) holds the
application classes only, not the Quarkus-built application, and Maven Central does not serve
the modules it depends on (``apicurio-registry-schema-util-provider`` for 2.6.13.Final and
3.3.3, the parent POM of 3.0.9 and 3.3.2); Confluent's own registry is not on Maven Central.

As with the Maven folders of :mod:`fink_broker.infra.jars`, cargo runs only when the folder's
stamp (the sha256 of the install spec) is missing or stale, and the folder is replaced whole
once the build succeeded; a warm cache needs neither cargo nor the network. The build takes a
lock file of its own in the cache, so a build of many minutes does not hold up a Kafka start.

A cold build (fresh cargo home and build folder) downloads 263 crates and compiles 250. On
this project's 2 cores, shared with other work, it took 41 min 27 s of wall time for 10 min
41 s of CPU (9:45 user, 0:56 sys), and 14 min 6 s for 8 min 4 s of CPU (7:17 user, 0:47 sys;
load average 0.07 at its start, 15 to 25 from its fifth minute). It was never measured on a
quiet machine; on 2 idle cores it cannot take less than half its CPU time (~4 min). cargo's
build folder is therefore kept outside the clone and the jar cache (:func:`cargo_target_dir`,
~580 MB, as ``~/.m2`` is for Maven): a fresh clone on the same machine then only re-installs
the binary (16.8 s wall, 3.2 s CPU, measured at load average 17).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fink_broker.config import Settings
from fink_broker.errors import FinkError
from fink_broker.infra.jars import STAMP, cache_lock, jar_cache_dir, output_tail

log = logging.getLogger(__name__)

#: the crate of the schema registry and its pinned version (``cargo install --version =…``)
REGISTRY_CRATE = "rivven-schema"
REGISTRY_VERSION = "0.0.22"
#: cache folder of the registry (``--root`` of cargo install), and its executable in bin/
REGISTRY_FOLDER = "schema-registry"
REGISTRY_BINARY = "rivven-schema"
#: cargo gets this long before we give up (a cold build took 41 min on 2 busy cores)
CARGO_TIMEOUT_S = 5400
#: the lock file of the build in the jar cache (the Maven folders keep ``.lock``)
CARGO_LOCK = ".cargo.lock"


class CargoError(FinkError):
    """cargo is missing, or did not build the pinned crate."""


def find_cargo() -> str:
    """Path of ``cargo``: on PATH, else in ``$CARGO_HOME/bin`` (rustup's default ``~/.cargo``).

    ``~/.cargo/bin`` is only on PATH in a shell that read rustup's profile, which a service
    manager or a cron job has not.
    """
    found = shutil.which("cargo")
    if found:
        return found
    home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    candidate = home / "bin" / "cargo"
    if os.access(candidate, os.X_OK):
        return str(candidate)
    raise CargoError(
        "`cargo` was not found on PATH nor in $CARGO_HOME/bin: Fink builds its local schema "
        f"registry ({REGISTRY_CRATE} {REGISTRY_VERSION}) with a recent Rust toolchain (rustup; "
        "Debian 12's rustc 1.63 is too old for its dependencies)."
    )


def cargo_target_dir() -> Path:
    """cargo's build folder: ``$CARGO_TARGET_DIR``, else ``~/.cache/fink/cargo-target``.

    It outlives the clone and the jar cache, so that a fresh clone (CI, a new worktree)
    re-installs the registry in seconds instead of compiling 250 crates again; ``cargo
    install`` would otherwise build in a temporary folder and delete it.
    """
    if os.environ.get("CARGO_TARGET_DIR"):
        return Path(os.environ["CARGO_TARGET_DIR"]).expanduser()
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache_home / "fink" / "cargo-target"


def install_spec() -> list[str]:
    """The ``cargo install`` arguments that pin the registry (their hash is the stamp)."""
    return [REGISTRY_CRATE, "--version", f"={REGISTRY_VERSION}", "--locked"]


def registry_binary(settings: Settings, *, log: Callable[[str], None] = log.info) -> Path:
    """The schema registry executable, built into the jar cache on first use.

    ``log`` receives one line before a build, so a CLI can tell why the first run pauses.
    """
    cache = jar_cache_dir(settings)
    with cache_lock(cache, CARGO_LOCK):
        return _cargo_folder(cache, log)


def _cargo_folder(cache: Path, progress: Callable[[str], None]) -> Path:
    spec = install_spec()
    digest = hashlib.sha256(" ".join(spec).encode()).hexdigest()
    target = cache / REGISTRY_FOLDER
    binary = target / "bin" / REGISTRY_BINARY
    stamp = target / STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest and os.access(binary, os.X_OK):
        return binary
    cargo = find_cargo()
    progress(
        f"building {REGISTRY_CRATE} {REGISTRY_VERSION} with cargo into {target} (first run; "
        f"cold, it compiles 250 crates in {cargo_target_dir()}: 8-11 min of CPU)"
    )
    started = time.monotonic()
    # cargo installs into a scratch root, which replaces the old folder only once complete,
    # stamp included; its build folder is kept for the next install (cargo locks it).
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{REGISTRY_FOLDER}-") as tmp:
        root = Path(tmp) / "root"
        cmd = [cargo, "install", *spec, "--root", str(root)]
        env = {
            **os.environ,
            "CARGO_TERM_COLOR": "never",
            "CARGO_TARGET_DIR": str(cargo_target_dir()),
        }
        try:
            result = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=CARGO_TIMEOUT_S,
                check=False,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise CargoError(
                f"cargo install {REGISTRY_CRATE} took over {CARGO_TIMEOUT_S} s"
            ) from None
        built = root / "bin" / REGISTRY_BINARY
        if result.returncode != 0 or not os.access(built, os.X_OK):
            raise CargoError(
                f"cargo could not build {REGISTRY_CRATE} {REGISTRY_VERSION} (exit "
                f"{result.returncode}); is the Rust crate registry reachable?\n"
                f"{output_tail(result.stdout + result.stderr)}"
            )
        (root / STAMP).write_text(digest + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(root, target)
    log.info(
        "built %s %s in %.1f s into %s",
        REGISTRY_CRATE,
        REGISTRY_VERSION,
        time.monotonic() - started,
        target,
    )
    return binary

"""The local schema registry without starting it: its command line, settings and cache stamp."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from fink_broker.cli.parser import build_parser
from fink_broker.config import load_settings
from fink_broker.infra import crates, registry_local
from fink_broker.infra.jars import STAMP


def test_the_registry_binds_loopback_on_the_configured_port() -> None:
    settings = load_settings(
        None, env={"FINK_LOCAL_REGISTRY_PORT": "18081", "FINK_LOCAL_REGISTRY_LOG_LEVEL": "debug"}
    )
    argv = registry_local.registry_argv(settings, Path("/cache/bin/rivven-schema"))
    assert argv == [
        "/cache/bin/rivven-schema",
        "--log-level",
        "debug",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "18081",
    ]
    assert registry_local.registry_url(settings) == "http://127.0.0.1:18081"


def test_defaults_and_the_cli_port_flag() -> None:
    settings = load_settings(None, env={})
    assert (settings.local_registry.port, settings.local_registry.log_level) == (8081, "info")
    args = build_parser().parse_args(["start", "registry", "--port", "18082"])
    assert (args.service, args.port) == ("registry", 18082)


def test_nothing_answers_on_a_closed_port() -> None:
    assert registry_local.registry_health("http://127.0.0.1:9", timeout=0.5) is None


def _warm(cache: Path, spec: list[str]) -> Path:
    """A cache folder as a successful build leaves it: executable and stamp."""
    binary = cache / crates.REGISTRY_FOLDER / "bin" / crates.REGISTRY_BINARY
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    digest = hashlib.sha256(" ".join(spec).encode()).hexdigest()
    (cache / crates.REGISTRY_FOLDER / STAMP).write_text(digest + "\n")
    return binary


def test_a_warm_cache_needs_no_cargo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("CARGO_HOME", str(tmp_path / "no-cargo"))
    binary = _warm(tmp_path / "cache", crates.install_spec())
    settings = load_settings(None, env={}, overrides={"paths.jar_cache": str(tmp_path / "cache")})
    assert crates.registry_binary(settings) == binary


def test_a_stale_stamp_rebuilds_and_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # another pinned version: the stamp no longer matches, so cargo is needed (and absent)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("CARGO_HOME", str(tmp_path / "no-cargo"))
    _warm(tmp_path / "cache", [crates.REGISTRY_CRATE, "--version", "=0.0.1", "--locked"])
    settings = load_settings(None, env={}, overrides={"paths.jar_cache": str(tmp_path / "cache")})
    with pytest.raises(crates.CargoError, match="cargo"):
        crates.registry_binary(settings)
    assert os.access(tmp_path / "cache" / crates.REGISTRY_FOLDER / "bin", os.F_OK)  # kept


def test_cargo_builds_outside_the_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARGO_TARGET_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert crates.cargo_target_dir() == tmp_path / "xdg" / "fink" / "cargo-target"
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path / "target"))
    assert crates.cargo_target_dir() == tmp_path / "target"


def _fake_cargo(folder: Path, body: str) -> None:
    """A `cargo` on PATH that runs ``body`` (sh) with the install root as ``$root``."""
    folder.mkdir()
    cargo = folder / "cargo"
    cargo.write_text(
        '#!/bin/sh\nwhile [ "$1" != --root ]; do shift; done; root=$2\n'
        f'echo "$CARGO_TARGET_DIR" > "{folder}/target-dir"\n{body}\n'
    )
    cargo.chmod(0o755)


def test_a_build_is_stamped_and_uses_the_kept_target_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "fake-bin"
    _fake_cargo(
        bin_dir,
        f'/bin/mkdir -p "$root/bin" && /bin/cp /bin/true "$root/bin/{crates.REGISTRY_BINARY}"',
    )
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("CARGO_TARGET_DIR", str(tmp_path / "target"))
    settings = load_settings(None, env={}, overrides={"paths.jar_cache": str(tmp_path / "cache")})
    binary = crates.registry_binary(settings, log=lambda msg: None)
    assert os.access(binary, os.X_OK)
    assert (bin_dir / "target-dir").read_text().strip() == str(tmp_path / "target")
    (bin_dir / "cargo").unlink()  # warm now: no second build
    assert crates.registry_binary(settings) == binary


def test_a_failed_build_is_loud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "fake-bin"
    _fake_cargo(bin_dir, "echo 'error: failed to download from crates.io' >&2; exit 101")
    monkeypatch.setenv("PATH", str(bin_dir))
    settings = load_settings(None, env={}, overrides={"paths.jar_cache": str(tmp_path / "cache")})
    with pytest.raises(crates.CargoError, match=r"(?s)exit 101.*failed to download"):
        crates.registry_binary(settings, log=lambda msg: None)
    assert not (tmp_path / "cache" / crates.REGISTRY_FOLDER).exists()

"""Catalogues an operator adds with ``fink catalogs add``, and the cross-match module over them.

The built-in ``xmatch`` module matches the catalogues that installed packages ship; its
columns are fixed. A deployment's own catalogues (a SIMBAD or Gaia extract, a list of
targets) go through ``fink catalogs add NAME FILE --radius R``: the file (Parquet, CSV or
FITS) is checked once (the named columns exist, every position is a finite ra in [0, 360]
and dec in [-90, 90]) and rewritten as ``<catalogue_dir>/NAME.parquet`` with ``ra, dec, id,
class``, so that no worker meets a bad row in the middle of a night. The registry
``catalogues.json`` beside the files lists them; raw2science then runs one more module,
``xmatch_local``, with the columns ``xm_NAME_id``, ``xm_NAME_class`` and
``xm_NAME_sep_arcsec`` per catalogue. Its version carries a digest of the catalogues (names,
radii, file contents), so the provenance of each science row says which ones it was matched
against. Each worker indexes a file once and again only when it changes (``catalogues.load``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fink_broker.config import Settings, is_local_master
from fink_broker.errors import FinkError
from fink_broker.plugins import ScienceModule
from fink_broker.science.catalogues import Catalogue, default_catalogues, j_name, read_table
from fink_broker.science.xmatch import VERSION, make_xmatch_module

#: the science module over the local catalogues
MODULE_NAME = "xmatch_local"
#: the registry file in the catalogue folder
REGISTRY = "catalogues.json"
#: catalogue names: they make column names (``xm_<name>_id``)
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: the largest match radius accepted: 1 degree
MAX_RADIUS_ARCSEC = 3600.0


class CatalogueError(FinkError):
    """A catalogue that cannot be added or removed, and why."""


@dataclass(frozen=True)
class LocalCatalogue:
    """One entry of the registry."""

    name: str
    radius_arcsec: float
    #: the checked copy: Parquet with ``ra, dec, id, class``
    file: str
    rows: int
    #: sha256 of ``file``: the module version's digest
    sha256: str
    description: str = ""
    #: the file it was made from, and when
    source: str = ""
    added: str = ""

    def catalogue(self, *, shipped: bool = False) -> Catalogue:
        """The catalogue the cross-match reads: its file, or with ``shipped`` the copy Spark
        puts in each executor's working folder (``spark.files``), by its name alone."""
        return Catalogue(
            name=self.name,
            radius_arcsec=self.radius_arcsec,
            description=self.description or f"local catalogue {self.name}",
            path=Path(self.file).name if shipped else self.file,
        )


def catalogue_dir(settings: Settings) -> Path:
    """Where the local catalogues live (``raw2science.catalogue_dir``, by default
    ``<state_dir>/catalogues``)."""
    configured = settings.raw2science.catalogue_dir
    return Path(configured) if configured else Path(settings.paths.state_dir) / "catalogues"


def registered(folder: Path) -> list[LocalCatalogue]:
    """The local catalogues of ``folder``, in the order they were added."""
    path = folder / REGISTRY
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text())
        return [LocalCatalogue(**entry) for entry in entries]
    except (ValueError, TypeError) as err:
        raise CatalogueError(f"{path} is not a catalogue registry: {err}") from err


def _write_registry(folder: Path, entries: list[LocalCatalogue]) -> None:
    path = folder / REGISTRY
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps([asdict(e) for e in entries], indent=2) + "\n")
    os.replace(tmp, path)


def _checked_frame(
    raw: pd.DataFrame,
    *,
    ra_col: str,
    dec_col: str,
    id_col: str | None,
    class_col: str | None,
    default_class: str,
) -> pd.DataFrame:
    """``ra, dec, id, class`` from ``raw``, or a CatalogueError that says what is wrong."""
    wanted = [c for c in (ra_col, dec_col, id_col, class_col) if c]
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise CatalogueError(f"no column {missing} in the file (it has {list(raw.columns)})")
    if raw.empty:
        raise CatalogueError("the file holds no row")
    ra = pd.to_numeric(raw[ra_col], errors="coerce").to_numpy(float)
    dec = pd.to_numeric(raw[dec_col], errors="coerce").to_numpy(float)
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra <= 360) & (np.abs(dec) <= 90))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise CatalogueError(
            f"{int(bad.sum())} row(s) without a position in degrees (ra in [0, 360], dec in"
            f" [-90, 90]), the first at row {first}: ra={raw[ra_col].iloc[first]!r},"
            f" dec={raw[dec_col].iloc[first]!r}"
        )
    ids = raw[id_col].astype(str) if id_col else pd.Series(j_name(ra, dec))
    if id_col and raw[id_col].isna().any():
        raise CatalogueError(f"{int(raw[id_col].isna().sum())} row(s) without an id ({id_col})")
    classes = (
        raw[class_col].astype("string").fillna(default_class)
        if class_col
        else pd.Series([default_class] * len(raw), dtype="string")
    )
    return pd.DataFrame(
        {"ra": ra, "dec": dec, "id": ids.to_numpy(), "class": classes.to_numpy(dtype=object)}
    )


def add(
    folder: Path,
    name: str,
    source: Path,
    radius_arcsec: float,
    *,
    ra_col: str = "ra",
    dec_col: str = "dec",
    id_col: str | None = "id",
    class_col: str | None = "class",
    default_class: str = "",
    description: str = "",
    replace: bool = False,
) -> LocalCatalogue:
    """Check ``source`` and register it as the local catalogue ``name``."""
    if not NAME.fullmatch(name):
        raise CatalogueError(
            f"catalogue name {name!r}: a lower-case letter, then up to 31 letters, digits or _"
        )
    if name in {c.name for c in default_catalogues()}:
        raise CatalogueError(f"{name!r} is a built-in catalogue of the xmatch module")
    if not 0 < radius_arcsec <= MAX_RADIUS_ARCSEC:
        raise CatalogueError(f"radius {radius_arcsec} arcsec: give one in (0, {MAX_RADIUS_ARCSEC}]")
    entries = registered(folder)
    if any(e.name == name for e in entries) and not replace:
        raise CatalogueError(f"catalogue {name!r} exists: remove it first, or add --replace")
    if not source.is_file():
        raise CatalogueError(f"no file {source}")
    try:
        raw = read_table(source)
    except ValueError as err:  # unsupported suffix, unreadable table
        raise CatalogueError(str(err)) from err
    frame = _checked_frame(
        raw,
        ra_col=ra_col,
        dec_col=dec_col,
        id_col=id_col,
        class_col=class_col,
        default_class=default_class,
    )
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{name}.parquet"
    tmp = folder / f".{name}.parquet.tmp"
    frame.to_parquet(tmp, index=False)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.replace(tmp, file)
    entry = LocalCatalogue(
        name=name,
        radius_arcsec=float(radius_arcsec),
        file=str(file.resolve()),
        rows=len(frame),
        sha256=digest,
        description=description,
        source=str(source.resolve()),
        added=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    _write_registry(folder, [e for e in entries if e.name != name] + [entry])
    return entry


def remove(folder: Path, name: str) -> LocalCatalogue:
    """Unregister the local catalogue ``name`` and delete its checked copy."""
    entries = registered(folder)
    gone = [e for e in entries if e.name == name]
    if not gone:
        raise CatalogueError(f"no local catalogue {name!r} in {folder}")
    _write_registry(folder, [e for e in entries if e.name != name])
    Path(gone[0].file).unlink(missing_ok=True)
    return gone[0]


def module_version(entries: list[LocalCatalogue]) -> str:
    """The cross-match version and a digest of the catalogues it matches against."""
    text = json.dumps([(e.name, e.radius_arcsec, e.sha256) for e in entries])
    return f"{VERSION}+{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def local_module(settings: Settings) -> ScienceModule | None:
    """The ``xmatch_local`` module over the registered catalogues, or None without any.

    With a cluster master the executors read the copies Spark distributes
    (:func:`shipped_files`), not the driver's folder, which is not on their disk.
    """
    entries = registered(catalogue_dir(settings))
    if not entries:
        return None
    shipped = not is_local_master(settings.spark.master)
    return make_xmatch_module(
        [e.catalogue(shipped=shipped) for e in entries],
        name=MODULE_NAME,
        version=module_version(entries),
    )


def shipped_files(settings: Settings) -> list[Path]:
    """The catalogue files a cluster's driver sends to its executors (``spark.files``):
    each lands in every executor's working folder, where :func:`local_module` reads it."""
    if is_local_master(settings.spark.master):
        return []
    return [Path(e.file) for e in registered(catalogue_dir(settings))]

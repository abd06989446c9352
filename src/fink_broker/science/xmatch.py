"""Positional cross-match of alerts against local catalogues (nearest entry within a radius).

For every catalogue ``<cat>`` the module emits ``xm_<cat>_id``, ``xm_<cat>_class`` and
``xm_<cat>_sep_arcsec`` (null when nothing lies within the radius). The output columns are
fixed by the catalogue list the module is built with, so they are declared up front: the
built-in ``xmatch`` module uses :func:`~fink_broker.science.catalogues.default_catalogues`,
and a deployment with more catalogues (a SIMBAD or Gaia extract) ships its own module made
with :func:`make_xmatch_module` under another name, through its own entry point.

Matching is a scipy KD-tree on the catalogue's unit vectors, built once per catalogue and
process (see ``catalogues``), then exact great-circle separations of the candidates.
astropy's ``match_to_catalog_sky`` did the same, but converted the whole catalogue to
Cartesian again on every call (1.9 M VSX rows for each batch of alerts): that was half of
the Python workers' time in raw2science.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from fink_broker.plugins import ColumnSpec, ScienceModule, science_module
from fink_broker.science.catalogues import (
    Catalogue,
    LoadedCatalogue,
    j_name,
    load,
    unit_vectors,
)
from fink_broker.science.catalogues import default_catalogues as _defaults

log = logging.getLogger(__name__)

VERSION = "1.0"


def output_columns(catalogue: Catalogue) -> tuple[ColumnSpec, ...]:
    """The three declared columns of one catalogue."""
    prefix = f"xm_{catalogue.name}"
    where = f"{catalogue.description or catalogue.name}"
    radius = (
        "within the entry's own radius"
        if catalogue.per_row_radius
        else f"within {catalogue.radius_arcsec:g} arcsec"
    )
    return (
        ColumnSpec(f"{prefix}_id", "string", "", f"nearest {where} entry {radius}"),
        ColumnSpec(f"{prefix}_class", "string", "", f"class of that {catalogue.name} entry"),
        ColumnSpec(f"{prefix}_sep_arcsec", "double", "arcsec", "separation to that entry"),
    )


def chord(arcsec: float) -> float:
    """Straight-line distance between two unit vectors ``arcsec`` apart on the sky."""
    return 2.0 * np.sin(np.radians(arcsec / 3600.0) / 2.0)


def separation_arcsec(
    ra1: np.ndarray, dec1: np.ndarray, ra2: np.ndarray, dec2: np.ndarray
) -> np.ndarray:
    """Great-circle separations in arcsec (Vincenty's formula, as astropy's ``separation``).

    >>> separation_arcsec(np.array([10.0]), np.array([20.0]), np.array([10.0]),
    ...                   np.array([20.001])).round(6).tolist()
    [3.6]
    """
    l1, b1, l2, b2 = (np.radians(x) for x in (ra1, dec1, ra2, dec2))
    dl = l2 - l1
    sin_dl, cos_dl = np.sin(dl), np.cos(dl)
    sin_b1, cos_b1, sin_b2, cos_b2 = np.sin(b1), np.cos(b1), np.sin(b2), np.cos(b2)
    num1 = cos_b2 * sin_dl
    num2 = cos_b1 * sin_b2 - sin_b1 * cos_b2 * cos_dl
    denominator = sin_b1 * sin_b2 + cos_b1 * cos_b2 * cos_dl
    return np.degrees(np.arctan2(np.hypot(num1, num2), denominator)) * 3600.0


def nearest_within(
    ra: np.ndarray, dec: np.ndarray, loaded: LoadedCatalogue
) -> tuple[np.ndarray, np.ndarray]:
    """(catalogue row or -1, separation in arcsec or NaN) of the nearest entry in range.

    The KD-tree of the catalogue's unit vectors finds the candidates (the nearest one, or
    every one within the largest radius); separations are then computed on the sphere.
    """
    n = len(ra)
    row = np.full(n, -1, dtype=np.int64)
    sep = np.full(n, np.nan)
    ok = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
    if not ok.any() or len(loaded.frame) == 0:
        return row, sep
    positions = np.flatnonzero(ok)
    ra_ok, dec_ok = ra[ok], dec[ok]
    xyz = unit_vectors(ra_ok, dec_ok)
    catalogue = loaded.catalogue
    cat_ra = loaded.frame["ra"].to_numpy(float)
    cat_dec = loaded.frame["dec"].to_numpy(float)
    # a hair above the radius: the tree's chord bound must not cut a match at the limit
    bound = chord(catalogue.radius_arcsec) * (1.0 + 1e-9)
    if not catalogue.per_row_radius:
        _, idx = loaded.tree.query(xyz, k=1, distance_upper_bound=bound)
        found = idx < len(cat_ra)
        arcsec = np.full(len(idx), np.inf)
        arcsec[found] = separation_arcsec(
            ra_ok[found], dec_ok[found], cat_ra[idx[found]], cat_dec[idx[found]]
        )
        hit = arcsec <= catalogue.radius_arcsec
        row[positions[hit]] = idx[hit]
        sep[positions[hit]] = arcsec[hit]
        return row, sep
    # per-row radii: every entry within the cap, kept when inside the entry's own radius,
    # then the nearest per alert
    neighbours = loaded.tree.query_ball_point(xyz, r=bound)
    counts = np.fromiter((len(x) for x in neighbours), dtype=np.int64, count=len(neighbours))
    if counts.sum() == 0:
        return row, sep
    i_alert = np.repeat(np.arange(len(xyz)), counts)
    i_cat = np.concatenate([np.asarray(x, dtype=np.int64) for x in neighbours])
    arcsec = separation_arcsec(ra_ok[i_alert], dec_ok[i_alert], cat_ra[i_cat], cat_dec[i_cat])
    inside = arcsec <= loaded.frame["radius_arcsec"].to_numpy(float)[i_cat]
    i_alert, i_cat, arcsec = i_alert[inside], i_cat[inside], arcsec[inside]
    order = np.lexsort((arcsec, i_alert))  # by alert, then by separation
    first = np.ones(len(order), dtype=bool)
    first[1:] = i_alert[order][1:] != i_alert[order][:-1]
    best = order[first]
    row[positions[i_alert[best]]] = i_cat[best]
    sep[positions[i_alert[best]]] = arcsec[best]
    return row, sep


def _text(values: Iterable[object]) -> list[str | None]:
    out: list[str | None] = []
    for v in values:
        if isinstance(v, bytes):
            v = v.decode(errors="replace")
        text = None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
        out.append(text or None)
    return out


def match_catalogue(
    ra: np.ndarray, dec: np.ndarray, catalogue: Catalogue, index: pd.Index
) -> dict[str, pd.Series]:
    """The three output columns of one catalogue for these positions."""
    loaded = load(catalogue)
    row, sep = nearest_within(ra, dec, loaded)
    hit = row >= 0
    ids: list[str | None] = [None] * len(row)
    classes: list[str | None] = [None] * len(row)
    if hit.any():
        matched = loaded.frame.iloc[row[hit]]
        found_ids = _text(matched["id"])
        if any(i is None for i in found_ids):
            names = j_name(matched["ra"].to_numpy(float), matched["dec"].to_numpy(float))
            found_ids = [i if i is not None else n for i, n in zip(found_ids, names, strict=True)]
        for position, ident, cls in zip(
            np.flatnonzero(hit), found_ids, _text(matched["class"]), strict=True
        ):
            ids[position], classes[position] = ident, cls
    prefix = f"xm_{catalogue.name}"
    return {
        f"{prefix}_id": pd.Series(ids, index=index, dtype=object),
        f"{prefix}_class": pd.Series(classes, index=index, dtype=object),
        f"{prefix}_sep_arcsec": pd.Series(sep, index=index),
    }


def make_xmatch_module(
    catalogues: Sequence[Catalogue],
    *,
    name: str = "xmatch",
    version: str = VERSION,
    surveys: Iterable[str] | None = None,
) -> ScienceModule:
    """A cross-match module over ``catalogues`` (one output triple per catalogue)."""
    catalogues = tuple(catalogues)
    names = [c.name for c in catalogues]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate catalogue names in {names}")
    outputs = [spec for c in catalogues for spec in output_columns(c)]

    def xmatch(df: pd.DataFrame) -> pd.DataFrame:
        ra = pd.to_numeric(df["ra"], errors="coerce").to_numpy(float, na_value=np.nan)
        dec = pd.to_numeric(df["dec"], errors="coerce").to_numpy(float, na_value=np.nan)
        columns: dict[str, pd.Series] = {}
        for catalogue in catalogues:
            columns.update(match_catalogue(ra, dec, catalogue, df.index))
        return pd.DataFrame(columns, index=df.index)

    return science_module(
        name=name,
        version=version,
        inputs=["ra", "dec"],
        outputs=outputs,
        surveys=surveys,
        description=f"Nearest entry within a radius in local catalogues: {', '.join(names)}.",
    )(xmatch)


#: the built-in module over the default catalogues
xmatch = make_xmatch_module(_defaults())

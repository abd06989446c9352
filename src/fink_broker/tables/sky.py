"""The HEALPix index of the cone search: pixel of an alert, pixel ranges of a disc.

Alerts are indexed at order :data:`~fink_broker.tables.layout.CONE_ORDER` (nested), where
a pixel is 3.4 arcmin across: a 10 arcsec cone reads one to four pixels. A larger cone is
covered by coarser pixels, each a run of consecutive order-10 numbers in the nested scheme,
so a 5 degree cone costs a few dozen range scans, not millions of single-pixel ones.

>>> int(alert_pixels(np.array([0.0]), np.array([90.0]))[0]) in range(12 * 1024**2)
True
>>> disc_ranges(10.0, 20.0, 10.0)[0][1] - disc_ranges(10.0, 20.0, 10.0)[0][0] >= 1
True
"""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy_healpix import HEALPix, lonlat_to_healpix

from fink_broker.tables.layout import CONE_NSIDE, CONE_ORDER


def alert_pixels(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """Nested HEALPix pixels (order 10) of positions in degrees; -1 where unknown."""
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    known = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90.0)
    out = np.full(ra.shape, -1, dtype=np.int64)
    if known.any():
        out[known] = lonlat_to_healpix(
            ra[known] * u.deg, dec[known] * u.deg, CONE_NSIDE, order="nested"
        )
    return out


def scan_order(radius_arcsec: float) -> int:
    """HEALPix order at which to cover a disc: pixels about a quarter of the radius or
    larger, so any radius is covered by a few dozen pixels; never finer than the index.

    >>> scan_order(10.0), scan_order(3600.0), scan_order(18000.0)
    (10, 7, 5)
    """
    # a pixel of order k is about 211 000 arcsec / 2**k across
    order = int(np.floor(np.log2(4 * 211_000.0 / max(radius_arcsec, 1e-3))))
    return min(CONE_ORDER, max(0, order))


def disc_ranges(ra_deg: float, dec_deg: float, radius_arcsec: float) -> list[tuple[int, int]]:
    """Half-open ``[first, stop)`` runs of index pixels that cover a disc, ascending.

    The disc is covered at :func:`scan_order`; in the nested scheme a pixel of order ``k``
    holds the order-10 pixels ``[p * 4**(10-k), (p+1) * 4**(10-k))``, so each covering
    pixel is one run of index keys. Every pixel touched by the disc, even partly, is
    included: a scan returns a superset of the alerts inside, and the caller keeps those
    within the radius.
    """
    order = scan_order(radius_arcsec)
    grid = HEALPix(nside=2**order, order="nested")
    pixels = np.unique(
        grid.cone_search_lonlat(ra_deg * u.deg, dec_deg * u.deg, radius_arcsec * u.arcsec)
    )
    if pixels.size == 0:
        return []
    scale = 4 ** (CONE_ORDER - order)
    breaks = np.flatnonzero(np.diff(pixels) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [pixels.size]])
    return [
        (int(pixels[s]) * scale, (int(pixels[e - 1]) + 1) * scale)
        for s, e in zip(starts, ends, strict=True)
    ]

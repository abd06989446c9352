"""Gravitational-wave sky maps: the credible region of a HEALPix probability map.

A map is a FITS binary table, as LIGO/Virgo/KAGRA's BAYESTAR writes it: either one
probability per pixel of one resolution (column ``PROB``, ``ORDERING`` NESTED or RING in
the header) or a multi-order map (``UNIQ`` pixels of several resolutions and their
``PROBDENSITY`` per steradian). The credible region at level ``c`` is Fink's: the most
probable pixels whose cumulative probability, counted from the most probable, is at most
``c`` (pixels of zero probability never are). The event time is the header's
``MJD-OBS``, else its ``DATE-OBS``.

A region is a set of nested pixels per order. The archive's cone index is at order 10:
each region pixel of order ``k <= 10`` is one run of index keys, and one of order ``k > 10``
lies in the run of its order-10 parent; the alerts found are then kept only when their own
pixel at the region's order is in it, so the answer is exact at any resolution.
"""

from __future__ import annotations

import ast
import base64
import binascii
import gzip
import io
import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy_healpix import HEALPix, lonlat_to_healpix, uniq_to_level_ipix

from fink_broker.tables.layout import CONE_ORDER

#: cumulative sums carry rounding errors: a pixel whose level exceeds the threshold by
#: less than this relative amount is in (a map with exactly 0.9 in a region keeps it at 0.9)
LEVEL_TOLERANCE = 1e-9


class BadSkymap(ValueError):
    """The sky map cannot be read (not FITS, no probability column, too large)."""


@dataclass(frozen=True)
class Region:
    """A credible region: sorted nested pixel numbers per HEALPix order, and the event."""

    pixels: dict[int, np.ndarray]
    #: MJD (UTC) of the event
    event_mjd: float

    def index_ranges(self) -> list[tuple[int, int]]:
        """Half-open runs of order-10 index pixels that cover the region, merged."""
        runs = []
        for order, pixels in self.pixels.items():
            if order <= CONE_ORDER:
                scale = 4 ** (CONE_ORDER - order)
                runs += [(int(p) * scale, (int(p) + 1) * scale) for p in pixels]
            else:
                parents = np.unique(pixels // 4 ** (order - CONE_ORDER))
                runs += [(int(p), int(p) + 1) for p in parents]
        runs.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in runs:
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return merged

    def contains(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        """Whether each position lies in a region pixel."""
        inside = np.zeros(len(ra_deg), dtype=bool)
        known = np.isfinite(ra_deg) & np.isfinite(dec_deg)
        if not known.any():
            return inside
        for order, pixels in self.pixels.items():
            own = lonlat_to_healpix(
                ra_deg[known] * u.deg, dec_deg[known] * u.deg, 2**order, order="nested"
            )
            inside[known] |= np.isin(own, pixels)
        return inside


def decode_payload(text: str, max_bytes: int) -> bytes:
    """The FITS bytes of a ``bayestar`` parameter: base64, or Python bytes text
    (``str(open(f, "rb").read())``, what Fink's examples send), gunzipped when gzipped.
    Nothing is evaluated: bytes text is read by ``ast.literal_eval``, literals only."""
    stripped = text.strip()
    try:
        if stripped[:2] in ("b'", 'b"'):
            raw = ast.literal_eval(stripped)
            if not isinstance(raw, bytes):
                raise ValueError
        else:
            raw = base64.b64decode(stripped, validate=True)
    except (ValueError, SyntaxError, binascii.Error, MemoryError):
        raise BadSkymap("bayestar: neither base64 nor Python bytes text") from None
    if raw[:2] == b"\x1f\x8b":
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as unzipped:
            try:
                raw = unzipped.read(max_bytes + 1)
            except (OSError, EOFError):
                raise BadSkymap("bayestar: a damaged gzip stream") from None
        if len(raw) > max_bytes:
            raise BadSkymap(f"bayestar: more than {max_bytes} bytes once unzipped")
    return raw


def _event_mjd(header) -> float:
    from astropy.time import Time

    if "MJD-OBS" in header:
        return float(header["MJD-OBS"])
    if "DATE-OBS" in header:
        try:
            return float(Time(str(header["DATE-OBS"]), scale="utc").mjd)
        except ValueError:
            raise BadSkymap(f"DATE-OBS {header['DATE-OBS']!r} is not a date") from None
    raise BadSkymap("the map has neither MJD-OBS nor DATE-OBS: no event time")


def credible_region(fits_bytes: bytes, level: float) -> Region:
    """The credible region at ``level`` of a flat or multi-order HEALPix map."""
    from astropy.io import fits

    try:
        hdus = fits.open(io.BytesIO(fits_bytes))
        table = next(h for h in hdus if isinstance(h, fits.BinTableHDU))
    except (OSError, ValueError, StopIteration, TypeError):
        raise BadSkymap("bayestar: not a FITS file with a binary table") from None
    header, names = table.header, [n.upper() for n in table.columns.names]
    event = _event_mjd(header)
    if "UNIQ" in names and "PROBDENSITY" in names:
        uniq = np.asarray(table.data["UNIQ"], dtype=np.int64)
        if (uniq < 4).any():
            raise BadSkymap("bayestar: UNIQ pixel numbers start at 4")
        order, ipix = (np.asarray(a, dtype=np.int64) for a in uniq_to_level_ipix(uniq))
        area = 4 * math.pi / (12 * 4.0**order)
        prob = np.asarray(table.data["PROBDENSITY"], dtype=float) * area
    elif "PROB" in names:
        prob = np.asarray(table.data["PROB"], dtype=float).ravel()
        nside = round(math.sqrt(len(prob) / 12))
        if nside < 1 or 12 * nside * nside != len(prob) or nside & (nside - 1):
            raise BadSkymap(f"{len(prob)} pixels is not a HEALPix map")
        order = np.full(len(prob), int(math.log2(nside)), dtype=np.int64)
        ipix = np.arange(len(prob), dtype=np.int64)
        if str(header.get("ORDERING", "RING")).upper() != "NESTED":
            ipix = HEALPix(nside=nside, order="nested").ring_to_nested(ipix)
    else:
        raise BadSkymap("bayestar: no PROB column, nor UNIQ and PROBDENSITY")
    if not np.isfinite(prob).all() or (prob < 0).any():
        raise BadSkymap("bayestar: probabilities must be finite and non-negative")
    ranked = np.argsort(-prob, kind="stable")
    cumulative = np.cumsum(prob[ranked])
    inside = (cumulative <= level * (1 + LEVEL_TOLERANCE)) & (prob[ranked] > 0)
    chosen = ranked[inside]
    pixels = {int(o): np.sort(ipix[chosen][order[chosen] == o]) for o in np.unique(order[chosen])}
    return Region(pixels, event)

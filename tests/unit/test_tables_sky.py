"""The cone-search index: alert pixels and disc coverage, checked against astropy_healpix's
high-level class and astropy separations."""

from __future__ import annotations

import itertools

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy_healpix import HEALPix

from fink_broker.tables.layout import CONE_NSIDE
from fink_broker.tables.sky import alert_pixels, disc_ranges


def test_alert_pixels_match_astropy_healpix_and_mark_unknown_positions():
    rng = np.random.default_rng(1)
    ra, dec = rng.uniform(0, 360, 1000), np.degrees(np.arcsin(rng.uniform(-1, 1, 1000)))
    grid = HEALPix(nside=CONE_NSIDE, order="nested")
    expected = grid.lonlat_to_healpix(ra * u.deg, dec * u.deg)
    assert np.array_equal(alert_pixels(ra, dec), expected)
    odd = alert_pixels(np.array([np.nan, 10.0, 10.0]), np.array([0.0, np.nan, 95.0]))
    assert odd.tolist() == [-1, -1, -1]


@pytest.mark.parametrize(
    ("ra", "dec", "radius"),
    [
        (10.0, 20.0, 10.0),
        (359.99, -0.01, 60.0),
        (123.4, 89.99, 600.0),
        (45.0, -30.0, 3600.0),
        (200.0, 60.0, 18000.0),
    ],
)
def test_disc_ranges_cover_every_point_inside_the_disc(ra, dec, radius):
    rng = np.random.default_rng(2)
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    # points spread up to 1.5 radius, so some fall just inside and just outside the edge
    offsets = centre.directional_offset_by(
        rng.uniform(0, 360, 3000) * u.deg, rng.uniform(0, 1.5 * radius, 3000) * u.arcsec
    )
    inside = centre.separation(offsets).arcsec <= radius
    pixels = alert_pixels(offsets.ra.deg, offsets.dec.deg)
    ranges = disc_ranges(ra, dec, radius)
    covered = np.zeros(len(pixels), dtype=bool)
    for lo, hi in ranges:
        covered |= (pixels >= lo) & (pixels < hi)
    assert inside.sum() > 100
    assert covered[inside].all(), "a point inside the disc lies in no scanned pixel"
    assert all(lo < hi for lo, hi in ranges)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges)), "runs overlap"

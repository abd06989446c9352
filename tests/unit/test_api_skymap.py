"""Credible regions of HEALPix sky maps (flat NESTED or RING, multi-order UNIQ), read as
``/api/v1/skymap`` receives them; maps built here with known regions."""

from __future__ import annotations

import base64
import gzip
import io

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy_healpix import HEALPix, level_ipix_to_uniq

from fink_broker.api import skymap as S
from fink_broker.tables.layout import CONE_ORDER


def fits_of(columns: dict[str, np.ndarray], **header) -> bytes:
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name=n, format="D" if n != "UNIQ" else "K", array=a)
            for n, a in columns.items()
        ]
    )
    for key, value in header.items():
        table.header[key] = value
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    return buffer.getvalue()


def test_flat_nested_map_region_is_the_most_probable_pixels_up_to_the_level():
    nside, region = 8, np.array([3, 4, 5, 100])
    prob = np.full(12 * nside**2, 0.1 / (12 * nside**2 - 4))
    prob[region] = 0.9 / 4
    found = S.credible_region(
        fits_of({"PROB": prob}, ORDERING="NESTED", **{"MJD-OBS": 60000.5}), 0.9
    )
    assert found.event_mjd == 60000.5
    assert list(found.pixels) == [3] and list(found.pixels[3]) == list(region)
    assert (
        S.credible_region(fits_of({"PROB": prob}, ORDERING="NESTED", **{"MJD-OBS": 1.0}), 0.5)
        .pixels[3]
        .size
        == 2
    )


def test_ring_ordering_is_moved_to_nested():
    nside = 4
    grid = HEALPix(nside=nside, order="nested")
    ring = HEALPix(nside=nside, order="ring")
    prob = np.full(12 * nside**2, 0.4 / (12 * nside**2 - 1))
    prob[7] = 0.6  # ring pixel 7: alone in the 60 % region
    found = S.credible_region(
        fits_of({"PROB": prob}, ORDERING="RING", **{"DATE-OBS": "2020-01-01T00:00:00"}), 0.6
    )
    lon, lat = ring.healpix_to_lonlat([7])
    assert list(found.pixels[2]) == list(grid.lonlat_to_healpix(lon, lat))
    assert found.event_mjd == 58849.0


def test_multi_order_map_and_its_index_ranges_and_membership():
    # one coarse pixel (order 3) and two fine ones (order 12, finer than the index)
    levels = np.array([3, 12, 12, 1])
    ipix = np.array([10, 5_000_000, 5_000_001, 40])
    density = np.array([0.45, 0.0, 0.0, 0.01])
    area = 4 * np.pi / (12 * 4.0**levels)
    density[1:3] = 0.225 / area[1:3]
    density[0] = 0.45 / area[0]
    density[3] = 0.1 / area[3]
    uniq = level_ipix_to_uniq(levels, ipix)
    found = S.credible_region(
        fits_of({"UNIQ": uniq, "PROBDENSITY": density}, **{"MJD-OBS": 1.0}), 0.9
    )
    assert set(found.pixels) == {3, 12} and list(found.pixels[3]) == [10]
    ranges = found.index_ranges()
    scale = 4 ** (CONE_ORDER - 3)
    assert (10 * scale, 11 * scale) in ranges
    assert (5_000_000 // 4 ** (12 - CONE_ORDER), 5_000_000 // 4 ** (12 - CONE_ORDER) + 1) in ranges
    fine = HEALPix(nside=2**12, order="nested")
    lon, lat = fine.healpix_to_lonlat([5_000_000, 5_000_002])
    inside = found.contains(lon.to_value(u.deg), lat.to_value(u.deg))
    assert list(inside) == [True, False], "exact at the map's own resolution"


def test_payloads_as_finks_examples_send_them():
    raw = fits_of({"PROB": np.full(12, 1 / 12)}, ORDERING="NESTED", **{"MJD-OBS": 1.0})
    gzipped = gzip.compress(raw)
    for text in (str(gzipped), str(raw), base64.b64encode(gzipped).decode()):
        assert S.decode_payload(text, 10**6) == raw
    with pytest.raises(S.BadSkymap, match="unzipped"):
        S.decode_payload(base64.b64encode(gzip.compress(b"\0" * 10**6)).decode(), 1000)
    for text in ("__import__('os')", "b'\\x00' + b'1'", "not base64!"):
        with pytest.raises(S.BadSkymap):
            S.decode_payload(text, 10**6)


@pytest.mark.parametrize(
    ("columns", "header", "message"),
    [
        ({"PROB": np.ones(13)}, {"MJD-OBS": 1.0}, "HEALPix"),
        ({"PROB": -np.ones(12)}, {"MJD-OBS": 1.0}, "non-negative"),
        ({"X": np.ones(12)}, {"MJD-OBS": 1.0}, "PROB"),
        ({"PROB": np.ones(12) / 12}, {}, "event time"),
    ],
)
def test_unreadable_maps_say_why(columns, header, message):
    with pytest.raises(S.BadSkymap, match=message):
        S.credible_region(fits_of(columns, **header), 0.9)
    with pytest.raises(S.BadSkymap, match="FITS"):
        S.credible_region(b"SIMPLE  = nonsense", 0.9)

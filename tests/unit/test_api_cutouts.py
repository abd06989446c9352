"""Cutouts of real alerts as FITS, PNG and arrays."""

from __future__ import annotations

import io

import numpy as np
from astropy.io import fits
from PIL import Image

from fink_broker.api import cutouts
from fink_broker.surveys.base import iter_alert_files, read_alert_file


def test_ztf_and_rubin_stamps(datasim):
    ztf = read_alert_file(next(iter_alert_files(datasim / "ztf")))[0]
    rubin = read_alert_file(next(iter_alert_files(datasim / "rubin")))[0]
    for stamp in (ztf["cutoutScience"]["stampData"], rubin["cutoutDifference"]):
        data = fits.open(io.BytesIO(cutouts.fits_bytes(stamp)))
        image = next(h.data for h in data if h.data is not None)
        assert np.array_equal(cutouts.pixels(stamp), image.astype(float), equal_nan=True)
        png = Image.open(io.BytesIO(cutouts.png(stamp)))
        assert png.size == image.shape[::-1] and png.mode == "L"
        values = cutouts.array(stamp)
        assert len(values) == image.shape[0] and len(values[0]) == image.shape[1]
        finite = np.isfinite(image)
        assert np.allclose(np.array(values, dtype=float)[finite], image[finite])


def test_api_kinds_are_the_stored_ones():
    """The API's ``kind`` / ``cutout-kind`` values are the kinds the archive stores, and
    Fink's ``All``."""
    from typing import get_args

    from fink_broker.api.models import CutoutKind
    from fink_broker.tables.layout import CUTOUT_KINDS

    assert get_args(CutoutKind) == (*CUTOUT_KINDS, "All")

"""Image cutouts as the API serves them: FITS bytes, a PNG preview, or the pixel array.

ZTF sends each cutout as a gzipped FITS file and Rubin as a plain FITS file; both are
stored as sent, so the FITS answer is the survey's own file (gunzipped) with its header
and WCS. The PNG is a preview for people: ZScale limits (IRAF's, via astropy) and a
linear stretch, NaN pixels black.
"""

from __future__ import annotations

import gzip
import io

import numpy as np


def fits_bytes(stamp: bytes) -> bytes:
    """The FITS file of a stored cutout (gunzipped when the survey gzipped it)."""
    return gzip.decompress(stamp) if stamp[:2] == b"\x1f\x8b" else stamp


def pixels(stamp: bytes) -> np.ndarray:
    """The image of the first FITS HDU that has data, as float64."""
    from astropy.io import fits

    with fits.open(io.BytesIO(fits_bytes(stamp))) as hdus:
        for hdu in hdus:
            if hdu.data is not None:
                return np.asarray(hdu.data, dtype=np.float64)
    raise ValueError("the cutout holds no image")


def png(stamp: bytes) -> bytes:
    """A grey-scale PNG preview (ZScale limits, linear stretch)."""
    from astropy.visualization import ZScaleInterval
    from PIL import Image

    data = pixels(stamp)
    finite = np.isfinite(data)
    scaled = np.zeros(data.shape, dtype=np.uint8)
    if finite.any():
        low, high = ZScaleInterval().get_limits(data[finite])
        span = high - low if high > low else 1.0
        norm = np.clip((np.where(finite, data, low) - low) / span, 0.0, 1.0)
        scaled = (norm * 255.0).round().astype(np.uint8)
    # FITS rows run bottom-up, image rows top-down
    image = Image.fromarray(np.flipud(scaled), mode="L")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def array(stamp: bytes) -> list[list[float | None]]:
    """The pixel values as nested lists (rows), NaN as None, for JSON."""
    data = pixels(stamp)
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in data]

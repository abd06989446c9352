"""Image cutouts as the API serves them: FITS bytes, a PNG preview, or the pixel array.

ZTF sends each cutout as a gzipped FITS file and Rubin as a plain FITS file; both are
stored as sent, so the FITS answer is the survey's own file (gunzipped) with its header
and WCS. The PNG is a preview for people, drawn with Fink's options: a ``stretch``
(``sigmoid`` of the standardised pixels, Fink's default; or ``linear``, ``sqrt``,
``power``, ``log``, ``asinh`` between the ``pmin`` and ``pmax`` percentiles), an optional
``convolution_kernel`` (``gauss`` or ``box``, one pixel wide) and a matplotlib
``colormap`` (grey levels by default). NaN pixels are drawn as the lowest level.
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


class UnknownColormap(ValueError):
    """``colormap`` names no matplotlib colormap."""


def _sigmoid(data: np.ndarray) -> np.ndarray:
    std = data.std()
    z = (data - data.mean()) / (std if std > 0 else 1.0)
    return 1.0 / (1.0 + np.exp(-z))


def normalised(
    data: np.ndarray, stretch: str = "sigmoid", pmin: float = 0.5, pmax: float = 99.5
) -> np.ndarray:
    """Pixel values mapped to [0, 1] by ``stretch`` (NaN pixels at 0)."""
    from astropy import visualization as vis

    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape)
    filled = np.where(finite, data, np.nanmin(data))
    if stretch == "sigmoid":
        out = _sigmoid(filled)
    else:
        low, high = vis.AsymmetricPercentileInterval(pmin, pmax).get_limits(filled[finite])
        span = high - low if high > low else 1.0
        stretches = {
            "linear": vis.LinearStretch(),
            "sqrt": vis.SqrtStretch(),
            "power": vis.PowerStretch(2.0),
            "log": vis.LogStretch(),
            "asinh": vis.AsinhStretch(),
        }
        out = stretches[stretch](np.clip((filled - low) / span, 0.0, 1.0), clip=True)
    return np.where(finite, np.clip(out, 0.0, 1.0), 0.0)


def png(
    stamp: bytes,
    stretch: str = "sigmoid",
    colormap: str | None = None,
    pmin: float = 0.5,
    pmax: float = 99.5,
    kernel: str | None = None,
) -> bytes:
    """A PNG preview of a cutout, with Fink's drawing options (module docstring)."""
    from PIL import Image

    image = normalised(pixels(stamp), stretch, pmin, pmax)
    if kernel is not None:
        from astropy.convolution import Box2DKernel, Gaussian2DKernel, convolve

        shape = Gaussian2DKernel(1, x_size=5, y_size=5) if kernel == "gauss" else Box2DKernel(5)
        image = np.clip(convolve(image, shape, boundary="extend"), 0.0, 1.0)
    # FITS rows run bottom-up, image rows top-down
    image = np.flipud(image)
    if colormap is None:
        picture = Image.fromarray((image * 255.0).round().astype(np.uint8), mode="L")
    else:
        import matplotlib

        try:
            cmap = matplotlib.colormaps[colormap]
        except KeyError:
            raise UnknownColormap(f"{colormap!r} is not a matplotlib colormap") from None
        rgba = (cmap(image) * 255.0).round().astype(np.uint8)
        picture = Image.fromarray(rgba, mode="RGBA")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def array(stamp: bytes) -> list[list[float | None]]:
    """The pixel values as nested lists (rows), NaN as None, for JSON."""
    data = pixels(stamp)
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in data]

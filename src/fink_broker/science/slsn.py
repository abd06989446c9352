"""Fink's superluminous-supernova score of Rubin alerts (fink-science 7.4.0 ``rubin/slsn``).

A random forest (``SLSN_rainbow_no_MD.joblib``, scikit-learn 1.5.2, trained by E. Russeil
on ELAsTiCC without host metadata) reads 23 features of the light curve; it runs here in
onnxruntime from the ONNX file converted at set-up (:mod:`~fink_broker.science.
model_conversion`; the ONNX probabilities equal scikit-learn's within 1e-5, tested). The
features, as fink-science builds them (``transform_data`` and ``parametrise``):

* the light curve (``prvDiaSources`` plus the current ``diaSource``: the canonical
  ``hist_*``) scores when it has at least 7 points, all bands together; otherwise 0.0;
* times are shifted so that the brightest point is at 0, fluxes and errors divided by the
  brightest flux (``peak``);
* a Rainbow fit (Russeil et al. 2024: a linear-exponential bolometric light curve and a
  sigmoid temperature, light-curve's ``RainbowFit``, effective wavelengths u 3751, g 4742,
  r 6173, i 7502, z 8679, y 9711 Å, no baseline) gives 6 parameters and its reduced
  chi2; a fit that fails (``RuntimeError``) gives -9 for all 7;
* per band u, g, r, i, z, y: the standard deviation of the normalised flux and the mean
  signal-to-noise ratio (-1 for a band without points);
* the alert's ``ra`` and ``dec`` and the number of points; NaNs and infinities become 0
  (fink-science replaces NaN and +inf only; a -inf would make its forest raise).

Column ``slsn_score``: P(SLSN), the name Fink gives the score (ZTF's ``slsn_score``; its
Rubin pipeline called it ``rf_slsn_vs_nonslsn`` while it ran the module, and has since
disabled it). fink-science 7.4.0's own function cannot score anything: its feature
frame names ``dec``, ``std_y`` and ``mean_snr_y`` where the forest was fitted with
``decl``, ``std_Y`` and ``mean_snr_Y``, and scikit-learn 1.5.2 refuses the frame
(``ValueError: The feature names should match those that were passed during fit``); the
positions agree, so the forest is fed by position here.
"""

from __future__ import annotations

import functools
import logging
import warnings

import numpy as np
import pandas as pd

from fink_broker.plugins import ColumnSpec, science_module
from fink_broker.science import model_files
from fink_broker.surveys.names import RUBIN_NAME

log = logging.getLogger(__name__)

VERSION = "1.0"
#: fewest points (all bands) to score
MIN_POINTS = 7
#: Rainbow's bands and effective wavelengths (Å), in the forest's feature order
BAND_WAVELENGTHS = {"u": 3751, "g": 4742, "r": 6173, "i": 7502, "z": 8679, "y": 9711}
#: feature value of a failed fit
FAILED_FIT = -9.0
#: feature value of a band without points
NO_POINTS = -1.0


@functools.cache
def rainbow():  # type: ignore[no-untyped-def]
    """The Rainbow fitter (light-curve's pure-Python ``RainbowFit``), built once."""
    from light_curve.light_curve_py import RainbowFit
    from light_curve.light_curve_py import warnings as lc_warnings

    warnings.filterwarnings("ignore", category=lc_warnings.ExperimentalWarning)
    return RainbowFit.from_angstrom(
        BAND_WAVELENGTHS, with_baseline=False, temperature="sigmoid", bolometric="linexp"
    )


def features(
    t: np.ndarray, flux: np.ndarray, err: np.ndarray, band: np.ndarray, ra: float, dec: float
) -> np.ndarray:
    """The forest's 23 features of one light curve of at least :data:`MIN_POINTS` points."""
    peak = flux.max()
    brightest = int(np.argmax(flux))
    t = t - t[brightest]
    flux, err = flux / peak, err / peak
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = flux / err
        try:
            fit = np.asarray(rainbow()._eval(t=t, m=flux, sigma=err, band=band), dtype=float)
        except RuntimeError as why:
            log.debug("slsn: Rainbow fit failed: %s", why)
            fit = np.full(7, FAILED_FIT)
    per_band = []
    for name in BAND_WAVELENGTHS:
        pick = band == name
        per_band += (
            [np.std(flux[pick]), np.mean(snr[pick])] if pick.any() else [NO_POINTS, NO_POINTS]
        )
    row = np.array([peak, *fit, *per_band, ra, dec, len(t)], dtype=np.float64)
    row[~np.isfinite(row)] = 0.0
    return row


def probabilities(x: np.ndarray) -> np.ndarray:
    """P(SLSN) of each feature row of ``x`` (the converted forest)."""
    session = model_files.session(model_files.converted(model_files.SLSN_ONNX))
    name = session.get_inputs()[0].name
    _, probs = session.run(None, {name: x.astype(np.float32)})
    return np.asarray(probs, dtype=np.float64)[:, 1]


@science_module(
    name="slsn",
    version=VERSION,
    inputs=["hist_mjd", "hist_band", "hist_flux", "hist_fluxerr", "ra", "dec"],
    outputs=[
        ColumnSpec("slsn_score", "double", "", "Fink's SLSN random forest P(SLSN); 0 = not scored")
    ],
    surveys=[RUBIN_NAME],
)
def slsn(df: pd.DataFrame) -> pd.DataFrame:
    """Fink's SLSN score of Rubin alerts (Rainbow features, fink-science 7.4.0's forest)."""
    rows, x = [], []
    columns = [df[c].to_numpy(dtype=object) for c in ("hist_mjd", "hist_flux", "hist_fluxerr")]
    bands = df["hist_band"].to_numpy(dtype=object)
    ras, decs = df["ra"].to_numpy(dtype=float), df["dec"].to_numpy(dtype=float)
    for i, (t, f, e, b) in enumerate(zip(*columns, bands, strict=True)):
        if t is None or f is None or e is None or b is None or len(t) < MIN_POINTS:
            continue
        t, f, e = (np.asarray(v, dtype=np.float64) for v in (t, f, e))
        rows.append(i)
        x.append(features(t, f, e, np.asarray(b, dtype=object), ras[i], decs[i]))
    score = np.zeros(len(df))
    if rows:
        score[rows] = probabilities(np.vstack(x))
    log.debug("slsn: %d of %d alerts scored", len(rows), len(df))
    return pd.DataFrame({"slsn_score": score}, index=df.index)

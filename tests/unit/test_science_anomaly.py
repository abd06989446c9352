"""Fink's anomaly scores and the Rubin SLSN forest against fink-science 7.4.0's own code.

The reference (``tests/fixtures/fink_science_reference.json``, made by
``scripts/reference/make_fixture.py`` in its pandas 1.5 side environment) holds, for the
50 real ZTF alerts of ../shared/datasim, fink-science's ``extract_features_ad`` features
and ``anomaly_score`` for every model of the wheel; for a PLAsTiCC sample, the SLSN
features and the original scikit-learn forest's probabilities. The broker's modules build
the inputs themselves, so both the features and the scores are compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fink_broker.science import anomaly, slsn
from tests.classifier_reference import by_id


@pytest.fixture(scope="module")
def ztf_anomaly(reference) -> dict:
    return reference["ztf_anomaly"]


def test_features_equal_fink_science_on_real_alerts(ztf_anomaly, datasim_frames):
    names = ztf_anomaly["feature_names"]
    assert names == list(anomaly.extractor().names)
    frame = datasim_frames["ztf"].set_index(datasim_frames["ztf"]["alertId"].astype(str))
    alerts = frame.loc[ztf_anomaly["candid"]]
    columns = {
        f: anomaly.concatenated(alerts[f"prv_candidates.{f}"], alerts[f"candidate.{f}"])
        for f in anomaly.FIELDS
    }
    dc = 0
    for i, expected in enumerate(ztf_anomaly["lc_features"]):
        ours = anomaly.band_features(*(columns[f].iloc[i] for f in anomaly.FIELDS))
        assert sorted(ours) == sorted(int(b) for b in expected)
        for band, values in expected.items():
            np.testing.assert_allclose(ours[int(band)], values, rtol=1e-9, atol=1e-12)
        distnr = np.asarray(columns["distnr"].iloc[i], dtype=float)
        mags = np.asarray(columns["magpsf"].iloc[i], dtype=float)
        dc += bool(((distnr <= anomaly.SOURCE_BEHIND_PIXELS) & np.isfinite(mags)).any())
    # both paths of the feature extraction are exercised by these alerts
    assert 5 <= dc <= len(ztf_anomaly["lc_features"]) - 5


@pytest.mark.parametrize("column", list(anomaly.MODELS))
def test_scores_equal_fink_science_on_real_alerts(ztf_anomaly, datasim_frames, column):
    expected = np.array(ztf_anomaly[f"anomaly_score{anomaly.MODELS[column]}"])
    ours = by_id(datasim_frames["ztf"], ztf_anomaly["candid"], column)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)
    # every real alert has both bands; the scores are close but differ alert by alert
    assert (expected != 0).all() and len(np.unique(np.round(expected, 6))) >= 10


def test_unscored_alerts_are_those_without_two_bands(ztf_anomaly, datasim_frames):
    ours = by_id(datasim_frames["ztf"], ztf_anomaly["candid"], "anomaly_score")
    both = np.array([len(f) == 2 for f in ztf_anomaly["lc_features"]])
    assert ((ours == 0) == ~both).all()


def test_a_single_band_light_curve_is_not_scored():
    one_band = anomaly.band_features(
        np.arange(5.0), np.ones(5), 18 + 0.1 * np.arange(5), np.full(5, 0.05),
        np.full(5, 10.0), np.full(5, np.nan), np.full(5, np.nan), np.array(["t"] * 5),
    )  # fmt: skip
    assert sorted(one_band) == [1]
    assert anomaly.scores([one_band])["anomaly_score"].tolist() == [0.0]


def test_dc_magnitudes_add_or_subtract_the_difference_flux():
    mag, err = anomaly.dc_magnitudes(
        np.array([20.0, 20.0]), np.array([0.1, 0.1]), np.array([20.0, 20.0]),
        np.array([0.0, 0.0]), np.array([True, False]),
    )  # fmt: skip
    # twice the reference flux is 0.753 mag brighter; reference minus itself is no flux
    assert mag[0] == pytest.approx(20.0 - 2.5 * np.log10(2.0))
    assert err[0] == pytest.approx(0.05)  # the difference error over twice the flux
    assert np.isposinf(mag[1])


# ---------------------------------------------------------------------------------------
# SLSN (Rubin)


def test_slsn_onnx_gives_the_forest_probabilities(reference):
    ref = reference["slsn_plasticc"]
    x = np.array(ref["features"])
    assert x.shape[1] == 23 and len(x) >= 40
    np.testing.assert_allclose(slsn.probabilities(x), ref["probabilities"], rtol=0, atol=1e-5)


def test_slsn_on_real_alerts_is_zero_under_seven_points(reference, datasim_frames):
    ref = reference["slsn_datasim"]
    frame = datasim_frames["rubin"]
    ours = by_id(frame, ref["diaSourceId"], "slsn_score")
    np.testing.assert_array_equal(ours, ref["slsn_score"])
    # the 2025 alerts have at most two points: fink-science scores none of them either
    points = frame["hist_mjd"].map(len)
    assert (points < slsn.MIN_POINTS).all() and (ours == 0).all()


def test_slsn_features_of_a_light_curve():
    t = np.arange(8.0)
    flux = np.array([1.0, 2.0, 4.0, 8.0, 6.0, 4.0, 3.0, 2.0]) * 1e4
    band = np.array(["g", "r"] * 4, dtype=object)
    row = slsn.features(t, flux, flux / 20, band, 150.0, -30.0)
    assert row[0] == 8e4 and row[-3:].tolist() == [150.0, -30.0, 8.0]
    # u has no point: -1 for its std and mean SNR; g's normalised fluxes have snr 20
    assert row[8:10].tolist() == [-1.0, -1.0]
    assert row[11] == pytest.approx(20.0)
    assert np.isfinite(row).all()


def test_slsn_module_scores_only_long_enough_light_curves(reference, plasticc):
    ids = reference["slsn_plasticc"]["object_id"][:2]
    long = [plasticc[i] for i in ids]
    frame = pd.DataFrame(
        {
            "hist_mjd": [lc.mjd for lc in long] + [np.arange(6.0)],
            "hist_band": [lc.band for lc in long] + [np.array(["g"] * 6, dtype=object)],
            "hist_flux": [lc.flux for lc in long] + [np.ones(6)],
            "hist_fluxerr": [lc.fluxerr for lc in long] + [np.ones(6)],
            "ra": [lc.ra for lc in long] + [0.0],
            "dec": [lc.dec for lc in long] + [0.0],
        },
        index=[7, 3, 9],
    )
    out = slsn.slsn(frame)
    assert out.index.tolist() == [7, 3, 9]
    assert (out["slsn_score"].iloc[:2] > 0).all() and out["slsn_score"].iloc[2] == 0.0

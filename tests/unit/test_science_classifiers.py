"""Fink's classifiers (SuperNNova, CATS, SLSN) against fink-science's own functions and models.

``tests/fixtures/fink_science_reference.json`` holds what fink-science 7.4.0's functions
give with the original torch and Keras models, on the real alerts of ../shared/datasim and
on a PLAsTiCC sample (made by ``scripts/reference/make_fixture.py`` in the side
environment those models need). Here the broker's modules (its own input formatting, the
models converted to ONNX at set-up, onnxruntime) must give the same numbers:

* the network alone: the ONNX graph on SuperNNova's and CATS's own input tensors gives the
  original's probabilities within 1e-5;
* the module: scores equal fink-science's within 1e-6 (SuperNNova) and 1e-5 (CATS, whose
  two float32 bidirectional LSTMs differ between Keras' and onnxruntime's kernels by up
  to 5e-6 on the same input).

Then each classifier's ROC AUC on the labelled PLAsTiCC sample must stay above a floor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from benchmarks import classifier_auc as auc

from fink_broker.science import cats as cats_module
from fink_broker.science import model_files
from fink_broker.science import slsn as slsn_module
from fink_broker.science import supernnova as snn
from tests import plasticc_sample
from tests.classifier_reference import by_id as _by_id

# ---------------------------------------------------------------------------------------
# The networks alone


@pytest.mark.parametrize("model", ["snn_snia_vs_nonia", "elasticc_binary_broad/SN_vs_other"])
def test_snn_onnx_gives_the_torch_probabilities(reference, model):
    rows = reference["snn_tensors"][model]
    assert len(rows) >= 20
    session = model_files.session(model_files.converted(f"snn/{model}.onnx"))
    for row in rows:
        x = np.asarray(row["x"], dtype=np.float32)[:, None, :]
        (probs,) = session.run(None, {"x": x, "lengths": np.array([len(x)], dtype=np.int32)})
        np.testing.assert_allclose(probs[0], row["probabilities"], rtol=0, atol=1e-5)


def test_snn_onnx_handles_a_padded_batch(reference):
    # several light curves of different lengths in one call: padding must not leak in
    rows = reference["snn_tensors"]["snn_snia_vs_nonia"]
    x, lengths = snn.pad([np.asarray(r["x"], dtype=np.float32) for r in rows], 8)
    session = model_files.session(model_files.converted("snn/snn_snia_vs_nonia.onnx"))
    (probs,) = session.run(None, {"x": x, "lengths": lengths})
    expected = np.array([r["probabilities"] for r in rows])
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-5)
    assert len(set(lengths.tolist())) > 1


def test_cats_onnx_gives_the_keras_probabilities(reference):
    rows = reference["cats"]
    assert len(rows) >= 20
    for row in rows:
        x = np.full((1, cats_module.MAX_EPOCHS, 4), cats_module.PAD_VALUE, dtype=np.float32)
        x[0, :, 3] = 0.0
        given = np.asarray(row["x"], dtype=np.float32)
        x[0, : len(given)] = given
        probs = cats_module.probabilities(x)[0]
        np.testing.assert_allclose(probs, row["probabilities"], rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------
# The modules on real alerts


def test_ztf_scores_equal_fink_science_on_real_alerts(reference, datasim_frames):
    ref = reference["ztf_datasim"]
    frame = datasim_frames["ztf"]
    # the SSO flag the cuts read is Fink's roid, alert by alert
    np.testing.assert_array_equal(_by_id(frame, ref["candid"], "sso_flag"), ref["roid"])
    # fink-science was given cdsxmatch = "Unknown": compare where the local stand-in agrees
    eligible = frame.set_index(frame["alertId"].astype(str)).loc[ref["candid"]]
    assert snn.extragalactic_candidate(eligible).all()
    for column in ("snn_snia_vs_nonia", "snn_sn_vs_all"):
        ours = _by_id(frame, ref["candid"], column)
        np.testing.assert_allclose(ours, ref[column], rtol=0, atol=1e-6)


def test_rubin_scores_equal_fink_science_on_real_alerts(reference, datasim_frames):
    ref = reference["rubin_datasim"]
    frame = datasim_frames["rubin"]
    ours = _by_id(frame, ref["diaSourceId"], "snnSnVsOthers_score")
    np.testing.assert_allclose(ours, ref["snnSnVsOthers_score"], rtol=0, atol=1e-6)
    assert np.ptp(ours) > 0.01, "the scores should differ between alerts"
    probs = np.array(ref["cats_probabilities"])
    classes = _by_id(frame, ref["diaSourceId"], "cats_class")
    scores = _by_id(frame, ref["diaSourceId"], "cats_score")
    n_points = frame.set_index(frame["alertId"].astype(str)).loc[ref["diaSourceId"], "hist_mjd"]
    classified = np.array([len(h) >= 2 for h in n_points])
    # the 2025 sample is young: one alert has two epochs, so the network is also checked
    # on every alert, one epoch included (fink-science's function has no cut of its own)
    assert classified.sum() >= 1
    alerts = frame.set_index(frame["alertId"].astype(str)).loc[ref["diaSourceId"]]
    x = cats_module.network_input(
        *(list(alerts[c].map(np.asarray)) for c in ("hist_mjd", "hist_flux", "hist_fluxerr")),
        list(alerts["hist_band"].map(np.asarray)),
    )
    np.testing.assert_allclose(cats_module.probabilities(x), probs, rtol=0, atol=1e-5)
    expected = np.asarray(cats_module.CLASS_CODES)[probs.argmax(axis=1)]
    np.testing.assert_array_equal(classes[classified], expected[classified])
    np.testing.assert_allclose(scores[classified], probs.max(axis=1)[classified], atol=1e-5)
    assert (classes[~classified] == -1).all() and (scores[~classified] == 0).all()


# ---------------------------------------------------------------------------------------
# The modules on labelled light curves


@pytest.fixture(scope="module")
def labelled_scores(reference, plasticc) -> dict[str, pd.DataFrame]:
    """The benchmark's scores on the light curves of the reference fixture."""
    curves = [plasticc[i] for i in reference["rubin_plasticc"]["object_id"]]
    ztf = [plasticc[i].bands(("g", "r")) for i in reference["ztf_plasticc"]["object_id"]]
    slsn = [plasticc[i] for i in reference["slsn_plasticc"]["object_id"]]
    # the benchmark chooses the same light curves as the fixture script
    assert [lc.object_id for lc in auc.ztf_curves(curves)] == [lc.object_id for lc in ztf]
    assert [lc.object_id for lc in plasticc_sample.slsn_sample()] == [lc.object_id for lc in slsn]
    return auc.labelled_scores(ztf, curves, slsn)


def test_scores_equal_fink_science_on_plasticc(reference, labelled_scores):
    for column in ("snn_snia_vs_nonia", "snn_sn_vs_all"):
        np.testing.assert_allclose(
            labelled_scores["ztf"][column], reference["ztf_plasticc"][column], rtol=0, atol=1e-6
        )
    ref = reference["rubin_plasticc"]
    rubin = labelled_scores["rubin"]
    np.testing.assert_allclose(
        rubin["snnSnVsOthers_score"], ref["snnSnVsOthers_score"], rtol=0, atol=1e-6
    )
    probs = np.array(ref["cats_probabilities"])
    np.testing.assert_allclose(rubin["cats_score"], probs.max(axis=1), rtol=0, atol=1e-5)
    np.testing.assert_allclose(rubin["cats_sn_like"], probs[:, 0], rtol=0, atol=1e-5)
    ref = reference["slsn_plasticc"]
    scores = labelled_scores["slsn"]["slsn_score"].to_numpy()
    assert (scores > 0).sum() >= 40, "most of the sample has the 7 points the forest needs"
    # the scores of the curves whose Rainbow fit lands where fink-science's did are equal;
    # on the others Migrad ends in another minimum (see test_slsn_features_and_forest)
    agree = np.abs(scores - np.asarray(ref["slsn_score"])) <= 1e-6
    assert agree.sum() >= len(scores) * 2 // 3, f"{agree.sum()} of {len(scores)} scores equal"


#: the forest's feature columns that come from the Rainbow fit (the 6 parameters and the
#: reduced chi2); the others are sums, ratios and counts of the light curve
RAINBOW_FEATURES = slice(1, 8)


def test_slsn_features_and_forest(reference, plasticc):
    """SLSN, part by part against fink-science 7.4.0's own (its frame renamed, see
    science/slsn.py): the converted forest on fink-science's features gives its scores; every
    feature outside the Rainbow fit is equal; the fit's 7 agree within 2% on most curves.

    The fit is Migrad on a 7-parameter model, and on some curves its end point moves with
    the build of the numerical stack: on 2026-12-07 a fresh set-up fitted 48 of the 66
    curves within 2% of the fixture and the others into other minima, and a fresh side
    environment with the reference's own pins (numpy 1.26.4, scipy 1.13.1, light-curve
    0.13.3, iminuit 2.33.0) did not reproduce the fixture's fits of those either. So the fit
    is held to a majority, and the ranking to the ROC AUC floor below.
    """
    ref = reference["slsn_plasticc"]
    expected = np.asarray(ref["features"], dtype=np.float64)
    scored = np.asarray(ref["slsn_score"]) > 0
    np.testing.assert_allclose(
        slsn_module.probabilities(expected), np.asarray(ref["slsn_score"])[scored], atol=1e-5
    )
    frame = auc.rubin_frame([plasticc[i] for i in ref["object_id"]])
    got = np.array(
        [
            slsn_module.features(
                *(
                    np.asarray(r[c], dtype=np.float64)
                    for c in ("hist_mjd", "hist_flux", "hist_fluxerr")
                ),
                np.asarray(r["hist_band"], dtype=object),
                r["ra"],
                r["dec"],
            )
            for _, r in frame.iterrows()
            if len(r["hist_mjd"]) >= slsn_module.MIN_POINTS
        ]
    )
    assert got.shape == expected.shape
    outside = np.ones(got.shape[1], dtype=bool)
    outside[RAINBOW_FEATURES] = False
    np.testing.assert_allclose(got[:, outside], expected[:, outside], rtol=1e-9, atol=1e-12)
    fit, fit_ref = got[:, RAINBOW_FEATURES], expected[:, RAINBOW_FEATURES]
    close = (np.abs(fit - fit_ref) <= 0.02 * np.maximum(np.abs(fit_ref), 1e-3)).all(axis=1)
    assert close.sum() >= len(close) * 2 // 3, f"{close.sum()} of {len(close)} fits agree"


#: floors ~0.05 under the ROC AUC measured on these samples (printed by
#: benchmarks/classifier_auc.py: 0.553, 0.857, 0.740, 0.960, 0.881; the SLSN sample has 15
#: SLSN only, so its floor leaves more room). The ZTF SN Ia model sees LSST-cadence g/r
#: light curves here, far from its ZTF training set: 0.55 says it ranks PLAsTiCC SN Ia
#: barely above other supernovae.
AUC_FLOORS = {
    "snn_snia_vs_nonia": 0.50,
    "snn_sn_vs_all": 0.80,
    "snnSnVsOthers_score": 0.69,
    "cats_sn_like": 0.91,
    "slsn_score": 0.80,
}


@pytest.mark.parametrize("classifier", auc.CLASSIFIERS, ids=lambda c: c.column)
def test_roc_auc_above_floor(labelled_scores, classifier):
    value, npos, nneg = classifier.auc(labelled_scores)
    assert npos >= 10 and nneg >= 10
    floor = AUC_FLOORS[classifier.column]
    assert value >= floor, f"{classifier.column}: ROC AUC {value:.3f} under {floor}"


def test_roc_auc_helper():
    assert auc.roc_auc(np.array([0.9, 0.8, 0.1]), np.array([True, True, False])) == 1.0
    assert auc.roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5
    assert auc.roc_auc(np.array([0.1, 0.9]), np.array([True, False])) == 0.0

"""finkclass: each of Fink's rules on hand-made frames, in Fink's order, and the real alerts.

The expectations are written from fink-filters 7.45's ``extract_fink_classification``
(the order of its masks and its thresholds as literal numbers), not from the module.
"""

from __future__ import annotations

import pandas as pd
import pytest

from fink_broker.plugins import discover, modules_for, run_filter, run_module
from fink_broker.science.classification import CLASS_LABELS, RULES, finkclass_rubin, finkclass_ztf
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from tests.science_frames import enriched_frame

XM = ("hip", "vsx", "gcvs", "3hsp", "4lac")
#: a young, real, extragalactic ZTF alert with both SuperNNova scores high
SN = {
    "mjd": 59000.0,
    "ndethist": 3,
    "sso_flag": 0,
    "snn_snia_vs_nonia": 0.8,
    "snn_sn_vs_all": 0.9,
    "candidate.jdstarthist": 2459000.5 - 10.0,
    "candidate.drb": 0.99,
    "candidate.classtar": 0.98,
}


def ztf(**values) -> str:
    row = {**SN, **{f"xm_{c}_id": None for c in XM}, **values}
    return run_module(finkclass_ztf, pd.DataFrame([row]))["finkclass"].iloc[0]


@pytest.mark.parametrize(
    ("values", "label"),
    [
        ({}, "SN candidate"),
        ({"snn_snia_vs_nonia": 0.1}, "SN candidate"),  # either score
        ({"snn_snia_vs_nonia": 0.5, "snn_sn_vs_all": 0.5}, "Unknown"),  # strictly above
        ({"candidate.jdstarthist": 2459000.5 - 90.5}, "Unknown"),  # older than 90 days
        ({"candidate.drb": 0.5}, "Unknown"),
        ({"candidate.classtar": 0.4}, "Unknown"),
        ({"ndethist": 1}, "Unknown"),
        ({"sso_flag": 3}, "Solar System MPC"),
        ({"sso_flag": 2}, "Ambiguous"),  # SN candidate and Fink SSO candidate
        ({"sso_flag": 2, "snn_sn_vs_all": 0.0, "snn_snia_vs_nonia": 0.0}, "Solar System candidate"),
        ({"xm_vsx_id": "V1"}, "Variable star"),  # not extragalactic, then catalogued
        ({"xm_4lac_id": "4FGL J0"}, "Blazar"),
        ({"xm_hip_id": "HIP 1", "xm_vsx_id": "V1"}, "Bright star"),
        ({"sso_flag": 3, "xm_gcvs_id": "RR Lyr"}, "Variable star"),  # SIMBAD's place: last
        ({"snn_sn_vs_all": None, "snn_snia_vs_nonia": None}, "Unknown"),
    ],
)
def test_ztf_rules(values, label):
    assert ztf(**values) == label


def test_rubin_needs_both_classifiers():
    rows = pd.DataFrame(
        {
            "sso_flag": [0, 0, 0, 3],
            "snnSnVsOthers_score": [0.9, 0.9, 0.3, 0.9],
            "cats_class": [11, 21, 11, 11],
            **{f"xm_{c}_id": [None] * 4 for c in XM},
        }
    )
    labels = run_module(finkclass_rubin, rows)["finkclass"].tolist()
    assert labels == ["SN candidate", "Unknown", "Unknown", "Solar System MPC"]


def test_labels_are_a_closed_vocabulary_without_key_separators():
    assert tuple(label for label, _ in RULES) == CLASS_LABELS
    assert len(set(CLASS_LABELS)) == len(CLASS_LABELS)
    assert not any("_" in label for label in CLASS_LABELS)
    # the host associations are not classes any more (novae in M31 are not "NGC/IC object")
    assert "NGC/IC object" not in CLASS_LABELS


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_real_alerts_and_the_sn_topic(datasim, survey):
    records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)]
    frame = enriched_frame(records, survey, modules_for(survey))
    labels = frame["finkclass"]
    assert set(labels) <= set(CLASS_LABELS)
    assert labels.nunique() > 1
    sso = pd.to_numeric(frame["sso_flag"])
    assert (labels[sso == 3].isin(["Solar System MPC", "Variable star", "Bright star"])).all()
    selected = run_filter(discover_filter("sn_candidates"), frame)
    assert selected.tolist() == (labels == "SN candidate").tolist()


def discover_filter(name: str):
    from fink_broker.plugins import discover_filters

    return discover_filters()[name]


def test_modules_are_discovered():
    modules = discover()
    assert {"finkclass_ztf", "finkclass_rubin", "snn_ztf", "snn_rubin", "cats"} <= set(modules)

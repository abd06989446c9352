"""classification: each rule on hand-made frames, and the real alerts labelled as an
independent reading of the rules says they should be."""

from __future__ import annotations

import pandas as pd
import pytest

from fink_broker.plugins import run_module
from fink_broker.science.classification import CLASS_LABELS, RULES, classification
from fink_broker.science.solar_system import solar_system
from fink_broker.science.xmatch import xmatch
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from fink_broker.surveys.fields import canonical_frame

XM = ("hip", "vsx", "gcvs", "3hsp", "4lac", "ongc", "mangrove")


def frame(**values) -> pd.DataFrame:
    """One alert with no association, then ``values`` set."""
    row = {"sso_flag": 0, **{f"xm_{c}_id": None for c in XM}, **values}
    return pd.DataFrame([row])


@pytest.mark.parametrize(
    ("values", "label"),
    [
        ({}, "Unknown"),
        ({"sso_flag": 1}, "Unknown"),
        ({"sso_flag": 3, "xm_vsx_id": "V1"}, "Solar System MPC"),
        ({"sso_flag": 2}, "Solar System candidate"),
        ({"xm_hip_id": "HIP 1", "xm_vsx_id": "V1"}, "Bright star"),
        ({"xm_gcvs_id": "RR Lyr"}, "Variable star"),
        ({"xm_vsx_id": "V1", "xm_4lac_id": "4FGL"}, "Variable star"),
        ({"xm_3hsp_id": "3HSP J0"}, "Blazar"),
        ({"xm_ongc_id": "NGC 1", "xm_mangrove_id": "G1"}, "NGC/IC object"),
        ({"xm_mangrove_id": "G1"}, "Galaxy host candidate"),
    ],
)
def test_rules(values, label):
    assert run_module(classification, frame(**values))["fink_class"].tolist() == [label]


def test_labels_are_a_closed_vocabulary_without_key_separators():
    assert tuple(label for label, _ in RULES) == CLASS_LABELS
    assert len(set(CLASS_LABELS)) == len(CLASS_LABELS)
    assert not any("_" in label for label in CLASS_LABELS)


def expected_label(row: pd.Series) -> str:
    """The rules of the module docstring, read independently, one alert at a time."""
    if row["sso_flag"] == 3:
        return "Solar System MPC"
    if row["sso_flag"] == 2:
        return "Solar System candidate"
    for names, label in (
        (("hip",), "Bright star"),
        (("vsx", "gcvs"), "Variable star"),
        (("3hsp", "4lac"), "Blazar"),
        (("ongc",), "NGC/IC object"),
        (("mangrove",), "Galaxy host candidate"),
    ):
        if any(isinstance(row[f"xm_{n}_id"], str) for n in names):
            return label
    return "Unknown"


@pytest.mark.parametrize("survey", ["ztf", "rubin"])
def test_real_alerts(datasim, survey):
    records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)]
    canon = canonical_frame(records, survey)
    inputs = pd.concat(
        [
            run_module(solar_system, canon[list(solar_system.inputs)]),
            run_module(xmatch, canon[list(xmatch.inputs)]),
        ],
        axis=1,
    )
    labels = run_module(classification, inputs[list(classification.inputs)])["fink_class"]
    assert labels.tolist() == [expected_label(row) for _, row in inputs.iterrows()]
    assert set(labels) <= set(CLASS_LABELS)
    # the sample holds known asteroids (Rubin) or catalogued sources: more than one label
    assert labels.nunique() > 1

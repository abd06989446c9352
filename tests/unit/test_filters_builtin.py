"""Built-in filters on hand-made alerts: each rule, its boundary and its null handling."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fink_broker.filters import bright_transients as bright_mod
from fink_broker.filters import new_transients as new_mod
from fink_broker.filters import variable_star_brightening as vsb_mod
from fink_broker.filters.bright_transients import bright_transients
from fink_broker.filters.new_transients import new_transients
from fink_broker.filters.sso_candidates import sso_candidates
from fink_broker.filters.variable_star_brightening import variable_star_brightening
from fink_broker.plugins import run_filter

NOW = 60000.0
CATALOGUES = ("vsx", "gcvs", "mangrove", "3hsp", "4lac", "ongc", "hip")


def flux_of(mag: float) -> float:
    """nJy of an AB magnitude (the canonical zero point, 31.4)."""
    return 10 ** (-0.4 * (mag - 31.4))


def alert(**values: Any) -> dict[str, Any]:
    """A first-detection r-band alert at 17 mag, no counterpart, not an SSO; then overrides."""
    row: dict[str, Any] = {
        "mjd": NOW,
        "band": "r",
        "mag": 17.0,
        "flux": flux_of(17.0),
        "ndethist": 1,
        "hist_mjd": np.array([NOW]),
        "hist_band": np.array(["r"], dtype=object),
        "hist_mag": np.array([17.0]),
        "hist_magerr": np.array([0.05]),
        "hist_flux": np.array([flux_of(17.0)]),
        "sso_flag": 1,
    }
    row.update({f"xm_{c}_id": None for c in CATALOGUES})
    row.update(values)
    return row


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as the engine hands them over: nullable ints, a non-default index."""
    df = pd.DataFrame(rows)
    for column in ("ndethist", "sso_flag"):
        df[column] = pd.array(
            [
                None if v is None or (isinstance(v, float) and math.isnan(v)) else v
                for v in df[column]
            ],
            dtype="Int32",
        )
    df.index = pd.Index(range(100, 100 + len(df)))
    return df


def select(f, rows: list[dict[str, Any]]) -> list[bool]:
    mask = run_filter(f, frame(rows))
    assert mask.dtype == bool
    return mask.tolist()


# ---------------------------------------------------------------------------------------
# sso_candidates


def test_sso_candidates_selects_known_objects_and_fink_candidates():
    flags = [0, 1, 2, 3, None]
    assert select(sso_candidates, [alert(sso_flag=f) for f in flags]) == [
        False,
        False,
        True,
        True,
        False,
    ]


def test_sso_candidates_accepts_a_float_flag_column_with_nan():
    df = pd.DataFrame({"sso_flag": [3.0, np.nan, 2.0, 0.0]})
    assert run_filter(sso_candidates, df).tolist() == [True, False, True, False]


# ---------------------------------------------------------------------------------------
# new_transients


def test_new_transient_is_selected():
    assert select(new_transients, [alert()]) == [True]


@pytest.mark.parametrize(
    ("change", "selected"),
    [
        ({}, True),
        ({"flux": -flux_of(17.0)}, False),  # negative subtraction: an existing source faded
        ({"flux": None}, False),
        ({"hist_mjd": np.array([NOW - 5.0, NOW]), "ndethist": 2}, True),  # 5 d: boundary in
        ({"hist_mjd": np.array([NOW - 5.01, NOW]), "ndethist": 2}, False),  # too old
        ({"hist_mjd": np.array([NOW - 1.0, np.nan, NOW]), "ndethist": 2}, True),  # NaN skipped
        ({"ndethist": 3}, False),  # seen before the history window
        ({"ndethist": None}, False),
        ({"hist_mjd": None}, False),
        ({"hist_mjd": np.array([])}, False),
        ({"mjd": np.nan}, False),
        ({"sso_flag": 3}, False),  # a known asteroid
        ({"sso_flag": 2}, True),  # Fink's loose SSO candidate is not vetoed (as in Fink)
        ({"sso_flag": 0}, True),
        ({"sso_flag": None}, False),
        ({"xm_hip_id": "HIP 1"}, False),
        ({"xm_vsx_id": "J0000"}, False),
        ({"xm_gcvs_id": "V0001 And"}, False),
        ({"xm_3hsp_id": "3HSP J0000"}, False),
        ({"xm_4lac_id": "4FGL J0000"}, False),
        ({"xm_vsx_id": ""}, True),  # an empty identifier is no counterpart
        ({"xm_mangrove_id": "G1", "xm_ongc_id": "NGC 1"}, True),  # a host, not a counterpart
    ],
)
def test_new_transients_rules(change, selected):
    assert select(new_transients, [alert(**change)]) == [selected]


def test_new_transients_does_not_read_galaxy_catalogues():
    assert "xm_mangrove_id" not in new_transients.inputs
    assert "xm_ongc_id" not in new_transients.inputs
    assert new_mod.MAX_AGE_DAYS == 5.0


def test_new_transients_on_a_mixed_batch_keeps_rows_apart():
    rows = [alert(), alert(sso_flag=3), alert(ndethist=4), alert(xm_hip_id="HIP 2"), alert()]
    assert select(new_transients, rows) == [True, False, False, False, True]


# ---------------------------------------------------------------------------------------
# bright_transients


@pytest.mark.parametrize(
    ("change", "selected"),
    [
        ({"mag": 18.4, "flux": flux_of(18.4)}, True),
        ({"mag": 18.5, "flux": flux_of(18.5)}, False),  # strict: brighter than 18.5
        ({"mag": 19.0, "flux": flux_of(19.0)}, False),
        ({"mag": None, "flux": flux_of(18.0)}, False),
        ({"mag": 15.0, "flux": -flux_of(15.0)}, False),  # bright *negative* subtraction
        ({"mag": 15.0, "flux": None}, False),
        ({"xm_hip_id": "HIP 1"}, False),
        ({"xm_vsx_id": "J0000"}, False),
        ({"xm_gcvs_id": "V0001 And"}, False),
        ({"xm_4lac_id": "4FGL J0000", "xm_mangrove_id": "G1"}, True),  # blazar, host: kept
        ({"sso_flag": 3}, False),
        ({"sso_flag": 2}, True),
        ({"sso_flag": None}, False),
        ({"ndethist": 40, "hist_mjd": np.array([NOW - 30, NOW])}, True),  # age is irrelevant
    ],
)
def test_bright_transients_rules(change, selected):
    assert select(bright_transients, [alert(**change)]) == [selected]
    assert bright_mod.BRIGHT_MAG == 18.5


# ---------------------------------------------------------------------------------------
# variable_star_brightening


def star(current: float, previous=((16.0, 0.05), (16.0, 0.05)), **change: Any) -> dict:
    """A VSX star: previous r-band detections (mag, err) one day apart, then the current one.

    The history includes the current detection, as the surveys' histories do.
    """
    times = [NOW - len(previous) + i for i in range(len(previous))] + [NOW]
    mags = [m for m, _ in previous] + [current]
    errs = [e for _, e in previous] + [0.05]
    values = {
        "mag": current,
        "flux": flux_of(current),
        "hist_mjd": np.array(times, dtype=float),
        "hist_band": np.array(["r"] * len(times), dtype=object),
        "hist_mag": np.array(mags, dtype=float),
        "hist_magerr": np.array(errs, dtype=float),
        "hist_flux": np.array([flux_of(m) for m in mags]),
        "xm_vsx_id": "J0000-00",
        "ndethist": len(times),
    }
    values.update(change)
    return alert(**values)


@pytest.mark.parametrize(
    ("row", "selected"),
    [
        # 0.55 mag above a 16.0 baseline of two previous points: selected. Had the current
        # point entered the mean (15.82), the brightening would only be 0.37
        (star(15.45), True),
        (star(15.55), False),
        (star(15.45, xm_vsx_id=None), False),  # not a known variable
        (star(15.45, xm_vsx_id=None, xm_gcvs_id="V0001 And"), True),
        (star(15.45, flux=-flux_of(15.45)), False),  # negative subtraction
        (star(15.45, mag=None), False),
        (star(15.45, band=None), False),
        (star(15.45, mjd=np.nan), False),
        (star(15.45, hist_mag=None), False),
        (star(15.45, previous=((16.0, 0.05),)), False),  # one previous point: no baseline
        (star(15.45, band="g"), False),  # no previous g-band point
        # previous points of negative flux or unknown error are not part of the baseline
        (star(15.45, previous=((16.0, 0.05), (16.0, 0.05), (16.0, 0.05))), True),
        (star(15.45, previous=((16.0, 0.05), (16.0, np.nan), (16.0, 0.05))), True),
        (star(15.45, previous=((16.0, 0.05), (16.0, np.nan))), False),
        (star(15.45, previous=((16.0, 0.05), (16.0, 0.0))), False),
    ],
)
def test_variable_star_brightening_rules(row, selected):
    assert select(variable_star_brightening, [row]) == [selected]


def test_variable_star_baseline_ignores_negative_flux_and_other_bands():
    row = star(15.45, previous=((16.0, 0.05), (16.0, 0.05), (10.0, 0.05), (10.0, 0.05)))
    row["hist_flux"][2] = -row["hist_flux"][2]  # a negative subtraction at "10 mag"
    row["hist_band"][3] = "g"  # a g-band point
    assert select(variable_star_brightening, [row]) == [True]
    # counted, the 10-mag points would have made the star look 3 mag *fainter* than usual
    row["hist_flux"][2] = -row["hist_flux"][2]
    assert select(variable_star_brightening, [row]) == [False]


def test_variable_star_baseline_is_inverse_variance_weighted():
    # a precise 16.0 and a poor 17.0: weighted mean 16.0099, unweighted 16.5
    row = star(15.55, previous=((16.0, 0.01), (17.0, 0.1)))
    assert select(variable_star_brightening, [row]) == [False]
    baseline = vsb_mod.baseline_magnitude(frame([row]))[0]
    assert baseline == pytest.approx((16.0 / 0.01**2 + 17.0 / 0.1**2) / (1e4 + 1e2))
    brighter = star(15.45, previous=((16.0, 0.01), (17.0, 0.1)))
    assert select(variable_star_brightening, [brighter]) == [True]


def test_variable_star_thresholds():
    assert vsb_mod.BRIGHTENING_MAG == 0.5 and vsb_mod.MIN_BASELINE_POINTS == 2
    assert "lc_weighted_mean_r" not in variable_star_brightening.inputs

"""Built-in filters on the real alerts of ../shared/datasim, enriched by the science modules.

Each filter's selection must equal an independent, row-by-row re-implementation of its
documented rule, written here from the docstrings (thresholds as literal numbers, so a
silent change of a module constant fails this test too).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fink_broker.plugins import filters_for, modules_for, run_filter
from fink_broker.science import catalogues as cats
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from tests.science_frames import enriched_frame

SURVEYS = ("ztf", "rubin")
DATASIM = Path(__file__).resolve().parents[2].parent / "shared" / "datasim"

Row = dict[str, Any]


@pytest.fixture(scope="module")
def enriched() -> dict[str, pd.DataFrame]:
    """Canonical frames of every real alert, with all science modules applied in order."""
    if not DATASIM.is_dir():
        pytest.skip(f"real alerts not available: {DATASIM} is absent")
    if cats.package_dir("fink_science") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install fink-science==7.4.0 (--no-deps) for the catalogues")
        pytest.skip("fink-science is not installed: the xmatch module has no catalogues")
    out = {}
    for survey in SURVEYS:
        records = [read_alert_file(f)[0] for f in iter_alert_files(DATASIM / survey)]
        # not a RangeIndex: filters must keep the index
        out[survey] = enriched_frame(records, survey, modules_for(survey), index_offset=(7, 11))
    return out


# ---------------------------------------------------------------------------------------
# Independent re-implementations, one alert at a time


def null(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def has(row: Row, catalogue: str) -> bool:
    value = row[f"xm_{catalogue}_id"]
    return not null(value) and value != ""


def positive(row: Row) -> bool:
    return not null(row["flux"]) and row["flux"] > 0


def not_known_sso(row: Row) -> bool:
    return not null(row["sso_flag"]) and int(row["sso_flag"]) != 3


def expect_sso(row: Row) -> bool:
    return not null(row["sso_flag"]) and int(row["sso_flag"]) in (2, 3)


def expect_new(row: Row) -> bool:
    times = [] if row["hist_mjd"] is None else [t for t in row["hist_mjd"] if not null(t)]
    if not times or null(row["mjd"]) or null(row["ndethist"]):
        return False
    return (
        positive(row)
        and row["mjd"] - min(times) <= 5.0
        and int(row["ndethist"]) <= len(times)
        and not_known_sso(row)
        and not any(has(row, c) for c in ("hip", "vsx", "gcvs", "3hsp", "4lac"))
    )


def expect_bright(row: Row) -> bool:
    return (
        not null(row["mag"])
        and row["mag"] < 18.5
        and positive(row)
        and not any(has(row, c) for c in ("hip", "vsx", "gcvs"))
        and not_known_sso(row)
    )


def expect_brightening(row: Row) -> bool:
    if not (has(row, "vsx") or has(row, "gcvs")) or not positive(row) or null(row["mag"]):
        return False
    if null(row["mjd"]) or not isinstance(row["band"], str) or row["hist_mjd"] is None:
        return False
    total = weight = 0.0
    points = 0
    history = zip(
        row["hist_mjd"],
        row["hist_band"],
        row["hist_mag"],
        row["hist_magerr"],
        row["hist_flux"],
        strict=True,
    )
    for t, band, mag, err, flux in history:
        if t < row["mjd"] and band == row["band"] and flux > 0 and not null(mag) and err > 0:
            total += mag / err**2
            weight += 1 / err**2
            points += 1
    return points >= 2 and total / weight - row["mag"] >= 0.5


EXPECTED: dict[str, Callable[[Row], bool]] = {
    "sso_candidates": expect_sso,
    "new_transients": expect_new,
    "bright_transients": expect_bright,
    "variable_star_brightening": expect_brightening,
}


def expected(frame: pd.DataFrame, name: str) -> pd.Series:
    rule = EXPECTED[name]
    return pd.Series([rule(r) for r in frame.to_dict("records")], index=frame.index, dtype=bool)


# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("survey", SURVEYS)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_selection_equals_independent_computation(enriched, survey, name):
    frame = enriched[survey]
    (f,) = [f for f in filters_for(survey) if f.name == name]
    mask = run_filter(f, frame)
    want = expected(frame, name)
    diff = frame.index[mask != want].tolist()
    assert not diff, f"{name} on {survey}: rows {diff} differ from the documented rule"


def test_real_alerts_exercise_both_outcomes(enriched):
    """The equality above would be hollow if a filter kept everything or nothing."""
    for name in ("sso_candidates", "new_transients", "bright_transients"):
        selected = sum(int(expected(frame, name).sum()) for frame in enriched.values())
        total = sum(len(frame) for frame in enriched.values())
        assert 0 < selected < total, f"{name} selects {selected} of {total} real alerts"


def test_brightening_of_a_real_vsx_star(enriched):
    """The real Rubin VSX counterpart, given a fainter past, is a brightening variable star.

    No real alert has the two previous same-band detections the rule needs, so two are
    planted 1 and 2 days earlier, 0.7 mag fainter than the current detection.
    """
    frame = enriched["rubin"].copy()
    stars = frame.index[frame["xm_vsx_id"].notna()]
    assert len(stars) >= 1, "the Rubin sample has a VSX counterpart"
    (f,) = [f for f in filters_for("rubin") if f.name == "variable_star_brightening"]
    assert not run_filter(f, frame).loc[stars].any()

    row = stars[0]
    mjd, band, mag = frame.at[row, "mjd"], frame.at[row, "band"], frame.at[row, "mag"]
    flux, magerr = frame.at[row, "flux"], frame.at[row, "magerr"]
    past = 10 ** (-0.4 * 0.7) * flux  # 0.7 mag fainter
    planted = {
        "hist_mjd": np.array([mjd - 2.0, mjd - 1.0, mjd]),
        "hist_band": np.array([band, band, band], dtype=object),
        "hist_mag": np.array([mag + 0.7, mag + 0.7, mag]),
        "hist_magerr": np.array([magerr, magerr, magerr]),
        "hist_flux": np.array([past, past, flux]),
    }
    for column, value in planted.items():
        frame[column] = frame[column].astype(object)
        frame.at[row, column] = value
    mask = run_filter(f, frame)
    assert mask.loc[row]
    assert mask.equals(expected(frame, "variable_star_brightening").rename(f.name))
    # the same past, only 0.3 mag fainter, is ordinary variability
    frame.at[row, "hist_mag"] = np.array([mag + 0.3, mag + 0.3, mag])
    assert not run_filter(f, frame).loc[row]


# ---------------------------------------------------------------------------------------
# Filters on classifier scores (one survey each)


def expect_anomaly(row: Row) -> bool:
    score = row["anomaly_score"]
    return not null(score) and score != 0.0 and score <= -0.0164


def expect_superluminous(row: Row) -> bool:
    return not null(row["slsn_score"]) and row["slsn_score"] >= 0.5


def _only(survey: str, name: str):
    (f,) = [f for f in filters_for(survey) if f.name == name]
    assert all(f.name != name for other in SURVEYS if other != survey for f in filters_for(other))
    return f


def test_anomaly_notification_on_real_alerts(enriched):
    frame = enriched["ztf"]
    mask = run_filter(_only("ztf", "anomaly_notification"), frame)
    want = [expect_anomaly(r) for r in frame.to_dict("records")]
    assert mask.tolist() == want
    # the provisional threshold keeps the lowest tenth of the night's real alerts
    assert mask.sum() == 5
    assert frame.loc[mask, "anomaly_score"].max() < frame.loc[~mask, "anomaly_score"].min()


def test_superluminous_on_real_alerts_and_planted_scores(enriched):
    f = _only("rubin", "superluminous")
    frame = enriched["rubin"]
    # the real alerts have at most two points: none is scored, none is selected
    assert (frame["slsn_score"] == 0).all() and not run_filter(f, frame).any()
    planted = frame.head(5).copy()
    planted["slsn_score"] = [0.49, 0.5, 0.93, 0.0, np.nan]
    assert run_filter(f, planted).tolist() == [expect_superluminous(r) for r in
                                               planted.to_dict("records")]  # fmt: skip
    assert run_filter(f, planted).tolist() == [False, True, True, False, False]

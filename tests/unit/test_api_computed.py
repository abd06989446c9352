"""Fink's ``v:`` columns computed at query time, on a light curve written by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fink_broker.api.computed import COMPUTED_COLUMNS, ComputedInputs, add_computed
from fink_broker.surveys.archive_shapes import shape_of

ZTF = ComputedInputs.of(shape_of("ztf"), "candidate", tai=False)
RUBIN = ComputedInputs.of(shape_of("rubin"), "diaSource", tai=True)


def curve() -> pd.DataFrame:
    """Object A: g 20.0 at t0, r 19.5 at t0 + 0.1 d, g 19.7 at t0 + 1 d; object B: one r."""
    t0 = 58849.0
    return pd.DataFrame(
        {
            "d:objectId": ["A", "A", "A", "B"],
            "d:mjd": [t0 + 1.0, t0, t0 + 0.1, t0],
            "d:band": ["g", "g", "r", "r"],
            "d:mag": [19.7, 20.0, 19.5, 18.0],
            "d:magerr": [0.1, 0.1, 0.1, 0.2],
            "d:ra": [10.684, 10.684, 10.684, 83.82],
            "d:dec": [41.269, 41.269, 41.269, -5.39],
            "d:fink_class": ["Unknown", "Unknown", None, "Variable star"],
            "i:jdstarthist": [2458848.5] * 3 + [np.nan],
        }
    )


def test_light_curve_columns():
    out = add_computed(curve(), ZTF, COMPUTED_COLUMNS)
    a_last = out.iloc[0]
    assert a_last["v:rate"] == pytest.approx(-0.3), "0.3 mag brighter in a day, in g"
    assert a_last["v:sigma(rate)"] == pytest.approx(np.hypot(0.1, 0.1))
    assert np.isnan(out.iloc[1]["v:rate"]), "no earlier g alert"
    assert out.iloc[1]["v:g-r"] == pytest.approx(0.5), "g at t0 with r 0.1 d later"
    assert out.iloc[2]["v:g-r"] == pytest.approx(0.5), "the r alert gets its nearest colour"
    assert np.isnan(out.iloc[0]["v:g-r"]), "no r within 0.3 d of t0 + 1"
    assert np.isnan(out.iloc[3]["v:g-r"]), "B has no g"
    assert out["v:lapse"].iloc[0] == pytest.approx(2.0)
    assert out["v:firstdate"].iloc[0] == "2019-12-31 00:00:00.000"
    assert out["v:lastdate"].iloc[1] == "2020-01-01 00:00:00.000"
    assert list(out["v:constellation"]) == ["Andromeda"] * 3 + ["Orion"]
    assert list(out["v:classification"][:2]) == ["Unknown", "Unknown"]
    assert out["v:classification"].iloc[2] is None


def test_rubin_times_are_tai_and_show_as_utc():
    frame = curve().rename(columns={"i:jdstarthist": "r:diaObject.firstDiaSourceMjdTai"})
    frame = frame.rename(columns={c: "f:" + c[2:] for c in frame.columns if c.startswith("d:")})
    frame["r:diaObject.firstDiaSourceMjdTai"] = 58849.0
    out = add_computed(frame, RUBIN, ["v:lastdate", "v:lapse"])
    # MJD 58849.0 TAI is 37 s before midnight UTC
    assert out["v:lastdate"].iloc[1] == "2019-12-31 23:59:23.000"
    assert out["v:lapse"].iloc[0] == pytest.approx(1.0)


def test_an_empty_answer_gets_the_columns():
    empty = curve().iloc[0:0]
    out = add_computed(empty, ZTF, COMPUTED_COLUMNS)
    assert set(COMPUTED_COLUMNS) <= set(out.columns) and out.empty

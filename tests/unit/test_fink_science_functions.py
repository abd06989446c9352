"""The adapter that runs fink-science functions unchanged, on the real ZTF alerts.

``fink_roid`` is fink-science's own ``roid_catcher``: it must agree with the broker's
``solar_system`` module, which re-implements the same rules over canonical columns, on
every alert; ``fink_nalerthist`` must count the detections of the alert packet.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fink_broker.plugins import ColumnSpec, modules_for, run_module
from fink_broker.science import fink_science_functions as adapter
from fink_broker.science.fink_science_functions import Concat, Constant, fink_science_module
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from tests.science_frames import enriched_frame


@pytest.fixture(scope="module")
def ztf(datasim) -> pd.DataFrame:
    records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / "ztf")]
    return enriched_frame(records, "ztf", modules_for("ztf"), index_offset=(2, 9))


def test_roid_catcher_runs_unchanged_and_agrees_with_solar_system(ztf):
    assert adapter.fink_roid.inputs[:2] == ("prv_candidates.jd", "candidate.jd")
    roid = ztf["roid"]
    assert str(roid.dtype) == "Int32"
    np.testing.assert_array_equal(roid.to_numpy(int), pd.to_numeric(ztf["sso_flag"]).to_numpy(int))
    assert roid.nunique() > 1


def test_nalerthist_counts_the_detections(ztf):
    counts = [len(h) for h in ztf["hist_mjd"]]
    assert ztf["nalerthist"].tolist() == counts


def test_arguments_follow_fink_conventions():
    frame = pd.DataFrame(
        {"h.x": [np.array([1.0, None], dtype=object), None], "c.x": [3.0, 4.0], "s": [7, 8]},
        index=[10, 20],
    )
    concat, constant, raw = adapter.call_arguments(
        frame, [Concat("h.x", "c.x"), Constant("snn"), "s"]
    )
    np.testing.assert_array_equal(concat[0], [1.0, np.nan, 3.0])
    np.testing.assert_array_equal(concat[1], [4.0])
    assert constant.tolist() == ["snn", "snn"] and raw.tolist() == [7, 8]
    assert list(raw.index) == [0, 1]  # positional, as Fink's functions expect


def test_a_module_from_any_function():
    module = fink_science_module(
        name="doubled",
        function="numpy:multiply",
        arguments=["a", Constant(2)],
        output=ColumnSpec("doubled", "double"),
        surveys=None,
        version="1",
    )
    out = run_module(module, pd.DataFrame({"a": [1.5, 2.0]}, index=[5, 6]))
    assert out["doubled"].tolist() == [3.0, 4.0] and list(out.index) == [5, 6]

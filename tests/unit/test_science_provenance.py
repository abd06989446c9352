"""provenance: broker version and module versions, and the engine-set columns."""

from __future__ import annotations

import pandas as pd

import fink_broker
from fink_broker.plugins import discover, run_module, science_module
from fink_broker.science.provenance import ENGINE_COLUMNS, provenance, provenance_module


def test_builtin_lists_every_installed_module_but_itself():
    out = run_module(provenance, pd.DataFrame({"alertId": [1, 2]}, index=[7, 8]))
    assert out.index.tolist() == [7, 8]
    assert set(out.fink_broker_version) == {fink_broker.__version__}
    expected = ";".join(
        f"{m.name}={m.version}" for name, m in sorted(discover().items()) if name != "provenance"
    )
    assert set(out.fink_science_modules) == {expected}
    assert "solar_system=1.0" in expected and "xmatch=1.0" in expected


def test_engine_can_fix_the_list_to_the_modules_it_runs():
    @science_module(name="alpha", version="3.2", inputs=["mag"], outputs=[("a", "int")])
    def alpha(df):
        return df

    module = provenance_module([alpha, provenance])
    out = run_module(module, pd.DataFrame({"alertId": [1]}))
    assert out.fink_science_modules[0] == "alpha=3.2"


def test_processing_times_are_declared_for_the_engine():
    assert [(c.name, c.dtype) for c in ENGINE_COLUMNS] == [
        ("processing_start", "timestamp"),
        ("processing_end", "timestamp"),
    ]
    assert not {c.name for c in ENGINE_COLUMNS} & set(provenance.output_names)

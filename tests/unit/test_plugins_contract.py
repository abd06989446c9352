"""Contract test: every discovered module, on canonical frames of real alerts of each survey.

A module passes when it reads only canonical columns, other modules' outputs or (a module
that declares its surveys) raw fields that the survey's alerts carry, and emits
exactly its declared columns, row-aligned, with values that fit the declared types
(``run_module`` enforces the last two; this test makes it run on real data).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from fink_broker.plugins import discover, modules_for, run_module
from fink_broker.science.provenance import ENGINE_COLUMNS
from fink_broker.surveys.base import iter_alert_files, read_alert_file
from fink_broker.surveys.fields import CANONICAL_NAMES, canonical_frame
from tests.science_frames import raw_value

SURVEYS = ("ztf", "rubin")


@pytest.fixture(scope="module")
def frames(datasim: Path) -> dict[str, tuple[pd.DataFrame, list[dict]]]:
    out = {}
    for survey in SURVEYS:
        records = [read_alert_file(f)[0] for f in iter_alert_files(datasim / survey)]
        frame = canonical_frame(records, survey)
        frame.index = frame.index * 3 + 1000  # not a RangeIndex: modules must keep the index
        out[survey] = frame, records
    return out


@pytest.mark.parametrize("survey", SURVEYS)
def test_declared_columns_are_unique_and_never_shadow_canonical_ones(survey):
    # per survey: lc_features_ztf and lc_features_rubin share names but never run together
    seen: dict[str, str] = {c: "canonical" for c in CANONICAL_NAMES}
    seen.update({c.name: "engine" for c in ENGINE_COLUMNS})
    for module in modules_for(survey, discover()):
        for column in module.output_names:
            assert column not in seen, f"{module.name}.{column} clashes with {seen[column]}"
            seen[column] = module.name


@pytest.mark.parametrize("survey", SURVEYS)
def test_every_module_honours_its_contract_on_real_alerts(frames, survey):
    frame, records = frames[survey]
    modules = modules_for(survey)
    assert modules, f"no module for {survey}"
    ran = []
    for module in modules:  # dependency order: earlier outputs feed later inputs
        unknown = [c for c in module.inputs if c not in frame.columns]
        if module.surveys is not None:  # a survey's own module may read its raw fields
            for path in list(unknown):
                values = [raw_value(r, path) for r in records]
                if any(v is not None for v in values):
                    frame[path] = pd.Series(values, index=frame.index, dtype=object)
                    unknown.remove(path)
        assert not unknown, f"{module.name} reads {unknown}: neither canonical nor produced"
        out = run_module(module, frame)
        assert tuple(out.columns) == module.output_names
        assert out.index.equals(frame.index)
        frame = frame.join(out)
        ran.append(module.name)
    assert {"solar_system", "xmatch", "provenance"} <= set(ran)
    assert f"lc_features_{survey}" in ran

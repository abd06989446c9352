"""Fixtures of the classifier tests (see ``tests/classifier_reference.py``), loaded once."""

from __future__ import annotations

import pandas as pd
import pytest

from tests import plasticc_sample
from tests.classifier_reference import DATASIM, load_reference, require


@pytest.fixture(scope="session")
def reference() -> dict:
    """fink-science's reference scores; needs the models converted at set-up."""
    from fink_broker.science import model_files

    require(
        (model_files.models_cache() / "manifest.json").exists(),
        f"models not converted in {model_files.models_cache()} (bash scripts/convert_models.sh)",
    )
    return load_reference()


@pytest.fixture(scope="session")
def datasim_frames() -> dict[str, pd.DataFrame]:
    """Every real alert through every module of its survey, as raw2science feeds them."""
    from fink_broker.plugins import discover
    from fink_broker.surveys.base import iter_alert_files, read_alert_file
    from tests.science_frames import enriched_frame

    require(DATASIM.is_dir(), f"real alerts not available: {DATASIM} is absent")
    modules = discover()
    out = {}
    for survey in sorted(p.name for p in DATASIM.iterdir() if p.is_dir()):
        records = [read_alert_file(f)[0] for f in iter_alert_files(DATASIM / survey)]
        chosen = [m for m in modules.values() if m.supports(survey)]
        out[survey] = enriched_frame(records, survey, chosen, index_offset=(3, 5))
    return out


@pytest.fixture(scope="session")
def plasticc() -> dict[int, plasticc_sample.LightCurve]:
    """Labelled PLAsTiCC light curves by object id (the SN sample and the SLSN sample)."""
    require(plasticc_sample.data_dir() is not None, "snmachine (PLAsTiCC data) is not installed")
    curves = plasticc_sample.load() + plasticc_sample.load(classes=(plasticc_sample.SLSN,))
    return {lc.object_id: lc for lc in curves}

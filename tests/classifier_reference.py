"""What the classifier tests share: fink-science's reference scores and the real alerts.

``tests/fixtures/fink_science_reference.json`` holds what fink-science 7.4.0's own
functions give with the original models, on the real alerts of ../shared/datasim and on a
PLAsTiCC sample; ``scripts/reference/make_fixture.py`` makes it in the side environment
those functions need. The fixtures of ``tests/unit/conftest.py`` load it once per run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "fink_science_reference.json"
DATASIM = Path(__file__).resolve().parents[1].parent / "shared" / "datasim"


def require(ok: bool, why: str) -> None:
    """Skip when ``ok`` is false, except in CI, which must provide it."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide it: {why}")
        pytest.skip(why)


def load_reference() -> dict:
    """The fixture, checked to be of the installed fink-science."""
    import fink_science

    fixture = json.loads(FIXTURE.read_text())
    assert fixture["fink_science"] == fink_science.__version__
    return fixture


def by_id(frame: pd.DataFrame, ids: list[str], column: str) -> np.ndarray:
    """``column`` of ``frame`` for the alerts ``ids`` (alertId as strings), in that order."""
    values = frame.set_index(frame["alertId"].astype(str))[column]
    return values.loc[ids].to_numpy(float)

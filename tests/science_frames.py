"""Module input frames built from decoded alerts, the way raw2science feeds the modules.

Canonical columns come from the survey's table (``canonical_frame``); an input that is not
canonical is a raw field named by its path (``candidate.jdstarthist``), read from each
record as the engine reads it with ``F.col(path)``. Arrays of a raw list field
(``prv_candidates.jd``) are the field of every list item, as Spark resolves them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fink_broker.plugins import ScienceModule, resolve_order, run_module
from fink_broker.surveys.fields import CANONICAL_NAMES, canonical_frame, get_path


def raw_value(record: Mapping[str, Any], path: str) -> Any:
    """A raw field by path; through a list, the field of each item (Spark's semantics)."""
    head, _, rest = path.partition(".")
    value = record.get(head)
    if not rest:
        return value
    if isinstance(value, list):
        return np.asarray([get_path(item, rest) for item in value], dtype=object)
    return get_path(value, rest) if value is not None else None


def enriched_frame(
    records: Sequence[Mapping[str, Any]],
    survey: str,
    modules: Iterable[ScienceModule],
    index_offset: tuple[int, int] = (1, 0),
) -> pd.DataFrame:
    """Canonical columns, the raw inputs the modules need, then every module's outputs."""
    ordered = resolve_order(modules)
    frame = canonical_frame(records, survey)
    raw = {c for m in ordered for c in m.inputs if c not in CANONICAL_NAMES}
    produced = {c for m in ordered for c in m.output_names}
    for path in sorted(raw - produced):
        frame[path] = [raw_value(r, path) for r in records]
    scale, offset = index_offset
    frame.index = frame.index * scale + offset
    for module in ordered:
        frame = frame.join(run_module(module, frame))
    return frame

"""Survey adapters: the only place where ZTF and Rubin differ (see ``base.SurveyAdapter``)."""

from __future__ import annotations

from fink_broker.surveys.base import SurveyAdapter
from fink_broker.surveys.rubin import rubin_adapter
from fink_broker.surveys.ztf import ZTF

SURVEYS = ("ztf", "rubin")


def get_adapter(
    name: str, *, rubin_schema_ids: list[int] | tuple[int, ...] = (900,)
) -> SurveyAdapter:
    """The adapter of a survey by name (``ztf`` or ``rubin``)."""
    if name == "ztf":
        return ZTF
    if name == "rubin":
        return rubin_adapter(rubin_schema_ids)
    raise ValueError(f"unknown survey {name!r}; known: {', '.join(SURVEYS)}")


__all__ = ["SURVEYS", "SurveyAdapter", "get_adapter"]

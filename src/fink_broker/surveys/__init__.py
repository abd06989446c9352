"""Survey adapters: the only place where ZTF and Rubin differ (see ``base.SurveyAdapter``).

An adapter is built once from the settings with :func:`build_survey` and handed to every
service, the API, the simulator and the CLI; the CLI's ``--survey`` choices come from
:data:`SURVEYS`.
"""

from __future__ import annotations

from typing import Any

from fink_broker.surveys.base import SurveyAdapter
from fink_broker.surveys.names import RUBIN_NAME, SURVEY_NAMES, ZTF_NAME
from fink_broker.surveys.rubin import RubinAdapter
from fink_broker.surveys.ztf import ZtfAdapter

#: survey name -> adapter class (each has ``from_settings``)
ADAPTERS: dict[str, Any] = {ZTF_NAME: ZtfAdapter, RUBIN_NAME: RubinAdapter}
#: the surveys Fink knows, by name
SURVEYS: tuple[str, ...] = tuple(ADAPTERS)
assert SURVEYS == SURVEY_NAMES, "surveys.names lists the surveys that have an adapter"


def _known(name: str) -> Any:
    if name not in ADAPTERS:
        raise ValueError(f"unknown survey {name!r}; known: {', '.join(SURVEYS)}")
    return ADAPTERS[name]


def build_survey(settings: Any, name: str | None = None) -> SurveyAdapter:
    """The adapter of a survey (default: ``stream2raw.survey``) as the settings describe it:
    accepted and reader schemas, schema registry, quality-cut thresholds."""
    return _known(name or settings.stream2raw.survey).from_settings(settings)


def build_surveys(settings: Any) -> dict[str, SurveyAdapter]:
    """Every survey's adapter, by name (for what serves both: the API, live views)."""
    return {name: build_survey(settings, name) for name in SURVEYS}


def get_adapter(name: str) -> SurveyAdapter:
    """A survey's adapter with the default settings (tests, docs, offline tools).

    >>> get_adapter(ZTF_NAME).topic_suffix
    'ztf'
    """
    return _known(name)()


def default_adapters() -> tuple[SurveyAdapter, ...]:
    """Every survey's adapter with the default settings (tools that read any survey)."""
    return tuple(get_adapter(name) for name in SURVEYS)


def topic_suffixes() -> dict[str, str]:
    """Survey name -> suffix of its outgoing topics (``fink_<filter>_<suffix>``)."""
    return {a.name: a.topic_suffix for a in default_adapters()}


def as_adapter(survey: str | SurveyAdapter) -> SurveyAdapter:
    """``survey`` itself, or the default adapter of a survey's name (pure builders take
    either: services hand them the adapter built from the settings, tests a name)."""
    return get_adapter(survey) if isinstance(survey, str) else survey


__all__ = [
    "SURVEYS",
    "SurveyAdapter",
    "as_adapter",
    "build_survey",
    "build_surveys",
    "default_adapters",
    "get_adapter",
    "topic_suffixes",
]

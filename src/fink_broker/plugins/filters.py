"""Filters: plain pandas predicates over enriched alerts, each feeding one Kafka topic.

A filter is ``fn(df) -> pd.Series[bool]``: it receives exactly its declared input columns
(canonical columns and science-module outputs, all top-level in the science archive) and
returns one boolean per row, row-aligned with the input. ``True`` means "publish this alert
on the filter's topic" ``fink_<name>_<survey suffix>`` (:func:`topic_name`). Like science
modules, filters never import pyspark; the distribution service wraps :func:`run_filter` in
an Arrow-vectorised UDF, so a filter is unit-tested on a hand-made frame and runs unchanged
on executors.

The contract is checked on every call because a wrong-length or re-indexed mask would
silently publish other alerts than the ones the filter selected, and a float "mask" of
0.0/1.0 is almost always a bug (a score returned instead of a decision).

Null semantics: a filter may return pandas' nullable ``boolean`` dtype, and a null there
counts as *not selected*. Topics are opt-in streams that astronomers act upon, so "unknown"
must never publish an alert.

Writing a filter in your own package::

    # my_package/faint.py
    import pandas as pd
    from fink_broker.plugins import alert_filter

    @alert_filter(name="faint_risers", version="1.0", inputs=["mag", "lc_linear_slope_r"],
                  description="Faint sources brightening in r")
    def faint_risers(df: pd.DataFrame) -> pd.Series:
        return (df["mag"] > 20) & (df["lc_linear_slope_r"] < -0.1)

    # my_package's pyproject.toml
    [project.entry-points."fink_broker.filters"]
    faint_risers = "my_package.faint:faint_risers"
"""

from __future__ import annotations

import inspect
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd
from pandas.api import types as ptypes

from fink_broker.plugins.module import ContractError, FailurePolicy
from fink_broker.plugins.registry import load_plugins

log = logging.getLogger(__name__)

#: Entry-point group of filters.
FILTER_GROUP = "fink_broker.filters"
#: Prefix of outgoing topic names (Fink's ``SUBSTREAM_PREFIX``).
TOPIC_PREFIX = "fink_"

#: The signature every filter function has.
FilterFunction = Callable[[pd.DataFrame], pd.Series]

#: Kafka's legal topic names (``kafka.common.internals.Topic``): at most 249 of these.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class AlertFilter:
    """A declared filter (build it with :func:`alert_filter`).

    Calling the filter runs it through :func:`run_filter`, so direct calls are checked too.
    """

    name: str
    version: str
    description: str
    #: columns the function reads; it receives exactly these
    inputs: tuple[str, ...]
    #: columns sent on the topic; None sends the whole enriched alert
    publish: tuple[str, ...] | None
    #: the surveys the filter applies to; None means every survey
    surveys: tuple[str, ...] | None
    function: FilterFunction = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        # the name becomes part of a Kafka topic and of HBase/Parquet names: keep it plain
        if not _NAME.match(self.name):
            raise ValueError(f"filter name {self.name!r} is not a plain identifier")
        if not self.version:
            raise ValueError(f"filter {self.name!r}: empty version")
        _no_duplicates(self.name, "input", self.inputs)
        if self.publish is not None:
            if not self.publish:
                raise ValueError(
                    f"filter {self.name!r}: publish=() would send empty alerts; use None "
                    "for the whole alert"
                )
            _no_duplicates(self.name, "publish", self.publish)
        if self.surveys is not None and not self.surveys:
            raise ValueError(f"filter {self.name!r}: surveys=() would never run; use None")

    def supports(self, survey: str) -> bool:
        """Whether the filter applies to ``survey``."""
        return self.surveys is None or survey in self.surveys

    def __call__(self, df: pd.DataFrame) -> pd.Series:
        return run_filter(self, df)


def _no_duplicates(name: str, what: str, columns: Iterable[str]) -> None:
    dup = sorted(c for c, count in Counter(columns).items() if count > 1)
    if dup:
        raise ValueError(f"filter {name!r}: duplicate {what} columns {dup}")


def alert_filter(
    *,
    name: str,
    version: str,
    inputs: Iterable[str],
    description: str | None = None,
    publish: Iterable[str] | None = None,
    surveys: Iterable[str] | None = None,
) -> Callable[[FilterFunction], AlertFilter]:
    """Declare a filter over ``fn(df) -> pd.Series[bool]``.

    ``description`` defaults to the first paragraph of the function's docstring.

    >>> @alert_filter(name="bright", version="1.0", inputs=["mag"])
    ... def bright(df):
    ...     '''Brighter than 18 mag.'''
    ...     return df["mag"] < 18.0
    >>> bright(pd.DataFrame({"mag": [17.0, 19.0, None]})).tolist()
    [True, False, False]
    >>> bright.description, topic_name(bright, "ztf")
    ('Brighter than 18 mag.', 'fink_bright_ztf')
    """

    def wrap(function: FilterFunction) -> AlertFilter:
        text = description
        if text is None:
            doc = inspect.getdoc(function) or ""
            text = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
        return AlertFilter(
            name=name,
            version=str(version),
            description=text,
            inputs=tuple(inputs),
            publish=None if publish is None else tuple(publish),
            surveys=None if surveys is None else tuple(surveys),
            function=function,
        )

    return wrap


def topic_name(f: AlertFilter | str, survey_suffix: str, prefix: str = TOPIC_PREFIX) -> str:
    """The Kafka topic of a filter for one survey: ``<prefix><name>_<suffix>``.

    ``survey_suffix`` is the adapter's ``topic_suffix`` (``ztf``, ``lsst``).

    >>> topic_name("sso_candidates", "lsst")
    'fink_sso_candidates_lsst'
    """
    name = f if isinstance(f, str) else f.name
    topic = f"{prefix}{name}_{survey_suffix}"
    if not survey_suffix or not _TOPIC.match(topic):
        raise ValueError(f"{topic!r} is not a legal Kafka topic name")
    return topic


def run_filter(f: AlertFilter, df: pd.DataFrame) -> pd.Series:
    """Run a filter on ``df`` and check its output: a ``bool`` Series with ``df``'s index.

    The filter sees only its declared inputs, so it cannot depend on an undeclared column;
    reading one is reported as a :class:`ContractError`. A nullable ``boolean`` result is
    accepted and its nulls become ``False`` (not selected). The returned Series is named
    after the filter.

    Raises
    ------
    ContractError
        Missing inputs; reading an undeclared column; a result that is not a Series, has
        another length or index, or is not boolean (numbers 0/1 and objects are refused).
    """
    name = f.name
    inputs = list(f.inputs)
    missing = [c for c in inputs if c not in df.columns]
    if missing:
        raise ContractError(f"filter {name!r}: input columns {missing} are missing")
    try:
        result = f.function(df.loc[:, inputs])
    except KeyError as error:
        # only a KeyError naming a real-but-undeclared column is a contract breach
        key = error.args[0] if error.args else None
        if isinstance(key, str) and key in df.columns and key not in f.inputs:
            raise ContractError(
                f"filter {name!r} reads column {key!r}, which it does not declare as an input"
            ) from error
        raise
    return check_mask(f, df.index, result)


def check_mask(f: AlertFilter, index: pd.Index, result: object) -> pd.Series:
    """Validate a filter's raw result (see :func:`run_filter`); nulls become False."""
    name = f.name
    if not isinstance(result, pd.Series):
        raise ContractError(f"filter {name!r} returned {type(result).__name__}, not a Series")
    if len(result) != len(index):
        raise ContractError(
            f"filter {name!r}: {len(result)} output rows for {len(index)} input rows"
        )
    if not result.index.equals(index):
        raise ContractError(f"filter {name!r}: output index differs from the input index")
    dtype = result.dtype
    if not ptypes.is_bool_dtype(dtype):
        raise ContractError(
            f"filter {name!r} returned dtype {dtype}, not bool (use astype('boolean') when "
            "nulls are possible; they count as not selected)"
        )
    if result.isna().any():  # nullable "boolean" or Arrow bool: unknown is not selected
        result = result.fillna(False)
    return result.astype(bool).rename(name)


def run_filter_with_policy(
    f: AlertFilter, df: pd.DataFrame, policy: FailurePolicy | str = FailurePolicy.FAIL
) -> tuple[pd.Series, int]:
    """Run a filter under a failure policy: ``(mask, number of rows the failure covered)``.

    With ``null_and_count`` a filter that raises on a batch selects nothing from it (its
    topic misses those alerts, the science archive still has them) and the rows are
    counted; the other topics are unaffected. Missing inputs always raise: that is a
    deployment error (a module not installed), not a bad batch.
    """
    policy = FailurePolicy(policy)
    missing = [c for c in f.inputs if c not in df.columns]
    if missing:
        raise ContractError(f"filter {f.name!r}: input columns {missing} are missing")
    try:
        return run_filter(f, df), 0
    except Exception as error:  # the policy decides; this is not a silent catch-all
        if policy is FailurePolicy.FAIL:
            raise
        log.error(
            "filter %s %s failed on a batch of %d rows; nothing selected: %s: %s",
            f.name,
            f.version,
            len(df),
            type(error).__name__,
            error,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        return pd.Series(False, index=df.index, name=f.name), len(df)


def published_columns(f: AlertFilter, available: Iterable[str]) -> list[str]:
    """The columns to send on the filter's topic, given the enriched alert's columns.

    Raises :class:`ContractError` when a declared ``publish`` column does not exist, so a
    typo fails when the stream starts rather than producing an empty field downstream.
    """
    columns = list(available)
    if f.publish is None:
        return columns
    missing = [c for c in f.publish if c not in columns]
    if missing:
        raise ContractError(f"filter {f.name!r}: publish columns {missing} are missing")
    return list(f.publish)


# ---------------------------------------------------------------------------------------
# Registry


def discover_filters(
    group: str = FILTER_GROUP, *, skip_broken: bool = False
) -> dict[str, AlertFilter]:
    """Every filter installed in this environment, by name (see ``registry.load_plugins``).

    Built-in filters are registered in ``pyproject.toml`` exactly like third-party ones.
    """
    return load_plugins(group, AlertFilter, "filter", skip_broken=skip_broken)


def _values(
    filters: Mapping[str, AlertFilter] | Iterable[AlertFilter] | None,
) -> list[AlertFilter]:
    pool = discover_filters() if filters is None else filters
    return list(pool.values()) if isinstance(pool, Mapping) else list(pool)


def filters_for(
    survey: str, filters: Mapping[str, AlertFilter] | Iterable[AlertFilter] | None = None
) -> list[AlertFilter]:
    """The filters that apply to ``survey``, sorted by name (default: all discovered)."""
    return sorted((f for f in _values(filters) if f.supports(survey)), key=lambda f: f.name)


def enabled_filters(survey: str, wanted: Iterable[str] = ()) -> list[AlertFilter]:
    """The installed filters of ``survey`` named in ``wanted`` (all when it is empty);
    a name that is not installed is an error. The distribution publishes them and the
    archive lists their alerts (``tag`` table)."""
    available = filters_for(survey, discover_filters())
    wanted = list(wanted)
    if wanted:
        unknown = sorted(set(wanted) - {f.name for f in available})
        if unknown:
            raise ValueError(f"filters {unknown} are not installed for {survey}")
        available = [f for f in available if f.name in wanted]
    return available


def _default_suffixes() -> dict[str, str]:
    # imported here: surveys import plugins.columns, so a module-level import would cycle
    from fink_broker.surveys import topic_suffixes

    return topic_suffixes()


def describe_filters(
    filters: Mapping[str, AlertFilter] | Iterable[AlertFilter] | None = None,
    suffixes: Mapping[str, str] | None = None,
    prefix: str = TOPIC_PREFIX,
) -> str:
    """A plain-text listing of filters and their topics (for ``fink filters list``).

    ``suffixes`` maps a survey name to its topic suffix; the default comes from the survey
    adapters (``{"ztf": "ztf", "rubin": "lsst"}``).
    """
    suffixes = _default_suffixes() if suffixes is None else dict(suffixes)
    lines: list[str] = []
    for f in sorted(_values(filters), key=lambda f: f.name):
        surveys = "all" if f.surveys is None else ", ".join(f.surveys)
        topics = [
            topic_name(f, suffix, prefix)
            for survey, suffix in suffixes.items()
            if f.supports(survey)
        ]
        publish = "whole alert" if f.publish is None else ", ".join(f.publish)
        lines.append(f"{f.name} {f.version}  [surveys: {surveys}]")
        if f.description:
            lines.append(f"  {f.description}")
        lines.append(f"  topics: {', '.join(topics) or '-'}")
        lines.append(f"  inputs: {', '.join(f.inputs) or '-'}")
        lines.append(f"  publish: {publish}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"

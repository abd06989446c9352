"""The plugin SPI: science-module declarations, contract checks and the entry-point registry.

Nothing here imports pyspark: modules are pandas functions, and the engine is the only
place that turns them into Spark UDFs (see ``design.md`` §3).

Writing a module in your own package::

    # my_package/rate.py
    import pandas as pd
    from fink_broker.plugins import science_module

    @science_module(
        name="fade_rate", version="1.0",
        inputs=["hist_mjd", "hist_mag"],               # canonical columns (surveys/fields.py)
        outputs=[("fade_rate", "double", "mag/d", "last-two-points magnitude rate")],
        surveys=None,                                  # every survey
    )
    def fade_rate(df: pd.DataFrame) -> pd.DataFrame:
        ...                                            # same index, exactly the outputs

    # my_package's pyproject.toml
    [project.entry-points."fink_broker.science_modules"]
    fade_rate = "my_package.rate:fade_rate"

Once the package is installed next to fink-broker, ``discover()`` finds it.
"""

from __future__ import annotations

from fink_broker.plugins.columns import DTYPES, ColumnSpec, null_series
from fink_broker.plugins.filters import (
    FILTER_GROUP,
    TOPIC_PREFIX,
    AlertFilter,
    alert_filter,
    describe_filters,
    discover_filters,
    filters_for,
    published_columns,
    run_filter,
    run_filter_with_policy,
    topic_name,
)
from fink_broker.plugins.module import (
    ContractError,
    FailurePolicy,
    ScienceModule,
    null_outputs,
    run_module,
    run_with_policy,
    science_module,
)
from fink_broker.plugins.registry import (
    SCIENCE_GROUP,
    PluginError,
    describe_modules,
    discover,
    module_signature,
    modules_for,
    resolve_order,
)

__all__ = [
    "DTYPES",
    "FILTER_GROUP",
    "SCIENCE_GROUP",
    "TOPIC_PREFIX",
    "AlertFilter",
    "ColumnSpec",
    "ContractError",
    "FailurePolicy",
    "PluginError",
    "ScienceModule",
    "alert_filter",
    "describe_filters",
    "describe_modules",
    "discover",
    "discover_filters",
    "filters_for",
    "module_signature",
    "modules_for",
    "null_outputs",
    "null_series",
    "published_columns",
    "resolve_order",
    "run_filter",
    "run_filter_with_policy",
    "run_module",
    "run_with_policy",
    "science_module",
    "topic_name",
]

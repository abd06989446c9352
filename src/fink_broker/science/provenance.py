"""Provenance columns: which broker and which science-module versions produced an alert.

Two kinds of provenance columns exist:

* constants of the code, emitted by the ``provenance`` module: ``fink_broker_version``
  (``fink_broker.__version__``) and ``fink_science_modules`` (``name=version`` pairs joined
  by ``;``, sorted, without ``provenance`` itself);
* processing times, which only the engine knows: :data:`ENGINE_COLUMNS`
  (``processing_start``, read as each alert enters the science step, and
  ``processing_end``, as the modules finish the Arrow batch holding it; Spark
  ``timestamp`` in UTC). They are declared here so that every schema derived from
  declarations has them, and the engine fills them.

The built-in ``provenance`` entry point lists every module installed in the worker's
environment. The engine, which knows the modules it actually runs, should use
:func:`provenance_module` with that list instead, so the column says what ran.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import pandas as pd

import fink_broker
from fink_broker.plugins import ColumnSpec, ScienceModule, module_signature, science_module

NAME = "provenance"
VERSION = "1.0"

OUTPUTS = (
    ColumnSpec("fink_broker_version", "string", "", "version of fink-broker that processed it"),
    ColumnSpec("fink_science_modules", "string", "", "science modules run, as name=version;..."),
)

#: columns the engine sets (declared here, never computed by a module)
ENGINE_COLUMNS = (
    ColumnSpec(
        "processing_start", "timestamp", "UTC", "when raw2science started processing the alert"
    ),
    ColumnSpec(
        "processing_end", "timestamp", "UTC", "when the science modules finished this alert's batch"
    ),
)


@functools.cache
def installed_signature() -> str:
    """Signature of every installed science module except this one (once per process)."""
    from fink_broker.plugins import discover

    return module_signature(m for m in discover().values() if m.name != NAME)


def _provenance_function(signature: Callable[[], str]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def provenance(df: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "fink_broker_version": [fink_broker.__version__] * len(df),
                "fink_science_modules": [signature()] * len(df),
            },
            index=df.index,
            dtype=object,
        )

    return provenance


def provenance_module(modules: Iterable[ScienceModule] | None = None) -> ScienceModule:
    """The provenance module for a given set of modules (None: all installed ones).

    ``alertId`` is its input only so that the engine's UDF has a column to size the batch.
    """
    if modules is None:
        signature = installed_signature
    else:
        fixed = module_signature(m for m in modules if m.name != NAME)
        signature = lambda: fixed  # noqa: E731 - a constant thunk
    return science_module(
        name=NAME,
        version=VERSION,
        inputs=["alertId"],
        outputs=OUTPUTS,
        description="Broker version and science-module versions that processed the alert.",
    )(_provenance_function(signature))


#: the built-in entry point (signature of every installed module)
provenance = provenance_module()

"""Documentation of every archived column: type from HBase, meaning from its declaration.

Types come from the archive's schema rows (what was really written); descriptions and
units come from where each column is declared: the survey's Avro schemas (``doc`` of each
field) for ``i:``, and for ``d:`` the canonical columns, the science modules' output
declarations, the provenance and the engine's own columns. Nothing is written twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from fink_broker.plugins import ColumnSpec, ScienceModule, discover
from fink_broker.science.provenance import ENGINE_COLUMNS
from fink_broker.science.provenance import OUTPUTS as PROVENANCE
from fink_broker.surveys.base import SurveyAdapter, alert_struct
from fink_broker.surveys.fields import CANONICAL_COLUMNS
from fink_broker.tables import layout as L

#: columns the engine adds outside any module (stream2raw and raw2science)
ENGINE_DOCS: dict[str, tuple[str, str]] = {
    "kafka_topic": ("", "Kafka topic the alert was read from"),
    "kafka_partition": ("", "Kafka partition of the alert"),
    "kafka_offset": ("", "Kafka offset of the alert in its partition"),
    "kafka_record": (
        "",
        "position of the alert in its Kafka message (a ZTF container may hold several)",
    ),
    "kafka_timestamp": ("UTC", "Kafka timestamp of the alert (survey publication time)"),
    "fink_ingest_time": ("UTC", "time stream2raw decoded the alert"),
    "fink_module_failures": ("", "science modules that failed on this alert, if any"),
    "night": ("", "observing night YYYYMMDD (UTC date of the observation)"),
    # the archive indexes it for /api/v1/anomaly; the module that writes it declares it too
    "anomaly_score": ("", "anomaly score (lower: more anomalous), listed by /api/v1/anomaly"),
}


def _record_fields(avro_type: Any) -> list[dict[str, Any]] | None:
    """Fields of a record type, looking through ``[record, "null"]`` unions."""
    options = avro_type if isinstance(avro_type, list) else [avro_type]
    for option in options:
        if isinstance(option, dict) and option.get("type") == "record":
            return option["fields"]
    return None


def survey_docs(adapter: SurveyAdapter) -> dict[str, str]:
    """Survey-column qualifier -> the survey's own description, from every schema version."""
    main = alert_struct(adapter)
    docs: dict[str, str] = {}
    for wire in adapter.wire_schemas():
        for field in json.loads(wire.json)["fields"]:
            if field.get("doc"):
                docs.setdefault(field["name"], field["doc"])
            for sub in _record_fields(field["type"]) or []:
                if sub.get("doc"):
                    docs.setdefault(
                        L.survey_qualifier(field["name"], sub["name"], main), sub["doc"]
                    )
    return docs


def fink_specs(survey: str, local: Iterable[ScienceModule] = ()) -> dict[str, ColumnSpec]:
    """``d:`` qualifier -> its declaration (canonical, modules, provenance, engine).

    ``local`` holds the modules an operator configured rather than installed (the
    ``xmatch_local`` module of ``fink catalogs add``): entry points do not list them.
    """
    specs: dict[str, ColumnSpec] = {c.name: c for c in CANONICAL_COLUMNS}
    for module in [*discover().values(), *local]:
        if module.supports(survey):
            specs.update({c.name: c for c in module.outputs})
    specs.update({c.name: c for c in (*PROVENANCE, *ENGINE_COLUMNS)})
    return specs


def column_docs(
    adapter: SurveyAdapter,
    types: Mapping[str, str],
    local: Iterable[ScienceModule] = (),
    survey_family: str = L.SURVEY_FAMILY,
) -> Iterator[dict[str, str]]:
    """One entry per archived column: name, family, Spark type, unit, description."""
    survey_doc = survey_docs(adapter)
    fink = fink_specs(adapter.name, local)
    for name in sorted(types):
        family, _, qualifier = name.partition(":")
        unit, doc = "", ""
        if family == survey_family:
            doc = survey_doc.get(qualifier, "")
        elif qualifier in fink:
            unit, doc = fink[qualifier].unit, fink[qualifier].description
        elif qualifier in ENGINE_DOCS:
            unit, doc = ENGINE_DOCS[qualifier]
        yield {"name": name, "family": family, "type": types[name], "unit": unit, "doc": doc}

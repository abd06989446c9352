"""Rubin alerts behind a schema id that lsst-alert-packet does not ship: stream2raw fetches
the writer schema from a real Confluent-API registry once, keeps it on disk, and decodes;
while the registry is down, an id it has not fetched goes to quarantine with the reason,
and every other alert still flows."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import fastavro
import pytest
from confluent_kafka import Producer

from fink_broker.infra import registry_local
from fink_broker.lake import Lake
from fink_broker.simulator.replay import AlertSource
from fink_broker.surveys import get_adapter
from fink_broker.surveys.rubin import lsst_schema, version_to_schema_id
from tests.integration.test_registry_local import _register
from tests.integration.test_stream2raw import drain, settings_for

pytestmark = pytest.mark.integration


def _behind(value: bytes, schema_id: int) -> bytes:
    """A Confluent-framed message with its schema id replaced."""
    return b"\x00" + struct.pack(">I", schema_id) + value[5:]


def _send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 10 * 2**20})
    for i, value in enumerate(values):
        producer.produce(topic, value=value, key=str(i).encode())
    assert producer.flush(60) == 0


def test_unknown_ids_come_from_the_registry_and_its_outage_is_quarantined(
    spark, local_kafka, datasim, tmp_path, fresh_registry_settings
):
    adapter = get_adapter("rubin")
    v10 = lsst_schema(version_to_schema_id("10.0"))
    registry_local.start_registry(fresh_registry_settings)
    url = registry_local.registry_url(fresh_registry_settings)
    # two ids of the registry's own numbering, neither of them an id the package ships
    first = _register(url, "fink-test-first", json.loads(v10.json))
    second = _register(url, "fink-test-second-value", {**json.loads(v10.json), "doc": "again"})
    shipped = {int(w.key) for w in adapter.accepted}
    assert first not in shipped and second not in shipped and first != second

    source = AlertSource(adapter, datasim / "rubin", schema_version="10.0")
    values = source.values
    half = len(values) // 2
    cache = tmp_path / "schemas"
    topic = "it_rubin_registry"
    settings = settings_for(
        local_kafka,
        tmp_path,
        "rubin",
        topic,
        schema_registry_url=url,
        schema_cache_dir=str(cache),
        schema_registry_retry_s=1.0,
    )
    _send(local_kafka.bootstrap, topic, [_behind(v, first) for v in values[:half]])
    drain(spark, settings)
    lake = Lake(settings.paths.root, "rubin")
    raw = spark.read.parquet(lake.raw)
    parsed = fastavro.parse_schema(json.loads(v10.json))
    want = {}
    for value in values[:half]:
        record = fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed)
        want[record["diaSourceId"]] = record["diaSource"]["psfFlux"]
    got = {r[0]: r[1] for r in raw.select("diaSourceId", "diaSource.psfFlux").collect()}
    assert got == want, "the registry's alerts are not those sent"
    assert (cache / f"{first}.avsc").is_file(), "the fetched schema is not kept on disk"

    # the registry goes down: the cached id still decodes, the unfetched one is quarantined
    registry_local.stop_registry(fresh_registry_settings)
    rest = values[half:]
    mixed = [_behind(v, first if i % 3 == 0 else second) for i, v in enumerate(rest)]
    package = AlertSource(adapter, datasim / "rubin").values[:10]  # shipped ids: no registry
    _send(local_kafka.bootstrap, topic, mixed + package)
    drain(spark, settings)
    archived = spark.read.parquet(lake.raw).count()
    via_second = sum(1 for i in range(len(rest)) if i % 3 != 0)
    assert archived == half + (len(rest) - via_second) + len(package)
    quarantine = spark.read.parquet(lake.quarantine).collect()
    assert len(quarantine) == via_second
    assert all(
        f"schema id {second} is not in lsst-alert-packet" in r["error"]
        and "registry could not give it" in r["error"]
        for r in quarantine
    ), quarantine[0]["error"]
    assert not Path(cache / f"{second}.avsc").exists()

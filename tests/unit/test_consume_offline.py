"""Pure parts of `fink consume`, the shared Kafka client config and the SASL broker config.

No broker here: decoding, file writing, error callbacks and the broker's properties are
checked directly; tests/integration/test_consume.py and test_kafka_sasl.py use real Kafka.
"""

from __future__ import annotations

import doctest
import io
import json
import logging
from pathlib import Path
from typing import Any

import fastavro
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import KafkaError

from fink_broker import kafka_clients
from fink_broker.config import KafkaSettings, Settings
from fink_broker.infra import kafka_local
from fink_broker.services import alert_files, consume, outgoing_reader
from fink_broker.services.alert_display import UndecodableError

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "alert",
    "namespace": "fink",
    "fields": [
        {"name": "objectId", "type": "string"},
        {"name": "candid", "type": "long"},
        {
            "name": "candidate",
            "type": {
                "type": "record",
                "name": "candidate",
                "fields": [
                    {"name": "jd", "type": "double"},
                    {"name": "ra", "type": "double"},
                    {"name": "dec", "type": "double"},
                    {"name": "magpsf", "type": "float"},
                    {"name": "sigmapsf", "type": "float"},
                    {"name": "fid", "type": "int"},
                ],
            },
        },
        {"name": "score", "type": ["null", "double"]},
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "kind", "type": {"type": "enum", "name": "kind", "symbols": ["SN", "AGN"]}},
    ],
}


def record(i: int, score: float | None = 0.5) -> dict[str, Any]:
    return {
        "objectId": f"ZTF24aa{i:05d}",
        "candid": 1000 + i,
        "candidate": {
            "jd": 2460400.5,
            "ra": 10.5,
            "dec": -3.25,
            "magpsf": 18.25,
            "sigmapsf": 0.125,
            "fid": 2,
        },
        "score": score,
        "when": 1_700_000_000_000_000 + i,
        "kind": "SN",
    }


def encode(rec: dict[str, Any], schema: dict[str, Any] = SCHEMA) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), rec)
    return buf.getvalue()


KEY = json.dumps(SCHEMA).encode()


def test_doctests() -> None:
    for module in (kafka_clients, alert_files, consume):
        result = doctest.testmod(module)
        assert result.failed == 0, module.__name__


# ------------------------------------------------------------------------------ decoding


def test_decoder_reads_the_schema_from_the_key_once() -> None:
    decoder = outgoing_reader.OutgoingDecoder()
    rec, schema = decoder.decode(KEY, encode(record(1)))
    assert rec["objectId"] == "ZTF24aa00001" and rec["candidate"]["fid"] == 2
    assert schema.name == "alert" and schema.key == KEY
    _, again = decoder.decode(KEY, encode(record(2)))
    assert again is schema  # parsed once per distinct key


def test_decoder_errors_are_undecodable_with_a_reason() -> None:
    decoder = outgoing_reader.OutgoingDecoder()
    with pytest.raises(UndecodableError, match="key is not an Avro schema"):
        decoder.decode(b"v1.2", encode(record(1)))
    with pytest.raises(UndecodableError, match="trailing bytes"):
        decoder.decode(KEY, encode(record(1)) + b"\x00\x01")
    with pytest.raises(UndecodableError, match="empty"):
        decoder.decode(KEY, b"")


def test_decoder_fallback_schema_for_keys_without_one() -> None:
    decoder = outgoing_reader.OutgoingDecoder(fallback=SCHEMA)
    rec, schema = decoder.decode(b"fink-2.0", encode(record(3)))
    assert rec["candid"] == 1003 and schema.key == b""


def test_summary_line_of_an_alert_and_of_a_few_columns() -> None:
    decoder = outgoing_reader.OutgoingDecoder()
    rec, schema = decoder.decode(KEY, encode(record(7)))
    line = consume.summary_line(consume.ConsumedAlert("fink_sn_ztf", 1, 42, schema, rec))
    assert line.startswith("fink_sn_ztf 1:42  ztf  object=ZTF24aa00007  alert=1007")
    assert "mjd=60400.00000" in line and "ra=10.500000" in line and "dec=-3.250000" in line
    assert line.endswith("r 18.25 ± 0.12 mag")
    small = consume.ConsumedAlert("t", 0, 1, schema, {"a": 1, "b": 2})
    assert consume.summary_line(small) == "t 0:1  alert: 2 fields (a, b)"


def test_default_group_and_consumer_config() -> None:
    assert consume.default_group(KafkaSettings(sasl_username="alice")) == "fink-consume-alice"
    config = consume.consumer_config(KafkaSettings(), group="g", from_beginning=True)
    assert config["auto.offset.reset"] == "earliest"
    assert config["enable.auto.commit"] is False
    assert callable(config["error_cb"])
    late = consume.consumer_config(KafkaSettings(), group="g", from_beginning=False)
    assert late["auto.offset.reset"] == "latest"


def test_outgoing_topics_are_read_on_the_output_cluster_when_configured() -> None:
    settings = Settings()
    assert consume.outgoing_kafka(settings) is settings.kafka
    out = getattr(settings, "output_kafka", None)
    if out is not None:  # the output cluster section exists in this config tree
        out.bootstrap_servers = "out:9092"
        assert consume.outgoing_kafka(settings) is out


# ------------------------------------------------------------------------------ files


def test_arrow_schema_keeps_avro_types() -> None:
    schema = alert_files.arrow_schema(SCHEMA)
    assert schema.field("candid").type == pa.int64()
    assert schema.field("candidate").type.field("magpsf").type == pa.float32()
    assert schema.field("candidate").type.field("fid").type == pa.int32()
    assert schema.field("score").type == pa.float64()
    assert schema.field("when").type == pa.timestamp("us", tz="UTC")
    assert schema.field("kind").type == pa.string()


def test_parquet_chunks_share_the_schema_even_when_a_chunk_is_all_null(tmp_path: Path) -> None:
    decoder = outgoing_reader.OutgoingDecoder()
    files = alert_files.AlertFiles(tmp_path, "parquet", chunk=3)
    for i in range(7):
        rec, schema = decoder.decode(KEY, encode(record(i, score=None if i < 3 else i / 2)))
        files.add("fink_sn_ztf", schema.key, schema.definition, rec)
    assert files.buffered == 1  # two chunks of 3 written
    (path, count), *_ = files.close().items()
    assert count == 7 and path.name.startswith("fink_sn_ztf.") and path.suffix == ".parquet"
    table = pq.read_table(path)
    assert table.num_rows == 7 and table.schema.field("score").type == pa.float64()
    assert table.column("score").to_pylist() == [None, None, None, 1.5, 2.0, 2.5, 3.0]


def test_a_schema_change_starts_a_new_file(tmp_path: Path) -> None:
    other = {**SCHEMA, "fields": [*SCHEMA["fields"], {"name": "extra", "type": "int"}]}
    with alert_files.AlertFiles(tmp_path, "avro") as files:
        files.add("t", KEY, SCHEMA, record(1))
        files.add("t", json.dumps(other).encode(), other, {**record(2), "extra": 5})
    assert len(list(tmp_path.glob("*.avro"))) == 2
    (second,) = tmp_path.glob("t.*.2.avro")
    with open(second, "rb") as handle:
        assert [r["extra"] for r in fastavro.reader(handle)] == [5]


def test_csv_flattens_records_and_writes_float32_short(tmp_path: Path) -> None:
    rec = {**record(1), "candidate": {**record(1)["candidate"], "magpsf": 18.100000381469727}}
    with alert_files.AlertFiles(tmp_path, "csv") as files:
        files.add("t", KEY, SCHEMA, rec)
        files.add("t", KEY, SCHEMA, record(2, score=None))
    (path,) = tmp_path.glob("*.csv")
    frame = pd.read_csv(path)
    assert list(frame.columns[:4]) == ["objectId", "candid", "candidate.jd", "candidate.ra"]
    assert "candidate.magpsf,candidate.sigmapsf" in path.read_text().splitlines()[0]
    assert path.read_text().splitlines()[1].count(",18.1,") == 1
    assert frame["score"].isna().tolist() == [False, True]


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not one of"):
        alert_files.AlertFiles(tmp_path, "json")  # type: ignore[arg-type]


# ------------------------------------------------------------------------- kafka_clients


def test_connection_config_moved_and_still_requires_the_password() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password_env="PW"
    )
    config = kafka_clients.connection_config(kafka, env={"PW": "s3cret"})
    assert config["sasl.password"] == "s3cret" and config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert "s3cret" not in json.dumps(kafka_clients.redacted(config))
    with pytest.raises(ValueError, match="SASL password"):
        kafka_clients.connection_config(kafka, env={})
    from fink_broker.simulator import kafka_producer

    assert kafka_producer.connection_config is kafka_clients.connection_config


def test_auth_errors_raise_and_other_errors_only_log(caplog: pytest.LogCaptureFixture) -> None:
    config = {"bootstrap.servers": "b:1", "sasl.username": "alice", "sasl.mechanism": "M"}
    callback = kafka_clients.fail_on_auth_error(config)
    with pytest.raises(kafka_clients.KafkaAuthError, match="'alice' with M on b:1: denied"):
        callback(KafkaError(KafkaError._AUTHENTICATION, "denied"))
    with caplog.at_level(logging.DEBUG, logger="fink_broker.kafka_clients"):
        callback(KafkaError(KafkaError._TRANSPORT, "reset"))
        callback(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.DEBUG, logging.WARNING]


# --------------------------------------------------------------------------- kafka_local


def test_sasl_listener_properties_hold_no_password() -> None:
    settings = Settings()
    settings.local_kafka.sasl_port = 9194
    plain = kafka_local.server_properties(settings)
    assert "SASL" not in plain
    props = dict(
        line.split("=", 1)
        for line in kafka_local.server_properties(settings, sasl=True).splitlines()
        if line and not line.startswith("#")
    )
    assert props["listeners"].split(",") == [
        "PLAINTEXT://127.0.0.1:9092",
        "SASL_PLAINTEXT://127.0.0.1:9194",
        "CONTROLLER://127.0.0.1:9093",
    ]
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    jaas = props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    assert jaas == "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    assert "SASL_PLAINTEXT:SASL_PLAINTEXT" in props["listener.security.protocol.map"]


def test_sasl_needs_a_user_and_the_offered_mechanism(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    with pytest.raises(kafka_local.KafkaStartError, match="user name"):
        kafka_local._sasl_password(settings)
    settings.kafka.sasl_username = "alice"
    settings.kafka.sasl_mechanism = "PLAIN"
    with pytest.raises(kafka_local.KafkaStartError, match="SCRAM-SHA-512 only"):
        kafka_local._sasl_password(settings)
    settings.kafka.sasl_mechanism = "SCRAM-SHA-512"
    settings.kafka.sasl_password_env = "FINK_TEST_UNIT_PW"
    monkeypatch.setenv("FINK_TEST_UNIT_PW", "pw")
    assert kafka_local._sasl_password(settings) == "pw"

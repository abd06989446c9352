"""Simulator without Kafka: batch planning, pacing, fresh ids, wire bytes and injections.

Tests on real alerts read ``../shared/datasim`` (never copied into the repository) and skip
only when that folder is absent. The engine runs against a fake producer here; the real
broker is exercised by ``tests/integration/test_simulator.py``.
"""

from __future__ import annotations

import io
import json
import struct
import time
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import KafkaError, KafkaException

from fink_broker.config import KafkaSettings, Settings
from fink_broker.simulator import cli
from fink_broker.simulator import kafka_producer as kp
from fink_broker.simulator.replay import (
    AlertSource,
    Injection,
    TokenBucket,
    bad_message,
    batch_start,
    field_value,
    interleave,
    iter_messages,
    plan_batches,
    replay,
)
from fink_broker.surveys import get_adapter
from fink_broker.surveys.base import iter_alert_files, read_alert_file

DATASIM = Path(__file__).resolve().parents[2].parent / "shared" / "datasim"
needs_datasim = pytest.mark.skipif(
    not DATASIM.is_dir(), reason=f"real alerts not found: {DATASIM} is absent"
)
SURVEYS = ("ztf", "rubin")


# ---------------------------------------------------------------- planning and pacing


@pytest.mark.parametrize(
    ("total", "nbatches", "sizes"),
    [(150, 3, [50, 50, 50]), (10, 3, [4, 3, 3]), (2, 4, [1, 1, 0, 0]), (0, 2, [0, 0])],
)
def test_plan_batches_is_contiguous_and_even(total: int, nbatches: int, sizes: list[int]) -> None:
    batches = plan_batches(total, nbatches)
    assert [len(b) for b in batches] == sizes
    assert [i for b in batches for i in b] == list(range(total))


def test_plan_batches_rejects_no_batch() -> None:
    with pytest.raises(ValueError, match="nbatches"):
        plan_batches(10, 0)


def test_batches_are_anchored_on_t0() -> None:
    assert [batch_start(10.0, i, 0.5) for i in range(4)] == [10.0, 10.5, 11.0, 11.5]


def test_token_bucket_paces_to_the_target_rate() -> None:
    bucket = TokenBucket(rate=1000.0, capacity=50.0, now=0.0)
    taken = sum(bucket.take(tick * 0.002) for tick in range(1, 501))  # one second, 2 ms ticks
    assert taken in (999, 1000)


def test_token_bucket_caps_bursts_after_a_stall() -> None:
    bucket = TokenBucket(rate=1000.0, capacity=50.0, now=0.0)
    assert bucket.take(10.0) == 50  # a 10 s stall is not caught up at once


def test_interleave_is_deterministic_and_complete() -> None:
    inject = [Injection("garbage", 3), Injection("truncated", 2)]
    first = interleave(100, inject, seed=7)
    assert first == interleave(100, inject, seed=7)
    assert first != interleave(100, inject, seed=8)
    assert sorted(first.values()).count("garbage") == 3
    assert len(first) == 5
    assert all(0 <= p < 105 for p in first)


def test_injection_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown injection"):
        Injection("bitflip", 1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- real alerts on the wire


def _source(survey: str, keep_records: bool = True) -> AlertSource:
    return AlertSource(get_adapter(survey), DATASIM / survey, keep_records=keep_records)


def _decode(survey: str, value: bytes) -> dict[str, Any]:
    """Decode a message as the broker does; raise on anything it would quarantine."""
    if survey == "ztf":
        records = list(fastavro.reader(io.BytesIO(value)))
        if len(records) != 1:
            raise ValueError(f"container holds {len(records)} records")
        return records[0]
    magic, schema_id = struct.unpack(">bI", value[:5])
    if magic != 0 or schema_id not in get_adapter("rubin").ids:
        raise ValueError(f"framing: magic {magic}, schema id {schema_id}")
    return _rubin_body(value)


def _lsst_v9_schema() -> dict[str, Any]:
    """lsst.v9_0 read straight from lsst-alert-packet, independently of the adapter."""
    import lsst.alert.packet as packet

    path = Path(packet.get_schema_root()) / "9" / "0" / "lsst.v9_0.alert.avsc"
    return fastavro.parse_schema(packet.Schema.from_file(str(path)).definition)


def _rubin_body(value: bytes) -> dict[str, Any]:
    body = io.BytesIO(value[5:])
    record = fastavro.schemaless_reader(body, _lsst_v9_schema(), None)
    if body.tell() != len(value) - 5:
        raise ValueError("trailing bytes after the record")
    return record


def _object_id(adapter: Any, record: dict[str, Any]) -> Any:
    """The object of an alert; Rubin Solar System alerts have diaObjectId 0 and an ssObjectId."""
    value = field_value(record, adapter.object_id)
    if not value and adapter.name == "rubin":
        value = ("ss", record["diaSource"]["ssObjectId"])
    assert value, f"alert without an object id: {field_value(record, adapter.alert_id)}"
    return value


@needs_datasim
def test_fresh_ids_are_unique_across_three_copies() -> None:
    """3 copies of the 150 real alerts: alert ids (keys) and object ids never collide."""
    for survey in SURVEYS:
        adapter = get_adapter(survey)
        source = _source(survey)
        n = len(source)
        keys, objects = [], []
        for copy in range(3):
            copy_objects = set()
            for j in range(n):
                key, value = source.message(copy * n + j)
                record = _decode(survey, value)
                assert key == str(field_value(record, adapter.alert_id)).encode()
                copy_objects.add(_object_id(adapter, record))
                keys.append(key)
            objects.append(copy_objects)
        assert len(set(keys)) == 3 * n, survey
        assert not (objects[0] & objects[1])
        assert not (objects[0] & objects[2])
        assert not (objects[1] & objects[2])
        # copy 0 goes out as published (a ZTF container unchanged: not encoded; a Rubin
        # record behind its version's id), copies 1 and 2 are encoded lazily
        published = 0 if adapter.framing == "avro_container" else n
        assert source.encoded == published + 2 * n


@needs_datasim
def test_ztf_messages_are_the_files_bytes_unchanged() -> None:
    source = _source("ztf")
    for path, value in zip(iter_alert_files(DATASIM / "ztf"), source.values, strict=True):
        assert value == path.read_bytes()


@needs_datasim
def test_rubin_messages_are_confluent_wire_format_with_schema_900() -> None:
    schema = _lsst_v9_schema()
    names = [f["name"] for f in schema["fields"]]
    source = _source("rubin")
    for path, value in zip(iter_alert_files(DATASIM / "rubin"), source.values, strict=True):
        assert value[:5] == b"\x00" + (900).to_bytes(4, "big")
        record, _ = read_alert_file(path)
        assert _rubin_body(value) == {k: record.get(k) for k in names}


@needs_datasim
@pytest.mark.parametrize("survey", SURVEYS)
def test_injected_garbage_and_truncated_messages_do_not_decode(survey: str) -> None:
    import random

    source = _source(survey, keep_records=False)
    rng = random.Random(3)
    for kind in ("garbage", "truncated"):
        for _ in range(25):
            value = bad_message(kind, rng, source)
            with pytest.raises(Exception):  # noqa: B017, PT011 - any decoder error will do
                _decode(survey, value)
            if survey == "rubin" and kind == "truncated":
                with pytest.raises(Exception):  # noqa: B017, PT011 - fastavro itself fails
                    _rubin_body(value)


@needs_datasim
def test_injected_unknown_schema_has_a_valid_body_and_an_unknown_id() -> None:
    import random

    source = _source("rubin", keep_records=False)
    value = bad_message("unknown_schema", random.Random(0), source)
    (schema_id,) = struct.unpack(">I", value[1:5])
    assert value[0] == 0
    assert schema_id == 9999
    assert schema_id not in get_adapter("rubin").ids
    assert _rubin_body(value)["diaSourceId"] > 0  # only the id is wrong
    with pytest.raises(ValueError, match="schema id 9999"):
        _decode("rubin", value)


@needs_datasim
def test_injected_messages_have_unique_recognisable_keys() -> None:
    source = _source("rubin", keep_records=False)
    inject = [Injection("garbage", 2), Injection("truncated", 2), Injection("unknown_schema", 2)]
    messages = list(iter_messages(source, 10, interleave(10, inject, seed=1), seed=1))
    keys = [k for k, _, _ in messages]
    assert len(messages) == 16
    assert len(set(keys)) == 16
    assert sorted(k for k, _, kind in messages if kind) == sorted(
        f"inject-{i.kind}-{n}".encode() for i in inject for n in range(2)
    )


# ---------------------------------------------------------------- the engine, fake producer


class _Msg:
    def __init__(self, topic: str, key: bytes, value: bytes) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value


class FakeProducer:
    """Acknowledges on poll/flush; fails the keys in ``fail``; records flush boundaries."""

    def __init__(self, fail: set[bytes] | None = None, refuse: set[bytes] | None = None) -> None:
        self.fail = fail or set()
        self.refuse = refuse or set()
        self.pending: list[tuple[_Msg, Any]] = []
        self.sent: list[_Msg] = []
        self.produce_times: list[float] = []
        self.flushed_at: list[int] = []

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
        if key in self.refuse:  # as librdkafka does for a message over message.max.bytes
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        msg = _Msg(topic, key, value)
        self.pending.append((msg, on_delivery))
        self.sent.append(msg)
        self.produce_times.append(time.monotonic())

    def _deliver(self) -> int:
        done, self.pending = self.pending, []
        for msg, callback in done:
            callback("KafkaError{code=MSG_SIZE_TOO_LARGE}" if msg.key() in self.fail else None, msg)
        return len(done)

    def poll(self, timeout: float) -> int:
        if not self.pending:
            time.sleep(timeout)
        return self._deliver()

    def flush(self, timeout: float) -> int:
        self._deliver()
        self.flushed_at.append(len(self.sent))
        return 0

    def __len__(self) -> int:
        return len(self.pending)


@needs_datasim
def test_replay_batches_with_interval_and_injections() -> None:
    fake, progress = FakeProducer(), []
    inject = [Injection("garbage", 1), Injection("truncated", 2)]
    summary = replay(
        Settings(),
        survey="ztf",
        folder=DATASIM / "ztf",
        topic="t",
        nbatches=3,
        interval=0.1,
        repeat=2,
        nalerts=60,
        inject=inject,
        producer=fake,
        progress=progress.append,
    )
    assert (summary.alerts, summary.bad_total, summary.batches) == (60, 3, 3)
    assert {k: v for k, v in summary.bad.items() if v} == {"garbage": 1, "truncated": 2}
    assert summary.ok
    assert summary.delivered == 63
    assert summary.delivery_errors == 0
    assert fake.flushed_at == [21, 42, 63]  # flushed at the end of every batch
    starts = [fake.produce_times[i] for i in (0, 21, 42)]
    assert starts[1] - starts[0] >= 0.09
    assert starts[2] - starts[0] >= 0.19
    assert [p.sent for p in progress] == [21, 42, 63]
    assert len({m.key() for m in fake.sent}) == 63
    assert summary.bytes == sum(len(m.value()) for m in fake.sent)
    assert summary.encoded == 10  # the 50 files go out as they are; 10 copies are encoded
    assert summary.encode_rate > 0


@needs_datasim
def test_replay_counts_failed_deliveries() -> None:
    first_key = _source("ztf", keep_records=False).keys[0]
    summary = replay(
        Settings(),
        survey="ztf",
        folder=DATASIM / "ztf",
        topic="t",
        producer=FakeProducer(fail={first_key}),
    )
    assert summary.delivery_errors == 1
    assert summary.delivered == 49
    assert not summary.ok
    assert "MSG_SIZE_TOO_LARGE" in summary.errors[0]


@needs_datasim
def test_replay_counts_messages_refused_locally() -> None:
    keys = _source("ztf", keep_records=False).keys
    fake = FakeProducer(refuse={keys[3]})
    summary = replay(Settings(), survey="ztf", folder=DATASIM / "ztf", topic="t", producer=fake)
    assert summary.delivery_errors == 1
    assert summary.delivered == 49
    assert not summary.ok
    assert str(keys[3]) in summary.errors[0]


@needs_datasim
def test_replay_rate_mode_paces_messages() -> None:
    fake = FakeProducer()
    summary = replay(
        Settings(), survey="rubin", folder=DATASIM / "rubin", topic="t", rate=400.0, producer=fake
    )
    assert summary.alerts == 100
    assert summary.ok
    span = fake.produce_times[-1] - fake.produce_times[0]
    assert 0.18 <= span <= 1.5  # 100 messages at 400/s, minus one burst of 20


def test_replay_rejects_inconsistent_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rate"):
        replay(Settings(), survey="ztf", folder=tmp_path, rate=10.0, nbatches=2)
    with pytest.raises(ValueError, match="repeat"):
        replay(Settings(), survey="ztf", folder=tmp_path, repeat=0)


@needs_datasim
def test_unknown_schema_injection_is_rubin_only() -> None:
    with pytest.raises(ValueError, match="Rubin only"):
        replay(
            Settings(),
            survey="ztf",
            folder=DATASIM / "ztf",
            topic="t",
            inject=[Injection("unknown_schema", 1)],
            producer=FakeProducer(),
        )


# ---------------------------------------------------------------- config and CLI


def test_producer_config_reads_the_sasl_password_from_the_environment() -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL", sasl_username="fink", sasl_password_env="MY_PW"
    )
    config = kp.producer_config(kafka, compression="lz4", env={"MY_PW": "s3cret"})
    assert config["sasl.password"] == "s3cret"
    assert config["sasl.username"] == "fink"
    assert config["message.max.bytes"] == 10 * 1024 * 1024
    assert config["compression.type"] == "lz4"
    assert config["linger.ms"] == 20
    assert "s3cret" not in json.dumps(kp.redacted(config))
    with pytest.raises(ValueError, match="SASL password"):
        kp.producer_config(kafka, env={})


def test_plaintext_config_has_no_sasl() -> None:
    config = kp.producer_config(KafkaSettings(bootstrap_servers="b:1"))
    assert config["compression.type"] == "none"
    assert not any(k.startswith("sasl.") for k in config)


def test_cli_help_lists_every_option() -> None:
    text = cli.build_parser().format_help()
    for option in (
        "--config",
        "--survey",
        "--datasim",
        "--topic",
        "--nalerts",
        "--nbatches",
        "--interval",
        "--rate",
        "--repeat",
        "--partitions",
        "--bootstrap",
        "--compression",
        "--inject-garbage",
        "--inject-truncated",
        "--inject-unknown-schema",
        "--seed",
    ):
        assert option in text


def test_cli_requires_an_alert_folder(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.build_parser().parse_args(["--survey", "ztf"])
    assert cli.run_from_args(args, Settings()) == cli.EXIT_USAGE
    assert "--datasim" in capsys.readouterr().err


@needs_datasim
def test_a_replay_that_skips_goes_on_where_an_earlier_one_stopped() -> None:
    """Two replays, of 70 alerts then 80 more with ``skip=70``, send the messages of one
    replay of 150: the second's fresh ids follow the first's, none is sent twice."""
    whole, first, rest = FakeProducer(), FakeProducer(), FakeProducer()
    common = {"survey": "ztf", "folder": DATASIM / "ztf", "topic": "t", "repeat": 3}
    replay(Settings(), nalerts=150, producer=whole, **common)
    replay(Settings(), nalerts=70, producer=first, **common)
    summary = replay(Settings(), nalerts=80, skip=70, producer=rest, **common)
    assert summary.alerts == 80
    keys = [m.key() for m in first.sent + rest.sent]
    assert keys == [m.key() for m in whole.sent] and len(set(keys)) == 150
    # the same alerts (a ZTF container's sync marker differs between two encodings)
    ids = [[r["candid"] for r in fastavro.reader(io.BytesIO(m.value()))] for m in rest.sent]
    assert ids == [
        [r["candid"] for r in fastavro.reader(io.BytesIO(m.value()))] for m in whole.sent[70:]
    ]
    with pytest.raises(ValueError, match="skip"):
        replay(Settings(), nalerts=1, skip=-1, producer=FakeProducer(), **common)

"""Messages no survey should send, for the quarantine and fuzz tests (``--inject-*``).

Each kind breaks one stage of the decode, so a test that injects all of them shows that
every stage quarantines what it cannot read, with its reason, and lets good alerts pass:

- ``garbage``: random bytes whose first byte is neither the Confluent magic (0) nor the
  ``O`` of the Avro container magic: fails at the framing stage in every survey;
- ``truncated``: a real encoded alert cut at a random length (for containers, never right
  after the header, which would leave a valid empty container);
- ``unknown_schema``: a valid Rubin body behind an unregistered schema id;
- ``empty``: a message of zero bytes; ``null_value``: a Kafka record without a value;
- ``random_5mb``: 5 MB of random bytes (a size no alert has);
- ``wrong_magic``: a real alert whose first byte is changed (Confluent magic 1, or a
  container magic ``Obj\\x02``);
- ``deflate_bomb`` (ZTF): a container of a few kB whose deflate block inflates to 256 MB,
  beyond ``stream2raw.max_decoded_mb``;
- ``nan_time``: a real alert whose observation time is NaN.
"""

from __future__ import annotations

import copy
import random
import struct
import typing
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

from fink_broker.surveys.base import SurveyAdapter, container_bytes, record_writer

InjectionKind = Literal[
    "garbage",
    "truncated",
    "unknown_schema",
    "empty",
    "null_value",
    "random_5mb",
    "wrong_magic",
    "deflate_bomb",
    "nan_time",
]
INJECTION_KINDS: tuple[InjectionKind, ...] = typing.get_args(InjectionKind)

#: schema id of ``unknown_schema`` injections: valid Confluent framing, unregistered id
UNKNOWN_SCHEMA_ID = 9999
#: what a ``deflate_bomb`` inflates to
BOMB_BYTES = 256 * 2**20
#: the size of a ``random_5mb`` message
RANDOM_BYTES = 5 * 2**20

#: a source of real messages by index: (encoded value, the record it holds, the encoder of
#: a record with the message's own writer schema)
Sample = Callable[
    [int], tuple[bytes, Mapping[str, Any] | None, Callable[[Mapping[str, Any]], bytes]]
]


def bad_message(
    kind: InjectionKind, rng: random.Random, adapter: SurveyAdapter, sample: Sample, size: int
) -> bytes | None:
    """One message of ``kind`` for ``adapter``'s stream; ``sample`` gives real alerts."""
    if kind == "garbage":
        body = bytearray(rng.randbytes(rng.randint(16, 4096)))
        body[0] = rng.choice([b for b in range(1, 256) if b != ord("O")])
        return bytes(body)
    if kind == "empty":
        return b""
    if kind == "null_value":
        return None
    if kind == "random_5mb":
        body = bytearray(rng.randbytes(RANDOM_BYTES))
        body[0] = 0xFF  # neither magic: framing rejects it without reading the rest
        return bytes(body)
    if kind == "deflate_bomb":
        if adapter.framing != "avro_container":
            raise ValueError(f"deflate_bomb needs Avro containers, not {adapter.name}")
        return deflate_bomb(adapter.accepted[0].json)
    value, record, encode = sample(rng.randrange(size))
    if kind == "truncated":
        return _truncated(value, rng)
    if kind == "wrong_magic":
        if value.startswith(b"Obj\x01"):
            return b"Obj\x02" + value[4:]
        return b"\x01" + value[1:]
    if kind == "unknown_schema":
        if adapter.framing != "confluent_wire":
            raise ValueError(
                f"unknown_schema injections need Confluent framing, not {adapter.name}"
            )
        ids = {int(w.key) for w in adapter.accepted}
        bad_id = UNKNOWN_SCHEMA_ID if UNKNOWN_SCHEMA_ID not in ids else max(ids) + 1
        return struct.pack(">bI", 0, bad_id) + value[5:]
    if kind == "nan_time":
        if record is None:
            raise ValueError("nan_time injections need the alert records (keep_records=True)")
        spoiled = copy.deepcopy(dict(record))
        *parents, leaf = adapter.time.split(".")
        holder: dict[str, Any] = spoiled
        for part in parents:
            holder = holder[part]
        holder[leaf] = float("nan")
        return encode(spoiled)
    raise ValueError(f"unknown injection kind {kind!r}")


def _truncated(value: bytes, rng: random.Random) -> bytes:
    header_end = -1
    if value.startswith(b"Obj\x01"):
        header_end = value.find(value[-16:]) + 16  # null codec: the sync marker ends it
    while True:
        cut = rng.randint(1, len(value) - 1)
        if cut != header_end:
            return value[:cut]


def deflate_bomb(schema_json: str, inflated: int = BOMB_BYTES) -> bytes:
    """A container with writer schema ``schema_json`` and one deflate block of ``inflated``
    zero bytes: a few hundred kB on the wire, which an unbounded inflater would allocate."""
    sync = bytes(range(16))
    meta = {b"avro.codec": b"deflate", b"avro.schema": schema_json.encode()}
    header = b"Obj\x01" + _long(len(meta))
    for key, val in meta.items():
        header += _long(len(key)) + key + _long(len(val)) + val
    header += _long(0) + sync
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(2**20)
    block = b"".join(squeeze.compress(chunk) for _ in range(inflated // len(chunk)))
    block += squeeze.flush()
    return header + _long(1) + _long(len(block)) + block + sync


def multi_record(adapter: SurveyAdapter, records: list[Mapping[str, Any]]) -> bytes:
    """One ZTF message holding several alerts (a container of ``records``)."""
    if adapter.framing != "avro_container":
        raise ValueError(f"multi-record messages are Avro containers, not {adapter.name}")
    return container_bytes(list(records), record_writer(adapter.accepted, records[0]).parsed)


def _long(n: int) -> bytes:
    """Avro's zigzag varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        if z < 0x80:
            out.append(z)
            return bytes(out)
        out.append((z & 0x7F) | 0x80)
        z >>= 7

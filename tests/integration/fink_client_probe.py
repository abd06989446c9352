"""Read Fink topics with the PyPI ``fink-client``'s own consumer and print what it decodes.

Run by ``test_fink_client.py`` with ``.venv-fink-client/bin/python`` (the client users
install, with its own dependency versions), never inside the broker's venv, so it imports
only the standard library and ``fink_client``. Output: one JSON line per alert,
``{"topic": ..., "alert": ...}``, in the canonical form of :func:`canonical`, which the test
also applies to its own decoding so the two are compared field by field.

Usage: ``python fink_client_probe.py BOOTSTRAP SURVEY COUNT TIMEOUT TOPIC [TOPIC ...]``
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import sys
import time
import uuid
from typing import Any


def jsonable(value: Any) -> Any:
    """JSON stand-ins for what Avro decodes to and JSON lacks (timestamps, bytes)."""
    if isinstance(value, dt.datetime):
        # fastavro returns aware UTC datetimes for timestamp-micros
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        # cutouts are tens of kB each: a digest compares them exactly at a fraction of the size
        digest = hashlib.sha256(value).digest()
        return {"bytes": len(value), "sha256": base64.b64encode(digest).decode()}
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def canonical(alert: dict[str, Any]) -> str:
    """One alert as canonical JSON text; text equality also holds for NaN fields."""
    return json.dumps(alert, default=jsonable, sort_keys=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap")
    parser.add_argument("survey", help="fink-client's survey name: ztf or lsst")
    parser.add_argument("count", type=int, help="stop after this many alerts")
    parser.add_argument("timeout", type=float, help="seconds before giving up")
    parser.add_argument("topics", nargs="+")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Consume ``count`` alerts as a fink-client user does; exit 2 if they do not all arrive."""
    from fink_client.consumer import AlertConsumer  # only in .venv-fink-client

    args = parse_args(argv)
    # the configuration keys fink-client documents (``fink_client_register``); no
    # username/password: the test broker's PLAINTEXT listener needs none
    config = {"bootstrap.servers": args.bootstrap, "group.id": f"probe-{uuid.uuid4().hex}"}
    deadline = time.monotonic() + args.timeout
    seen = 0
    with AlertConsumer(args.topics, config, survey=args.survey) as consumer:
        while seen < args.count and time.monotonic() < deadline:
            for topic, alert, key in consumer.consume(num_alerts=100, timeout=1.0):
                if topic is None:
                    continue
                # the client found the writer schema in the key, as Fink's outgoing format says
                assert json.loads(key)["type"] == "record", key[:80]
                print(json.dumps({"topic": topic, "alert": canonical(alert)}), flush=True)
                seen += 1
    if seen < args.count:
        print(f"fink-client read {seen} of {args.count} alerts", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

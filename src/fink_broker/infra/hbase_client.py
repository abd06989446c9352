"""Connections to HBase through its Thrift (v1) gateway, and creation of Fink's tables.

Every Python process that talks to HBase (the archive writer on Spark's Python workers, the
REST API, the tests) opens its connection here, from ``[hbase]`` settings alone, so a
laptop and a cluster differ by ``hbase.thrift_host`` only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import happybase
from thriftpy2.thrift import TException

from fink_broker.config import HBaseSettings, Settings
from fink_broker.errors import FinkError
from fink_broker.tables.layout import TableSpec

log = logging.getLogger(__name__)


class HBaseUnavailable(FinkError):
    """The Thrift gateway named by ``[hbase]`` cannot be reached or refused a request."""

    #: an outage: the supervisor of a service waits and starts its query again
    transient = True


def connect(hbase: HBaseSettings | Settings, *, timeout_s: float | None = None):
    """An open happybase connection to the configured Thrift gateway.

    Raises :class:`HBaseUnavailable` with the address and the settings to check when the
    gateway does not answer, instead of a bare socket error.
    """
    hb = hbase.hbase if isinstance(hbase, Settings) else hbase
    timeout = hb.timeout_s if timeout_s is None else timeout_s
    try:
        return happybase.Connection(
            host=hb.thrift_host,
            port=hb.thrift_port,
            timeout=int(timeout * 1000),
            transport=hb.transport,
            protocol=hb.protocol,
            autoconnect=True,
        )
    except (TException, OSError) as err:
        raise HBaseUnavailable(
            f"no HBase Thrift gateway answers on {hb.thrift_host}:{hb.thrift_port} ({err}); "
            "start one with `fink start hbase` or set hbase.thrift_host/thrift_port"
        ) from None


def hbase_answers(settings: Settings, *, timeout_s: float = 5.0) -> bool:
    """True if the gateway answers and HBase lists its tables (the master is up)."""
    try:
        connection = connect(settings, timeout_s=timeout_s)
    except HBaseUnavailable:
        return False
    try:
        connection.tables()
    except (TException, OSError):
        return False
    finally:
        connection.close()
    return True


def ensure_tables(connection, specs: Iterable[TableSpec]) -> list[str]:
    """Create the tables of ``specs`` that do not exist yet; return the names created.

    One version per cell: a re-written alert replaces its cells (idempotent archive), and
    HBase keeps no history of them.
    """
    existing = {name.decode() for name in connection.tables()}
    created = []
    for spec in specs:
        if spec.name in existing:
            continue
        families = {family: {"max_versions": 1} for family in spec.families}
        try:
            connection.create_table(spec.name, families)
        except TException as err:
            # another writer created it between our listing and our request
            if "TableExistsException" not in str(err) and "already exists" not in str(err):
                raise HBaseUnavailable(f"creating HBase table {spec.name} failed: {err}") from None
        created.append(spec.name)
        log.info("created HBase table %s (families %s)", spec.name, ", ".join(spec.families))
    return created


def drop_tables(connection, specs: Iterable[TableSpec]) -> list[str]:
    """Disable and delete the tables of ``specs`` that exist; return the names dropped."""
    existing = {name.decode() for name in connection.tables()}
    dropped = []
    for spec in specs:
        if spec.name in existing:
            try:
                connection.delete_table(spec.name, disable=True)
            except TException as err:
                raise HBaseUnavailable(f"dropping HBase table {spec.name} failed: {err}") from None
            dropped.append(spec.name)
            log.info("dropped HBase table %s", spec.name)
    return dropped

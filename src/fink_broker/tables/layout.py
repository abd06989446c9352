"""HBase layout of the science archive: tables, column families and row keys.

Pure data and pure functions (no HBase client, no Spark): the archive writer builds its row
keys on the JVM from the formats declared here, and the REST API builds its scans from the
same functions, so the two sides cannot drift apart.

Tables of one survey are named ``<namespace>_<survey>_<kind>``:

===========  ======================================  ========================================
kind         row key                                 content
===========  ======================================  ========================================
``alerts``   ``<objectId>_<mjd>``                    one row per alert: ``i:alert`` the survey
                                                     values, ``d:fink`` Fink's (canonical
                                                     columns, science modules, provenance),
                                                     each one Avro record; ``d:schema``
``pixel``    ``<hpx>_<mjd>_<objectId>``              cone-search index: HEALPix (nested,
                                                     order 10) pixel of the alert
``class``    ``<label>_<100000-mjd>_<objectId>``     latest alerts per Fink label, newest
                                                     first in a forward scan
``sso``      ``<name>_<mjd>_<objectId>``             alerts of a known Solar System object
``upper``    ``<objectId>_<mjd>``                    ZTF upper limits and Rubin forced
                                                     photometry of the alert histories
``cutouts``  ``<alertId>``                           the three image cutouts, once per alert
``schema``   ``<broker version>_<columns hash>``     the column types of each version written
===========  ======================================  ========================================

Times are MJD with 8 decimals (1 ms): a fixed width for every date since 1858-11-17+10000 d,
so keys sort by time. Re-archiving an alert rewrites the same keys: the archive is
idempotent. Index rows (``r:`` family) hold the alert's main-table key and the few values
their queries filter on, so a query reads the index, then the alerts it selected. The API
names columns ``family:qualifier`` (``i:magpsf``, ``d:mjd``) whatever cell holds them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: family of the survey's own alert values
SURVEY_FAMILY = "i"
#: family of Fink's added values: canonical columns, science outputs, provenance
FINK_FAMILY = "d"
#: family of the image cutouts (binary)
CUTOUT_FAMILY = "b"
#: family of index rows: main-table key and the values their queries filter on
INDEX_FAMILY = "r"
#: family of schema rows: one cell per archived column, its Spark type as value
SCHEMA_FAMILY = "c"
#: main-table cell of the survey's values: one Avro record (schema in the schema table)
SURVEY_RECORD = f"{SURVEY_FAMILY}:alert"
#: main-table cell of Fink's values: one Avro record
FINK_RECORD = f"{FINK_FAMILY}:fink"
#: main-table cell naming the schema row that describes the two records
SCHEMA_CELL = f"{FINK_FAMILY}:schema"
#: upper-table cell: one limit or forced-photometry point, as JSON
POINT_CELL = f"{INDEX_FAMILY}:point"
#: separator of the parts of a row key (Fink labels and MJD strings never contain it)
KEY_SEP = "_"
#: HEALPix resolution of the cone-search index: order 10 (nside 1024, 3.4 arcmin pixels), nested
#: ordering so that a disc is covered by few runs of consecutive pixel numbers
CONE_ORDER = 10
CONE_NSIDE = 2**CONE_ORDER
#: digits of a pixel number at that order (12 * 4**10 pixels < 10**8)
PIXEL_DIGITS = 8
#: format of MJD in row keys. Java's ``String.format`` (the writer) and Python (the API's
#: range bounds) agree on it but for exact ties at the 9th decimal; no lookup depends on
#: that, because index rows carry the main-table key they point to.
MJD_FORMAT = "%.8f"
#: inverted times count down from this, so newer alerts sort first
MJD_INVERSION = 100000.0
#: width of an inverted time: zero-padded, because it may fall below 10000
INVERTED_FORMAT = "%017.8f"
#: names of the cutouts, as in the survey schemas (ZTF ``cutoutScience``, ...)
CUTOUT_KINDS = ("Science", "Template", "Difference")

_NAMESPACE = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


class TableKind(enum.StrEnum):
    """The tables of one survey's archive."""

    ALERTS = "alerts"
    PIXEL = "pixel"
    CLASS = "class"
    SSO = "sso"
    UPPER = "upper"
    CUTOUTS = "cutouts"
    SCHEMA = "schema"


#: column families of each table
FAMILIES: dict[TableKind, tuple[str, ...]] = {
    TableKind.ALERTS: (SURVEY_FAMILY, FINK_FAMILY),
    TableKind.PIXEL: (INDEX_FAMILY,),
    TableKind.CLASS: (INDEX_FAMILY,),
    TableKind.SSO: (INDEX_FAMILY,),
    TableKind.UPPER: (INDEX_FAMILY,),
    TableKind.CUTOUTS: (CUTOUT_FAMILY, INDEX_FAMILY),
    TableKind.SCHEMA: (SCHEMA_FAMILY, INDEX_FAMILY),
}


#: Spark types of the index-row cells and of the fields of an upper-table point
INDEX_TYPES: dict[str, str] = {
    f"{INDEX_FAMILY}:{name}": dtype
    for name, dtype in (
        ("key", "string"),
        ("objectId", "string"),
        ("mjd", "double"),
        ("ra", "double"),
        ("dec", "double"),
        ("band", "string"),
        ("kind", "string"),
        ("maglim", "double"),
        ("flux", "double"),
        ("fluxerr", "double"),
    )
}


@dataclass(frozen=True)
class TableSpec:
    """One HBase table to create: its full name and its column families."""

    name: str
    families: tuple[str, ...]


@dataclass(frozen=True)
class ArchiveTables:
    """The table names of one survey under one namespace.

    >>> t = ArchiveTables("fink", "ztf")
    >>> t.name(TableKind.ALERTS), t.name("pixel")
    ('fink_ztf_alerts', 'fink_ztf_pixel')
    """

    namespace: str
    survey: str

    def __post_init__(self) -> None:
        if not _NAMESPACE.match(self.namespace):
            raise ValueError(
                f"hbase.namespace {self.namespace!r}: use letters and digits, starting with a "
                "letter (it prefixes HBase table names, joined by '_')"
            )

    def name(self, kind: TableKind | str) -> str:
        """Full HBase name of one table."""
        return f"{self.namespace}_{self.survey}_{TableKind(kind).value}"

    def specs(self) -> list[TableSpec]:
        """Every table of the archive, to create when missing."""
        return [TableSpec(self.name(kind), FAMILIES[kind]) for kind in TableKind]


def column(family: str, qualifier: str) -> str:
    """``family:qualifier``, the name of an HBase column and of an API column.

    >>> column(SURVEY_FAMILY, "magpsf")
    'i:magpsf'
    """
    return f"{family}:{qualifier}"


def survey_qualifier(struct: str | None, name: str, main_struct: str) -> str:
    """Qualifier of a survey field in ``i:``: bare for top-level fields and for the fields
    of the struct that carries the alert (ZTF ``candidate``, Rubin ``diaSource``), else
    ``<struct>.<field>``.

    >>> survey_qualifier("candidate", "magpsf", "candidate")
    'magpsf'
    >>> survey_qualifier("diaObject", "nDiaSources", "diaSource")
    'diaObject.nDiaSources'
    """
    if struct is None or struct == main_struct:
        return name
    return f"{struct}.{name}"


def flatten_survey(
    fields: Iterable[tuple[str, Any]],
    main_struct: str,
    struct_items: Callable[[Any], Iterable[tuple[str, Any]] | None],
) -> dict[str, Any]:
    """``i:`` qualifier -> value of the survey's top-level fields and of their structs.

    ``fields`` are (name, value) pairs of the alert's top level, ``struct_items`` returns
    the (name, value) pairs of a struct value and None for anything else. Top-level fields
    come first and win over a struct field of the same name (ZTF ``candid`` and
    ``candidate.candid`` hold the same id). The writer applies it to Spark types, the API
    to decoded records, so both name the columns alike.

    >>> items = lambda v: v.items() if isinstance(v, dict) else None
    >>> flatten_survey([("candid", 7), ("candidate", {"candid": 7, "jd": 2.5})], "candidate", items)
    {'candid': 7, 'jd': 2.5}
    >>> flatten_survey([("diaObject", {"ra": 1.0})], "diaSource", items)
    {'diaObject.ra': 1.0}
    """
    pairs = list(fields)
    out = {name: value for name, value in pairs if struct_items(value) is None}
    for name, value in pairs:
        for sub, sub_value in struct_items(value) or ():
            out.setdefault(survey_qualifier(name, sub, main_struct), sub_value)
    return out


def mjd_key(mjd: float) -> str:
    """An MJD as it appears in row keys.

    >>> mjd_key(58849.1234567891)
    '58849.12345679'
    """
    return MJD_FORMAT % mjd


def inverted_mjd_key(mjd: float) -> str:
    """A time that sorts newest first: ``100000 - mjd``, zero-padded to a fixed width.

    >>> inverted_mjd_key(60000.5) < inverted_mjd_key(59000.5)
    True
    >>> inverted_mjd_key(60000.5)
    '00039999.50000000'
    """
    return INVERTED_FORMAT % (MJD_INVERSION - mjd)


def pixel_key(pixel: int) -> str:
    """A HEALPix pixel number, zero-padded so that keys sort by pixel.

    >>> pixel_key(1234)
    '00001234'
    """
    return f"{int(pixel):0{PIXEL_DIGITS}d}"


def sso_key(name: str) -> str:
    """A Solar System object's name as it leads index keys: no spaces, lower case.

    ``2010 UB100``, ``2010UB100`` and ``2010ub100`` find the same rows.

    >>> sso_key(" 2010 UB100 ")
    '2010ub100'
    """
    return re.sub(r"\s+", "", name).lower()


def object_prefix(object_id: str) -> bytes:
    """Scan prefix of every main-table (and upper-table) row of one object.

    The separator ends the prefix, so object ``1234`` does not also match ``12345``.

    >>> object_prefix("ZTF20aaelulu")
    b'ZTF20aaelulu_'
    """
    return f"{object_id}{KEY_SEP}".encode()


def schema_key(broker_version: str, columns_hash: str) -> str:
    """Row key of the schema row of one broker version and column set."""
    return f"{broker_version}{KEY_SEP}{columns_hash}"

"""HBase layout of the science archive: tables, column families and row keys.

Pure data and pure functions (no HBase client, no Spark): the archive writer builds its row
keys on the JVM from the formats declared here, and the REST API builds its scans from the
same functions, so the two sides cannot drift apart.

Tables of one survey are named ``<namespace>_<survey>_<kind>``; ``·`` below is the key
separator :data:`KEY_SEP`, the NUL byte:

==============  ===================================  =====================================
kind            row key                              content
==============  ===================================  =====================================
``alerts``      ``<objectId>·<mjd>``                 one row per alert: the survey values
                                                     (``i:alert`` for ZTF, ``r:alert`` for
                                                     Rubin) and Fink's (``d:fink`` /
                                                     ``f:fink``), each one Avro record, and
                                                     the schema key (``d:schema``)
``pixel``       ``<hpx>·<mjd>·<objectId>``           cone-search index: HEALPix (nested,
                                                     order 10) pixel of the alert
``class``       ``<label>·<100000-mjd>·<objectId>``  latest alerts per Fink label, newest
                                                     first in a forward scan
``tag``         ``<filter>·<100000-mjd>·<objectId>`` latest alerts passing each filter
``anomaly``     ``<100000-mjd>·<objectId>``          alerts flagged by ``anomaly_score``
``sso``         ``<name>·<mjd>·<objectId>``          alerts of a known Solar System object
``upper``       ``<objectId>·<mjd>·<kind>``          the alert histories: ZTF upper limits
                                                     and earlier detections, Rubin forced
                                                     photometry, each item as the survey
                                                     sent it
``names``       ``<name, lower case>·<objectId>``    what the resolver knows: alert ids,
                                                     catalogue counterparts, SSO names
``statistics``  ``<night>``                          counts of the archived alerts, one
                                                     cell per science file
``cutouts``     ``<alertId>``                        the three image cutouts, once per alert
``schema``      ``<broker version>·<columns hash>``  the column types of each version written
==============  ===================================  =====================================

The separator is NUL because no identifier holds it: ZTF ids are letters and digits, Rubin
ids digits, replay copies add ``_k``, and ``_`` (Fink's own separator) made
``ZTF20aaelulu`` a key prefix of ``ZTF20aaelulu_1``. NUL also sorts below every other
byte, so the rows of one object come before those of any longer id it prefixes. An id
that does contain NUL is keyed by its alert id instead (:data:`ALERT_KEY_PREFIX`), like an
alert without object id; the API refuses such ids (400).

Times are MJD with 8 decimals (1 ms): a fixed width for every date since 1858-11-17+10000 d,
so keys sort by time. Re-archiving an alert rewrites the same keys: the archive is
idempotent. Index rows (``r:`` family) hold the alert's main-table key and the few values
their queries filter on, so a query reads the index, then the alerts it selected. The API
names columns ``family:qualifier`` (``i:magpsf``, ``d:mjd``; Rubin ``r:psfFlux``,
``f:mjd``) whatever cell holds them.

Tables written before the NUL separator and the Rubin ``r``/``f`` families (layout 1)
are neither read nor extended by this version (layout :data:`LAYOUT_VERSION`, recorded in
each schema row): ``fink archive --rebuild`` drops them and archives every night of the
science archive again, see the README's *Migrating an archive*.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: family of the survey's own alert values (ZTF; each survey declares its own, see
#: :class:`Families`)
SURVEY_FAMILY = "i"
#: family of Fink's added values: canonical columns, science outputs, provenance (ZTF)
FINK_FAMILY = "d"
#: version of this layout, recorded in each schema row: 2 = NUL key separator, Rubin
#: families ``r``/``f``, tables ``tag``, ``anomaly``, ``names`` and ``statistics``
LAYOUT_VERSION = 2
#: family of the image cutouts (binary)
CUTOUT_FAMILY = "b"
#: family of index rows: main-table key and the values their queries filter on
INDEX_FAMILY = "r"
#: family of schema rows: one cell per archived column, its Spark type as value
SCHEMA_FAMILY = "c"
#: family of the API's computed columns (``v:classification``, ``v:lapse``...), never stored
COMPUTED_FAMILY = "v"
#: upper-table cell: one history item as the survey sent it, as JSON
POINT_CELL = f"{INDEX_FAMILY}:point"
#: separator of the parts of a row key: NUL, which no survey id holds (module docstring)
KEY_SEP = "\x00"
#: object part of the keys of alerts without an object: a Rubin source attributed to a
#: Solar System object (``sso-<name>``), or an alert without usable object id
#: (:data:`ALERT_KEY_PREFIX`). No survey id holds ``-``, so these never meet a real object id.
SSO_KEY_PREFIX, ALERT_KEY_PREFIX = "sso-", "alert-"
#: qualifier qualifiers of the main-table cells, in the survey's and Fink's families
_RECORD, _FINK, _SCHEMA = "alert", "fink", "schema"
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
    TAG = "tag"
    ANOMALY = "anomaly"
    SSO = "sso"
    UPPER = "upper"
    NAMES = "names"
    STATISTICS = "statistics"
    CUTOUTS = "cutouts"
    SCHEMA = "schema"


@dataclass(frozen=True)
class Families:
    """The two families of a survey's main table: its own values and Fink's.

    Fink names them ``i``/``d`` for ZTF and ``r``/``f`` for Rubin; the API's column names
    follow (``i:magpsf``, ``r:psfFlux``).

    >>> Families("r", "f").survey_record, Families("r", "f").schema_cell
    ('r:alert', 'f:schema')
    """

    survey: str = SURVEY_FAMILY
    fink: str = FINK_FAMILY

    @property
    def survey_record(self) -> str:
        """Main-table cell of the survey's values: one Avro record (schema in the schema table)."""
        return column(self.survey, _RECORD)

    @property
    def fink_record(self) -> str:
        """Main-table cell of Fink's values: one Avro record."""
        return column(self.fink, _FINK)

    @property
    def schema_cell(self) -> str:
        """Main-table cell naming the schema row that describes the two records."""
        return column(self.fink, _SCHEMA)


#: column families of each table but the main one (whose families the survey declares)
FAMILIES: dict[TableKind, tuple[str, ...]] = {
    TableKind.PIXEL: (INDEX_FAMILY,),
    TableKind.CLASS: (INDEX_FAMILY,),
    TableKind.TAG: (INDEX_FAMILY,),
    TableKind.ANOMALY: (INDEX_FAMILY,),
    TableKind.SSO: (INDEX_FAMILY,),
    TableKind.UPPER: (INDEX_FAMILY,),
    TableKind.NAMES: (INDEX_FAMILY,),
    TableKind.STATISTICS: (INDEX_FAMILY,),
    TableKind.CUTOUTS: (CUTOUT_FAMILY, INDEX_FAMILY),
    TableKind.SCHEMA: (SCHEMA_FAMILY, INDEX_FAMILY),
}


#: Spark types of the index-row cells and of the fields of an upper-table point
INDEX_TYPES: dict[str, str] = {
    f"{INDEX_FAMILY}:{name}": dtype
    for name, dtype in (
        ("key", "string"),
        ("objectId", "string"),
        ("alertId", "string"),
        ("mjd", "double"),
        ("ra", "double"),
        ("dec", "double"),
        ("band", "string"),
        ("kind", "string"),
        ("maglim", "double"),
        ("flux", "double"),
        ("fluxerr", "double"),
        ("first", "double"),
        ("list", "string"),
        ("name", "string"),
        ("source", "string"),
        ("score", "double"),
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
    #: the main table's families (the survey declares them: ``surveys/archive_shapes.py``)
    families: Families = Families()

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
        main = (self.families.survey, self.families.fink)
        return [
            TableSpec(self.name(kind), main if kind == TableKind.ALERTS else FAMILIES[kind])
            for kind in TableKind
        ]


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


def row_key(*parts: str) -> bytes:
    """Parts joined by the key separator, as the bytes HBase keys.

    >>> row_key("ZTF20aaelulu", mjd_key(58849.5))
    b'ZTF20aaelulu\\x0058849.50000000'
    """
    return KEY_SEP.join(parts).encode()


def key_parts(key: bytes) -> list[str]:
    """The parts of a row key (:func:`row_key` reversed).

    >>> key_parts(b"12345\\x0060000.10000000")
    ['12345', '60000.10000000']
    """
    return key.decode().split(KEY_SEP)


def object_prefix(object_id: str) -> bytes:
    """Scan prefix of every main-table (and upper-table) row of one object.

    The separator ends the prefix, so object ``1234`` does not also match ``12345``, nor
    ``ZTF20aaelulu`` its replay copy ``ZTF20aaelulu_1``.

    >>> object_prefix("ZTF20aaelulu")
    b'ZTF20aaelulu\\x00'
    """
    return f"{object_id}{KEY_SEP}".encode()


def is_object_key(obj: str) -> bool:
    """Whether the object part of a key names an object of the survey (not a Solar System
    source nor an alert keyed by its own id).

    >>> is_object_key("ZTF20aaelulu_1"), is_object_key("sso-k13l24l")
    (True, False)
    """
    return not obj.startswith((SSO_KEY_PREFIX, ALERT_KEY_PREFIX))


def prefix_stop(prefix: bytes) -> bytes:
    """The first key after every key that starts with ``prefix`` (a scan's stop row).

    >>> prefix_stop(b"ab\\x00")
    b'ab\\x01'
    """
    trimmed = prefix.rstrip(b"\xff")
    return trimmed[:-1] + bytes([trimmed[-1] + 1]) if trimmed else b""


def schema_key(broker_version: str, columns_hash: str) -> str:
    """Row key of the schema row of one broker version and column set."""
    return f"{broker_version}{KEY_SEP}{columns_hash}"

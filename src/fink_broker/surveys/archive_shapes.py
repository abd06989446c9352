"""How each survey's archive looks to a Fink API user: families, parameter names, routes.

Fink serves ZTF and Rubin from two hosts whose routes, parameters and column families
differ (``fink-object-api``): ZTF columns are ``i:`` (the survey's) and ``d:`` (Fink's),
Rubin's ``r:`` and ``f:``; ZTF names objects ``objectId``, Rubin ``diaObjectId``; Rubin's
``/objects`` is the diaObject summary and ``/sources`` its light curve, where ZTF's
``/objects`` is the light curve. Those differences are declared here, once, as data: the
archive writer takes the families and the history points, the API its routes and names.

>>> shape_of("rubin").families.survey, shape_of("ztf").object_param
('r', 'objectId')
>>> sorted(shape_of("rubin").routes - shape_of("ztf").routes)
['blocks', 'fp', 'sources', 'tags']
"""

from __future__ import annotations

from dataclasses import dataclass

from fink_broker.surveys.fields import Field
from fink_broker.surveys.names import RUBIN_NAME, ZTF_NAME
from fink_broker.surveys.ztf_fields import JD_MINUS_MJD
from fink_broker.tables.layout import ArchiveTables, Families


@dataclass(frozen=True)
class HistoryPoints:
    """One kind of rows of the ``upper`` table: items of an alert's history.

    ``canonical`` names a canonical History column of the survey (``uplim_mjd``...): its
    ``Epochs`` choose the items and its item transform gives their MJD, so the archive
    keeps exactly the points the canonical history holds, each as the survey sent it.
    """

    #: the API's ``d:tag`` of these points (Fink's words: upperlim, badquality)
    kind: str
    canonical: str


@dataclass(frozen=True)
class StatisticsNames:
    """Column names of ``/api/v1/statistics``, as each of Fink's hosts spells them."""

    #: the column holding the night, and the text before the night in it
    night: str
    night_prefix: str
    #: archived alerts, per band (``{band}``), per Fink label (``{label}``)
    alerts: str
    band: str
    label: str
    #: alerts of known Solar System objects
    sso: str


#: routes every survey serves
COMMON_ROUTES = frozenset(
    {"objects", "conesearch", "sso", "cutouts", "schema", "statistics", "resolver"}
    | {"skymap", "anomaly"}
)


@dataclass(frozen=True)
class ArchiveShape:
    """One survey's archive as Fink's API presents it."""

    #: the survey (``surveys.names``)
    name: str
    families: Families
    #: request parameters naming an object and an alert
    object_param: str
    alert_param: str
    #: raw field of the object's first detection, with its offset to MJD (ZTF JD)
    first_detection: Field
    histories: tuple[HistoryPoints, ...]
    #: the struct ``/objects`` summarises the object with (Rubin ``diaObject``); None: ZTF,
    #: whose ``/objects`` is the light curve
    summary_struct: str | None
    routes: frozenset[str]
    statistics: StatisticsNames
    #: what a cone search's dates select by default: ``across`` (any alert in them, as
    #: Fink's ZTF index keys alerts by their own time) or ``within`` (objects first
    #: detected in them, Fink's Rubin rule)
    cone_kind: str
    #: the title of the survey's columns in ``/api/v1/schema`` (Fink's words)
    schema_title: str
    #: further URL prefixes of the survey's routes (Fink's host says ``lsst``)
    aliases: tuple[str, ...] = ()

    def tables(self, namespace: str) -> ArchiveTables:
        """The survey's HBase tables under ``namespace``."""
        return ArchiveTables(namespace, self.name, self.families)


ZTF_SHAPE = ArchiveShape(
    name=ZTF_NAME,
    families=Families("i", "d"),
    object_param="objectId",
    alert_param="candid",
    first_detection=Field("candidate.jdstarthist", offset=-JD_MINUS_MJD),
    histories=(HistoryPoints("upperlim", "uplim_mjd"), HistoryPoints("badquality", "hist_mjd")),
    summary_struct=None,
    routes=COMMON_ROUTES | {"latests", "classes"},
    statistics=StatisticsNames(
        night="key:key",
        night_prefix=f"{ZTF_NAME}_",
        alerts="basic:sci",
        band="basic:n_{band}",
        label="class:{label}",
        sso="basic:sso",
    ),
    cone_kind="across",
    schema_title="ZTF original fields",
)

RUBIN_SHAPE = ArchiveShape(
    name=RUBIN_NAME,
    families=Families("r", "f"),
    object_param="diaObjectId",
    alert_param="diaSourceId",
    first_detection=Field("diaObject.firstDiaSourceMjdTai"),
    histories=(HistoryPoints("forced", "forced_mjd"),),
    summary_struct="diaObject",
    routes=COMMON_ROUTES | {"sources", "fp", "tags", "blocks"},
    statistics=StatisticsNames(
        night="f:night",
        night_prefix="",
        alerts="f:alerts",
        band="f:{band}",
        label="f:class_{label}",
        sso="f:is_sso",
    ),
    cone_kind="within",
    schema_title="Rubin original fields",
    aliases=("lsst",),
)

SHAPES: dict[str, ArchiveShape] = {s.name: s for s in (ZTF_SHAPE, RUBIN_SHAPE)}


def shape_of(survey: str) -> ArchiveShape:
    """The shape of a survey by name."""
    if survey not in SHAPES:
        raise ValueError(f"no archive shape for survey {survey!r}; known: {sorted(SHAPES)}")
    return SHAPES[survey]


def archive_tables(namespace: str, survey: str) -> ArchiveTables:
    """The HBase tables of ``survey`` under ``namespace``, with the survey's families."""
    return shape_of(survey).tables(namespace)

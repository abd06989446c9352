"""The parameters of every route, as Fink's API names them and with its defaults.

One model per route serves both methods: a GET reads it from the query string, a POST
from a JSON body (``requests.post(url, json={...})``, what Fink's examples do). Unknown
parameters are refused (422, naming them), not ignored: a misspelt ``colums`` would
otherwise silently return every column. Values are checked for type and range here, and
for meaning (dates, positions, ids) by :mod:`fink_broker.api.parsing`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Format = Literal["json", "csv", "parquet", "votable"]
#: ``cutout-kind`` of /objects: one kind, or All (Fink's default)
CutoutKind = Literal["Science", "Template", "Difference", "All"]
Stretch = Literal["sigmoid", "linear", "sqrt", "power", "log", "asinh"]
#: a date as Fink takes it: ISO 8601 text, or a JD or MJD as a number or as text
When = Annotated[str, Field(max_length=100)] | float | None
#: the largest ``n`` any route accepts (an answer is capped by ``api.max_rows`` anyway)
MAX_N = 10**6


class Params(BaseModel):
    """What every tabular route takes: ``columns`` and ``output-format``."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    columns: str | None = Field(
        None, max_length=20000, description="comma-separated family:qualifier columns"
    )
    output_format: Format = Field("json", alias="output-format")


class Paged(Params):
    """A route whose answer may exceed ``api.max_rows``: its pages follow a cursor."""

    cursor: str | None = Field(
        None, max_length=1000, description="the Fink-Next-Cursor of the previous page"
    )


class ZtfObjects(Paged):
    objectId: str = Field(max_length=100000, description="ZTF object id(s), comma-separated")
    withupperlim: bool = Field(
        False, description="add upper limits and bad-quality points; see d:tag"
    )
    withcutouts: bool = Field(False, description="add the cutouts as 2D arrays")
    cutout_kind: CutoutKind = Field("All", alias="cutout-kind")


class RubinObjects(Paged):
    diaObjectId: str = Field(max_length=100000, description="diaObjectId(s), comma-separated")


class RubinSources(Paged):
    diaObjectId: str = Field(max_length=100000, description="diaObjectId(s), comma-separated")


class Conesearch(Params):
    ra: float | str = Field(description="right ascension: degrees or hh:mm:ss")
    dec: float | str = Field(description="declination: degrees or dd:mm:ss")
    radius: float = Field(gt=0, description="radius, arcsec (at most api.max_radius_arcsec)")
    n: int = Field(1000, ge=1, le=MAX_N, description="at most n objects, nearest first")
    startdate: When = Field(None, description="UTC ISO, JD or MJD")
    stopdate: When = Field(None, description="UTC ISO, JD or MJD")
    window: float | None = Field(None, description="days after startdate (instead of stopdate)")
    kind: Literal["within", "across"] | None = Field(
        None,
        description="within: objects first detected in the dates (Rubin's default); across: "
        "any alert in them (ZTF's default)",
    )


class Latests(Params):
    class_: str = Field(alias="class", max_length=200, description="a label of /api/v1/classes")
    n: int = Field(10, ge=1, le=MAX_N)
    startdate: When = Field(None)
    stopdate: When = Field(None)
    trend: Literal["rising", "fading"] | None = Field(
        None, description="keep alerts brightening (rising) or fading since the previous one"
    )
    color: bool = Field(False, description="add v:g-r, v:rate(g-r) and their errors")


class Tags(Params):
    tag: str | None = Field(None, max_length=200, description="a filter; none: list the tags")
    n: int = Field(10, ge=1, le=MAX_N)
    startdate: When = Field(None)
    stopdate: When = Field(None)


class Anomaly(Params):
    n: int = Field(10, ge=1, le=MAX_N)
    start_date: When = Field(None, description="UTC YYYY-MM-DD, JD or MJD")
    stop_date: When = Field(None, description="UTC YYYY-MM-DD, JD or MJD")


class Sso(Paged):
    n_or_d: str = Field(max_length=100000, description="SSO name(s) or number(s), comma-separated")
    withEphem: bool = Field(False, description="Miriade ephemerides: not offline (400 if true)")
    withResiduals: bool = Field(False, description="sHG1G2 residuals: not offline (400 if true)")


class Cutouts(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")
    objectId: str | None = Field(None, max_length=100, description="object id (ZTF)")
    diaObjectId: str | None = Field(None, max_length=100, description="diaObjectId (Rubin)")
    candid: str | None = Field(None, max_length=100, description="ZTF alert; default: latest")
    diaSourceId: str | None = Field(None, max_length=100, description="Rubin alert")
    alertId: str | None = Field(None, max_length=100, description="alias of candid/diaSourceId")
    kind: CutoutKind = "Science"
    output_format: Literal["PNG", "FITS", "array"] = Field("PNG", alias="output-format")
    stretch: Stretch = "sigmoid"
    colormap: str | None = Field(None, max_length=50, description="a matplotlib colormap")
    pmin: float = Field(0.5, ge=0, le=100)
    pmax: float = Field(99.5, ge=0, le=100)
    convolution_kernel: Literal["gauss", "box"] | None = None


class Nothing(BaseModel):
    """Routes without parameters (classes, schema, blocks)."""

    model_config = ConfigDict(extra="forbid")


class Statistics(Params):
    date: str = Field(max_length=8, description="YYYYMMDD, YYYYMM, YYYY, or empty for every night")
    schema_: bool = Field(False, alias="schema", description="list the columns only")


class Resolver(Params):
    resolver: Literal["simbad", "ssodnet", "tns", "fink"] = Field(
        description="simbad: the cross-match catalogues; ssodnet: Solar System names; tns: a "
        "local catalogue named tns; fink: every local name (all answered offline)"
    )
    name: str | None = Field(None, max_length=200, description="a name (ZTF spelling)")
    name_or_id: str | None = Field(None, max_length=200, description="a name (Rubin spelling)")
    reverse: bool = Field(False, description="from an object id to its names")
    nmax: int = Field(10, ge=1, le=MAX_N, description="at most nmax names (>1: by prefix too)")


class Skymap(Paged):
    bayestar: str | None = Field(
        None, description="the sky map FITS (gzipped or not), base64 or as Python bytes text"
    )
    event_name: str | None = Field(None, max_length=100, description="GraceDB: not offline")
    credible_level: float = Field(gt=0, le=1, description="the credible region, e.g. 0.9")
    n_day_before: float = Field(1.0, ge=0, le=7)
    n_day_after: float = Field(6.0, ge=0, le=14)

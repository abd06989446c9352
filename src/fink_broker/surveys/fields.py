"""Canonical columns: the survey-agnostic vocabulary science modules read.

A science module declares inputs such as ``mjd``, ``band`` or ``hist_mag`` instead of
``candidate.jd`` or ``diaSource.midpointMjdTai``, so one module serves ZTF and Rubin. Each
survey maps the canonical names to its alert fields with a declarative table
(``ztf_fields.CANONICAL``, ``rubin_fields.CANONICAL``) built from the small transform objects
below. The engine turns each transform into a Spark expression; :func:`canonical_frame`
applies the very same table to decoded alert dicts in plain Python, for unit tests and for
the benchmark's bare-Python baseline.

Null semantics: a transform returns None when a field is missing, null or equal to one of
its sentinel values (ZTF writes -999 or the string ``"null"`` for "no value").

How each transform reads as Spark SQL (for the engine; ``c(p)`` is the column at path p):

* ``Field(p, offset, scale, null_if, cast)``: ``when(c(p).isin(null_if), null)
  .otherwise(c(p) * scale + offset)``, cast to string if asked (sentinels of another type
  than the column are skipped);
* ``Const(v)``: ``lit(v)`` cast to the canonical column's type;
* ``BandMap(p, m)``: a ``CASE`` or ``element_at(map(...), c(p))``;
* ``FluxToMag``/``FluxErrToMagErr``: ``-2.5 * log10(f) + zp`` / ``1.0857 * e / f`` when
  ``f > 0`` else null; ``MagToFlux``/``MagErrToFluxErr``: ``pow(10, -0.4 * (m - zp))``
  negated when the sign field is in ``negative``, and ``|flux| * err / 1.0857``;
* ``SkyOffset``: ``hypot(dra * cos(radians(dec)), ddec) * 3600``;
* ``Coalesce``: ``coalesce(...)`` of its options (paths missing from a schema are null);
* ``History(epochs, item, current)``: ``filter`` the list on ``require``/``require_null``,
  append a struct for the current epoch, ``array_sort`` by time, then ``transform`` each
  element with ``item`` (its paths are relative to a list element) or ``current``. All
  ``History`` columns sharing an ``Epochs`` must use the same filter and order.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from fink_broker.plugins.columns import ColumnSpec

#: 2.5 / ln(10): converts a relative flux error into a magnitude error.
MAG_PER_RELATIVE_FLUX = 2.5 / math.log(10.0)
#: AB zero point of a flux in nJy: m = -2.5 log10(f / nJy) + 31.4.
NJY_ZERO_POINT = 31.4

# ---------------------------------------------------------------------------------------
# The canonical columns (survey-agnostic declarations)

_D, _L, _S = "double", "array<double>", "array<string>"
CANONICAL_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("objectId", "string", "", "object identifier (Rubin diaObjectId as text)"),
    ColumnSpec("alertId", "long", "", "unique alert identifier (ZTF candid, Rubin diaSourceId)"),
    ColumnSpec("mjd", _D, "d", "observation time, MJD (ZTF UTC-based JD-2400000.5, Rubin TAI)"),
    ColumnSpec("ra", _D, "deg", "right ascension of the detection"),
    ColumnSpec("dec", _D, "deg", "declination of the detection"),
    ColumnSpec("band", "string", "", "photometric band: u g r i z y"),
    ColumnSpec(
        "mag",
        _D,
        "mag",
        "PSF magnitude of the difference flux (ZTF magpsf, of |flux|; Rubin null if flux <= 0)",
    ),
    ColumnSpec("magerr", _D, "mag", "1-sigma error of mag"),
    ColumnSpec("flux", _D, "nJy", "signed PSF difference flux"),
    ColumnSpec("fluxerr", _D, "nJy", "1-sigma error of flux"),
    ColumnSpec("ndethist", "int", "", "number of detections of the object so far (survey's count)"),
    ColumnSpec("ps1_sgscore", _D, "", "star/galaxy score of the nearest PS1 source (ZTF only)"),
    ColumnSpec(
        "ps1_distance_arcsec", _D, "arcsec", "distance to the nearest PS1 source (ZTF only)"
    ),
    ColumnSpec("sso_ref_name", "string", "", "known Solar System object associated by the survey"),
    ColumnSpec("sso_ref_distance_arcsec", _D, "arcsec", "distance to that object's ephemeris"),
    ColumnSpec("sso_ref_mag", _D, "mag", "predicted magnitude of that object"),
    ColumnSpec("hist_mjd", _L, "d", "times of previous detections and this one, ascending"),
    ColumnSpec("hist_band", _S, "", "bands of hist_mjd"),
    ColumnSpec("hist_mag", _L, "mag", "magnitudes of hist_mjd (null where flux <= 0)"),
    ColumnSpec("hist_magerr", _L, "mag", "errors of hist_mag"),
    ColumnSpec("hist_flux", _L, "nJy", "signed difference fluxes of hist_mjd"),
    ColumnSpec("hist_fluxerr", _L, "nJy", "errors of hist_flux"),
    ColumnSpec("uplim_mjd", _L, "d", "times of previous non-detections, ascending (ZTF only)"),
    ColumnSpec("uplim_band", _S, "", "bands of uplim_mjd"),
    ColumnSpec("uplim_maglim", _L, "mag", "5-sigma limiting magnitudes of uplim_mjd"),
    ColumnSpec("forced_mjd", _L, "d", "times of forced photometry, ascending (Rubin only)"),
    ColumnSpec("forced_band", _S, "", "bands of forced_mjd"),
    ColumnSpec("forced_flux", _L, "nJy", "forced PSF difference fluxes of forced_mjd"),
    ColumnSpec("forced_fluxerr", _L, "nJy", "errors of forced_flux"),
)
CANONICAL_NAMES: tuple[str, ...] = tuple(c.name for c in CANONICAL_COLUMNS)
_SPECS = {c.name: c for c in CANONICAL_COLUMNS}


def canonical_spec(name: str) -> ColumnSpec:
    """The declaration of one canonical column."""
    return _SPECS[name]


# ---------------------------------------------------------------------------------------
# Transforms: each reads fields of one record (an alert, or one item of a history list)


class Transform(Protocol):
    """A declarative mapping from alert fields to one value."""

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        """The value for one decoded record (None means null)."""
        ...


def get_path(record: Mapping[str, Any] | None, path: str) -> Any:
    """Follow a dotted path through nested dicts; None if any step is missing or null.

    >>> get_path({"candidate": {"jd": 1.5}}, "candidate.jd"), get_path({}, "a.b")
    (1.5, None)
    """
    value: Any = record
    for key in path.split("."):
        if value is None:
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class Field:
    """A field, optionally as ``raw * scale + offset``, cast, or null on sentinel values.

    >>> Field("candidate.jd", offset=-2400000.5).evaluate({"candidate": {"jd": 2458850.5}})
    58850.0
    >>> Field("ssnamenr", null_if=("null",)).evaluate({"ssnamenr": "null"}) is None
    True
    """

    path: str
    offset: float = 0.0
    scale: float = 1.0
    #: values that mean "no value" in this survey (e.g. ZTF's -999.0 and "null")
    null_if: tuple[Any, ...] = ()
    #: ``"string"`` renders integer identifiers as text
    cast: Literal["string"] | None = None

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        value = get_path(record, self.path)
        if value is None or value in self.null_if:
            return None
        if self.cast == "string":
            return str(value)
        if self.scale != 1.0 or self.offset != 0.0:
            return value * self.scale + self.offset
        return value


@dataclass(frozen=True)
class Const:
    """A constant; ``Const(None)`` declares that a survey does not provide the column."""

    value: Any = None

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True)
class BandMap:
    """A band code mapped to a band letter; unknown codes give null.

    >>> BandMap("fid", {1: "g", 2: "r", 3: "i"}).evaluate({"fid": 2})
    'r'
    """

    path: str
    mapping: Mapping[Any, str] = field(default_factory=dict)

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        return self.mapping.get(get_path(record, self.path))


@dataclass(frozen=True)
class FluxToMag:
    """AB magnitude of a flux in nJy; null when the flux is null or not positive.

    >>> round(FluxToMag("f").evaluate({"f": 3630.78}), 6)
    22.5
    """

    flux: str
    zero_point: float = NJY_ZERO_POINT

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        flux = get_path(record, self.flux)
        if flux is None or not flux > 0:
            return None
        return -2.5 * math.log10(flux) + self.zero_point


@dataclass(frozen=True)
class FluxErrToMagErr:
    """Magnitude error ``1.0857 * err / flux``; null when the flux is not positive."""

    flux: str
    flux_err: str

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        flux, err = get_path(record, self.flux), get_path(record, self.flux_err)
        if flux is None or err is None or not flux > 0:
            return None
        return MAG_PER_RELATIVE_FLUX * err / flux


@dataclass(frozen=True)
class MagToFlux:
    """Flux in nJy of a magnitude; negative when ``sign`` holds a negative-subtraction code.

    ZTF's ``isdiffpos`` is ``"t"``/``"1"`` for a positive and ``"f"``/``"0"`` for a negative
    difference; ``magpsf`` is always the magnitude of the absolute flux.

    >>> round(MagToFlux("m", sign="s").evaluate({"m": 22.5, "s": "f"}), 3)
    -3630.781
    """

    mag: str
    sign: str | None = None
    negative: tuple[str, ...] = ("f", "0")
    zero_point: float = NJY_ZERO_POINT

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        mag = get_path(record, self.mag)
        if mag is None:
            return None
        flux = 10.0 ** (-0.4 * (mag - self.zero_point))
        if self.sign is not None and get_path(record, self.sign) in self.negative:
            flux = -flux
        return flux


@dataclass(frozen=True)
class MagErrToFluxErr:
    """Flux error in nJy ``|flux| * magerr / 1.0857`` of a magnitude and its error."""

    mag: str
    mag_err: str
    zero_point: float = NJY_ZERO_POINT

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        mag, err = get_path(record, self.mag), get_path(record, self.mag_err)
        if mag is None or err is None:
            return None
        return 10.0 ** (-0.4 * (mag - self.zero_point)) * err / MAG_PER_RELATIVE_FLUX


@dataclass(frozen=True)
class SkyOffset:
    """Angular size of a small (dRA, dDec) offset in degrees, returned in arcsec.

    ``hypot(dra * cos(dec), ddec) * 3600``: the flat-sky formula is exact enough for
    the sub-arcminute residuals it is used on.
    """

    dra: str
    ddec: str
    dec: str

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        dra, ddec, dec = (get_path(record, p) for p in (self.dra, self.ddec, self.dec))
        if dra is None or ddec is None or dec is None:
            return None
        return math.hypot(dra * math.cos(math.radians(dec)), ddec) * 3600.0


@dataclass(frozen=True)
class Coalesce:
    """The first non-null value of several transforms."""

    options: tuple[Transform, ...]

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        for option in self.options:
            value = option.evaluate(record)
            if value is not None:
                return value
        return None


@dataclass(frozen=True)
class Epochs:
    """Which epochs a history is made of; shared by every ``History`` column of a survey.

    Items of ``list_path`` are kept when ``require`` is non-null (detections) or when
    ``require_null`` is null (non-detections); the current epoch is appended when
    ``current_time`` is set; everything is sorted by time (stable, so all history columns
    built from the same ``Epochs`` stay aligned element by element).
    """

    list_path: str
    time: str
    current_time: str | None = None
    require: str | None = None
    require_null: str | None = None

    def select(self, record: Mapping[str, Any]) -> list[tuple[float, Mapping[str, Any] | None]]:
        """(time, item) pairs in time order; item None stands for the current epoch."""
        pairs: list[tuple[float, Mapping[str, Any] | None]] = []
        for item in get_path(record, self.list_path) or ():
            if self.require is not None and get_path(item, self.require) is None:
                continue
            if self.require_null is not None and get_path(item, self.require_null) is not None:
                continue
            time = get_path(item, self.time)
            if time is not None:
                pairs.append((time, item))
        if self.current_time is not None:
            now = get_path(record, self.current_time)
            if now is not None:
                pairs.append((now, None))
        pairs.sort(key=lambda pair: pair[0])
        return pairs


@dataclass(frozen=True)
class History:
    """An array column over ``epochs``: ``item`` on list items, ``current`` on the alert."""

    epochs: Epochs
    item: Transform
    current: Transform | None = None

    def evaluate(self, record: Mapping[str, Any]) -> list[Any]:
        out = []
        for _, item in self.epochs.select(record):
            if item is None:
                out.append(None if self.current is None else self.current.evaluate(record))
            else:
                out.append(self.item.evaluate(item))
        return out


# ---------------------------------------------------------------------------------------
# Quality cuts

CutOp = Literal["==", "!=", ">=", ">", "<=", "<", "not_true"]
_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True)
class Cut:
    """A named alert-quality condition on one field; an alert passes when it holds.

    A null field fails a comparison (as in a Spark filter) but passes ``not_true`` (an
    unset flag is not a raised flag).

    >>> Cut("rb", "candidate.rb", ">=", 0.55).passes({"candidate": {"rb": 0.6}})
    True
    >>> Cut("bad", "flag", "not_true").passes({"flag": None})
    True
    """

    name: str
    path: str
    op: CutOp
    value: Any = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.op != "not_true" and self.op not in _OPS:
            raise ValueError(f"cut {self.name!r}: unknown operator {self.op!r}")

    def passes(self, record: Mapping[str, Any]) -> bool:
        value = get_path(record, self.path)
        if self.op == "not_true":
            return value is not True
        if value is None:
            return False
        return bool(_OPS[self.op](value, self.value))


def evaluate_cuts(cuts: Sequence[Cut], records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One boolean column per cut (True = passes), one row per record, plus ``passed_all``."""
    rows = [[cut.passes(r) for cut in cuts] for r in records]
    frame = pd.DataFrame(rows, columns=[c.name for c in cuts], dtype=bool)
    frame["passed_all"] = frame.all(axis=1) if len(cuts) else True
    return frame


# ---------------------------------------------------------------------------------------
# Applying a survey's table in plain Python


def survey_table(survey: str | Any) -> Mapping[str, Transform]:
    """The canonical table of a survey (an adapter, or a survey's name)."""
    if isinstance(survey, str):
        from fink_broker.surveys import get_adapter  # the adapters import this module

        survey = get_adapter(survey)
    return survey.canonical


def check_table(table: Mapping[str, Transform]) -> None:
    """A survey table must map every canonical column, and nothing else."""
    missing = [n for n in CANONICAL_NAMES if n not in table]
    extra = [n for n in table if n not in _SPECS]
    if missing or extra:
        raise ValueError(f"canonical table: missing {missing}, unknown {extra}")


def _column(values: list[Any], spec: ColumnSpec) -> pd.Series | list[Any]:
    """Values converted the way Arrow hands a column of this type to a pandas UDF."""
    element = spec.element_dtype
    if element == "double":
        return [None if v is None else np.asarray(v, dtype=np.float64) for v in values]
    if element is not None:
        return [None if v is None else np.asarray(v, dtype=object) for v in values]
    kinds = {"double": np.float64, "int": "Int32", "long": "Int64", "boolean": "boolean"}
    if spec.dtype in ("double", "float"):
        return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    if spec.dtype in kinds:
        return pd.array(values, dtype=kinds[spec.dtype])
    return values


def canonical_frame(
    records: Iterable[Mapping[str, Any]],
    survey: str | Any,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Apply a survey's canonical table to decoded alert dicts (fastavro output).

    Array columns hold numpy arrays (float64 for numbers, object for strings), double
    columns hold NaN for null, integer columns use pandas nullable types: the same shapes
    an Arrow-backed pandas UDF receives.
    """
    table = survey_table(survey)
    names = list(CANONICAL_NAMES if columns is None else columns)
    transforms = [(n, table[n]) for n in names]
    values: dict[str, list[Any]] = {n: [] for n in names}
    for record in records:
        for name, transform in transforms:
            values[name].append(transform.evaluate(record))
    data = {n: _column(values[n], _SPECS[n]) for n in names}
    return pd.DataFrame(data, columns=names)

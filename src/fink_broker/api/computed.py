"""Fink's ``v:`` columns: values computed at query time from the archived ones.

Fink's API adds them to the answers of its alert routes when no ``columns`` are asked (and
here also when a ``v:`` column is asked by name). They read only survey-agnostic values
(Fink's canonical ``mjd``, ``band``, ``mag``, ``magerr``, position and label), plus the
survey's field of the object's first detection (ZTF ``jdstarthist``, Rubin
``diaObject.firstDiaSourceMjdTai``), so both surveys get the same columns:

=====================  ==================================================================
column                 value
=====================  ==================================================================
``v:classification``   Fink's label of the alert (``finkclass`` when the classifier wrote
                       one, else ``fink_class``)
``v:lastdate``         the alert's time, ISO 8601 UTC
``v:firstdate``        the object's first detection, ISO 8601 UTC
``v:lapse``            days between the two
``v:constellation``    IAU constellation of the position
``v:rate``             magnitude change per day since the previous alert of the object in
                       the same band (``v:sigma(rate)`` its error)
``v:g-r``              g minus r of the nearest g and r alerts less than 0.3 d apart
                       (``v:sigma(g-r)``, and its change per day ``v:rate(g-r)``,
                       ``v:sigma(rate(g-r))``)
=====================  ==================================================================

Everything is vectorised over the frame (group-wise differences, one ``merge_asof``), not
computed object by object.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fink_broker.surveys.archive_shapes import ArchiveShape
from fink_broker.tables import layout as L

#: the largest time between a g and an r alert that make a colour (Fink's tolerance), days
COLOR_TOLERANCE_D = 0.3

#: computed column -> its description (for ``/api/v1/schema``)
COMPUTED: dict[str, str] = {
    "classification": "Fink label of the alert (finkclass, else fink_class)",
    "lastdate": "time of the alert, ISO 8601 UTC",
    "firstdate": "first detection of the object, ISO 8601 UTC",
    "lapse": "days between the first detection and the alert",
    "constellation": "IAU constellation of the alert's position",
    "rate": "magnitude change per day since the previous alert in this band",
    "sigma(rate)": "error of v:rate",
    "g-r": "g - r of the nearest g and r alerts less than 0.3 d apart",
    "sigma(g-r)": "error of v:g-r",
    "rate(g-r)": "change per day of v:g-r since the previous colour",
    "sigma(rate(g-r))": "error of v:rate(g-r)",
}
#: the computed columns of light curves (several alerts per object)
CURVE_ONLY = ("rate", "sigma(rate)", "g-r", "sigma(g-r)", "rate(g-r)", "sigma(rate(g-r))")
COLOR = ("g-r", "sigma(g-r)", "rate(g-r)", "sigma(rate(g-r))")


def v(name: str) -> str:
    return L.column(L.COMPUTED_FAMILY, name)


#: every computed column, ``v:`` names
COMPUTED_COLUMNS: tuple[str, ...] = tuple(v(n) for n in COMPUTED)


@dataclass(frozen=True)
class ComputedInputs:
    """Where one survey's computed columns read their inputs."""

    fink: str
    #: survey column of the first detection, and its offset to MJD
    first: str
    first_offset: float
    #: True when the survey's MJD are TAI (Rubin): dates are shown in UTC
    tai: bool

    @classmethod
    def of(cls, shape: ArchiveShape, main_struct: str, tai: bool) -> ComputedInputs:
        struct, _, name = shape.first_detection.path.rpartition(".")
        qualifier = L.survey_qualifier(struct or None, name, main_struct)
        first = L.column(shape.families.survey, qualifier)
        return cls(shape.families.fink, first, shape.first_detection.offset, tai)

    def col(self, name: str) -> str:
        return L.column(self.fink, name)

    def needs(self, names: Iterable[str]) -> list[str]:
        """The stored columns the computed ``names`` (``v:`` names) read."""
        wanted = {n.split(":", 1)[1] for n in names}
        out = [self.col("objectId"), self.col("mjd")]
        if wanted & {"classification"}:
            out += [self.col("fink_class"), self.col("finkclass")]
        if wanted & {"firstdate", "lapse"}:
            out.append(self.first)
        if "constellation" in wanted:
            out += [self.col("ra"), self.col("dec")]
        if wanted & set(CURVE_ONLY):
            out += [self.col("band"), self.col("mag"), self.col("magerr")]
        return out


def _iso(mjd: np.ndarray, tai: bool) -> np.ndarray:
    from astropy.time import Time

    out = np.full(mjd.shape, None, dtype=object)
    finite = np.isfinite(mjd)
    if finite.any():
        times = Time(mjd[finite], format="mjd", scale="tai" if tai else "utc")
        out[finite] = times.utc.iso
    return out


def _numbers(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _classification(frame: pd.DataFrame, inputs: ComputedInputs) -> pd.Series:
    label = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for name in (inputs.col("fink_class"), inputs.col("finkclass")):
        if name in frame.columns:
            label = frame[name].where(frame[name].notna(), label)
    return label


def _constellation(frame: pd.DataFrame, inputs: ComputedInputs) -> np.ndarray:
    from astropy.coordinates import SkyCoord, get_constellation

    ra, dec = _numbers(frame, inputs.col("ra")), _numbers(frame, inputs.col("dec"))
    out = np.full(len(frame), None, dtype=object)
    known = np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)
    if known.any():
        out[known] = get_constellation(SkyCoord(ra[known], dec[known], unit="deg"))
    return out


def _photometry(frame: pd.DataFrame, inputs: ComputedInputs) -> pd.DataFrame:
    """Object (as text), band, time, magnitude and error of each alert, on ``frame``'s index."""
    return pd.DataFrame(
        {
            "obj": frame[inputs.col("objectId")].astype(str).to_numpy(),
            "band": frame[inputs.col("band")].astype(object).to_numpy(),
            "mjd": _numbers(frame, inputs.col("mjd")),
            "mag": _numbers(frame, inputs.col("mag")),
            "err": _numbers(frame, inputs.col("magerr")),
        },
        index=frame.index,
    )


def _rates(frame: pd.DataFrame, inputs: ComputedInputs) -> pd.DataFrame:
    """v:rate and v:sigma(rate): differences to the previous alert in the same band."""
    data = _photometry(frame, inputs).sort_values(["obj", "band", "mjd"], kind="stable")
    groups = data.groupby(["obj", "band"], sort=False, dropna=False)
    dt = groups["mjd"].diff()
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = groups["mag"].diff() / dt
        sigma = np.hypot(data["err"], groups["err"].shift()) / dt
    return pd.DataFrame({v("rate"): rate, v("sigma(rate)"): sigma}).reindex(frame.index)


def _colors(frame: pd.DataFrame, inputs: ComputedInputs) -> pd.DataFrame:
    """v:g-r and its error and rate: each g alert with the nearest r alert of the object
    within :data:`COLOR_TOLERANCE_D`, then every alert with the nearest such colour."""
    data = _photometry(frame, inputs).assign(row=np.arange(len(frame))).reset_index(drop=True)
    data = data[np.isfinite(data["mjd"])].sort_values("mjd", kind="stable")
    empty = pd.DataFrame({v(n): np.full(len(frame), np.nan) for n in COLOR}, index=frame.index)
    g, r = data[data["band"] == "g"], data[data["band"] == "r"]
    if g.empty or r.empty:
        return empty
    pairs = pd.merge_asof(
        g,
        r[["obj", "mjd", "mag", "err"]],
        on="mjd",
        by="obj",
        direction="nearest",
        tolerance=COLOR_TOLERANCE_D,
        suffixes=("_g", "_r"),
    )
    pairs = pairs[pairs["mag_r"].notna() & pairs["mag_g"].notna()].copy()
    if pairs.empty:
        return empty
    pairs["gr"] = pairs["mag_g"] - pairs["mag_r"]
    pairs["sgr"] = np.hypot(pairs["err_g"], pairs["err_r"])
    pairs = pairs.sort_values(["obj", "mjd"], kind="stable")
    by_obj = pairs.groupby("obj", sort=False)
    dt = by_obj["mjd"].diff()
    with np.errstate(invalid="ignore", divide="ignore"):
        pairs["rgr"] = by_obj["gr"].diff() / dt
        pairs["srgr"] = np.hypot(pairs["sgr"], by_obj["sgr"].shift()) / dt
    colours = pairs[["obj", "mjd", "gr", "sgr", "rgr", "srgr"]].sort_values("mjd", kind="stable")
    nearest = pd.merge_asof(
        data[["obj", "mjd", "row"]],
        colours,
        on="mjd",
        by="obj",
        direction="nearest",
        tolerance=COLOR_TOLERANCE_D,
    )
    out = empty.copy()
    rows = nearest["row"].to_numpy()
    for name, source in zip(COLOR, ("gr", "sgr", "rgr", "srgr"), strict=True):
        values = np.full(len(frame), np.nan)
        values[rows] = nearest[source].to_numpy(dtype=float, na_value=np.nan)
        out[v(name)] = values
    return out


def add_computed(frame: pd.DataFrame, inputs: ComputedInputs, names: Iterable[str]) -> pd.DataFrame:
    """``frame`` with the computed columns ``names`` (``v:`` names) added."""
    wanted = [n.split(":", 1)[1] for n in names]
    out = frame.copy()
    if frame.empty:
        for name in wanted:
            out[v(name)] = pd.Series(dtype=object if name in _TEXT else float)
        return out
    mjd = _numbers(frame, inputs.col("mjd"))
    first = _numbers(frame, inputs.first) + inputs.first_offset
    if "classification" in wanted:
        out[v("classification")] = _classification(frame, inputs)
    if "lastdate" in wanted:
        out[v("lastdate")] = _iso(mjd, inputs.tai)
    if "firstdate" in wanted:
        out[v("firstdate")] = _iso(first, inputs.tai)
    if "lapse" in wanted:
        out[v("lapse")] = mjd - first
    if "constellation" in wanted:
        out[v("constellation")] = _constellation(frame, inputs)
    if {"rate", "sigma(rate)"} & set(wanted):
        rates = _rates(frame, inputs)
        out = out.assign(**{c: rates[c] for c in rates if c.split(":", 1)[1] in wanted})
    if set(COLOR) & set(wanted):
        colours = _colors(frame, inputs)
        out = out.assign(**{c: colours[c] for c in colours if c.split(":", 1)[1] in wanted})
    return out


#: computed columns holding text
_TEXT = frozenset({"classification", "lastdate", "firstdate", "constellation"})


def computed_types() -> dict[str, str]:
    """Spark-type names of the computed columns (for the output formats)."""
    return {v(n): "string" if n in _TEXT else "double" for n in COMPUTED}

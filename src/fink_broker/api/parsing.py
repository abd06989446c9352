"""Request values as Fink's API accepts them: dates, positions, identifiers, names.

Every function raises :class:`BadParameter` naming the parameter at fault, which the app
answers with HTTP 400; nothing here reaches HBase, so a malformed value never becomes a
scan (``²`` is a digit to ``str.isdigit`` but no identifier here).

>>> parse_time("2020-01-01T00:00:00", "startdate"), parse_time("2458849.5", "startdate")
(58849.0, 58849.0)
>>> parse_time("58849.5", "startdate")
58849.5
>>> [round(x, 9) for x in parse_position("12:30:00", "+10:00:00")]
[187.5, 10.0]
>>> alert_ids("1234,99", "candid")
[1234, 99]
"""

from __future__ import annotations

import math
import re

from fink_broker.errors import FinkError
from fink_broker.surveys.base import TAI_MINUS_UTC_SECONDS

#: object ids as the archive keys them: ZTF ``ZTF20aaelulu``, Rubin digits, replay copies
#: ``ZTF20aaelulu_3``, Rubin Solar System sources ``sso-<name>``; ASCII only
OBJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}", re.ASCII)
#: a 64-bit alert id (ZTF candid, Rubin diaSourceId): ASCII digits
ALERT_ID = re.compile(r"[0-9]{1,19}", re.ASCII)
#: names the resolver and the Solar System index look up: printable, no control character
NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
#: JD of MJD 0; a number above this is a Julian Date (Fink's rule for start/stop dates)
JD_MINUS_MJD = 2400000.5
_JD_THRESHOLD = 2400000.0
_DAY_S = 86400.0


class BadParameter(FinkError):
    """A request value that cannot be read; the message names the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def parse_time(value: str | float | None, parameter: str, *, tai: bool = False) -> float | None:
    """An ISO 8601 UTC date, a JD or an MJD (Fink's rule: a number above 2,400,000 is a
    JD) as an MJD in the survey's scale. A number is taken in that scale already; an ISO
    date is UTC, and moved to TAI when ``tai`` (Rubin)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number):
            raise BadParameter(parameter, f"{value!r} is not a finite date")
        mjd = number - JD_MINUS_MJD if number >= _JD_THRESHOLD else number
    else:
        from astropy.time import Time

        try:
            mjd = float(Time(str(value).strip(), scale="utc").mjd)
        except (ValueError, TypeError):
            raise BadParameter(
                parameter, f"{value!r} is neither an ISO date, a JD nor an MJD"
            ) from None
    if not -1e5 < mjd < 1e6:
        raise BadParameter(parameter, f"{value!r} is out of any survey's range")
    return mjd + TAI_MINUS_UTC_SECONDS / _DAY_S if tai and number is None else mjd


def time_window(
    startdate: str | None,
    stopdate: str | None,
    window: float | None = None,
    *,
    tai: bool = False,
) -> tuple[float | None, float | None]:
    """``[start, stop]`` MJD of a request; ``window`` (days) may replace ``stopdate``."""
    start = parse_time(startdate, "startdate", tai=tai)
    stop = parse_time(stopdate, "stopdate", tai=tai)
    if window is not None:
        if not math.isfinite(window) or window <= 0:
            raise BadParameter("window", "give a positive number of days")
        if start is None:
            raise BadParameter("window", "needs a startdate")
        if stop is not None:
            raise BadParameter("window", "give stopdate or window, not both")
        stop = start + window
    if start is not None and stop is not None and stop < start:
        raise BadParameter("stopdate", "is before startdate")
    return start, stop


def parse_position(ra: str | float, dec: str | float) -> tuple[float, float]:
    """Decimal degrees, or sexagesimal (``12:30:00 +10:00:00``, ``12h30m00s``) as Fink
    reads them: hours of right ascension."""
    text_ra, text_dec = str(ra).strip(), str(dec).strip()
    try:
        values = float(text_ra), float(text_dec)
    except ValueError:
        values = None
    if values is None:
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        try:
            if "h" in text_ra:
                coord = SkyCoord(text_ra, text_dec, frame="icrs")
            else:
                coord = SkyCoord(text_ra, text_dec, frame="icrs", unit=(u.hourangle, u.deg))
        except (ValueError, TypeError, u.UnitsError):
            raise BadParameter("ra", f"{text_ra!r} {text_dec!r} is not a position") from None
        values = float(coord.ra.deg), float(coord.dec.deg)
    ra_deg, dec_deg = values
    if not (math.isfinite(ra_deg) and 0.0 <= ra_deg < 360.0):
        raise BadParameter("ra", f"{text_ra!r} is not in [0, 360) degrees")
    if not (math.isfinite(dec_deg) and -90.0 <= dec_deg <= 90.0):
        raise BadParameter("dec", f"{text_dec!r} is not in [-90, 90] degrees")
    return ra_deg, dec_deg


def _split(value: str, parameter: str, limit: int) -> list[str]:
    items = [v.strip() for v in str(value).split(",") if v.strip()]
    if not items:
        raise BadParameter(parameter, "give at least one value")
    if len(items) > limit:
        raise BadParameter(parameter, f"{len(items)} values; at most {limit} per request")
    return items


def object_ids(value: str, parameter: str, limit: int) -> list[str]:
    """Comma-separated object ids, each checked, at most ``limit``."""
    ids = _split(value, parameter, limit)
    for item in ids:
        if not OBJECT_ID.fullmatch(item):
            raise BadParameter(parameter, f"{item[:80]!r} is not a valid object id")
    return list(dict.fromkeys(ids))


def alert_ids(value: str, parameter: str, limit: int = 1000) -> list[int]:
    """Comma-separated 64-bit alert ids (ASCII digits, below 2**63)."""
    out = []
    for item in _split(value, parameter, limit):
        if not ALERT_ID.fullmatch(item) or int(item) >= 2**63:
            raise BadParameter(parameter, f"{item[:40]!r} is not a 64-bit integer alert id")
        out.append(int(item))
    return out


def names(value: str, parameter: str, limit: int) -> list[str]:
    """Comma-separated names (Solar System objects, catalogue ids), no control character."""
    items = _split(value, parameter, limit)
    for item in items:
        if not NAME.fullmatch(item):
            raise BadParameter(
                parameter, f"{item[:40]!r} is not a name (1-100 printable characters)"
            )
    return items

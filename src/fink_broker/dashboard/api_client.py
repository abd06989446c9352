"""The dashboard's only calls to Fink's REST API: light curves and cutouts.

The API (``fink start api``) serves what the archive service wrote into HBase; the dashboard
asks it, server side, for the light curve of the object an operator selects
(``/api/v1/objects``) and for the cutouts of the latest alerts (``/api/v1/cutouts``), so the
browser talks to one origin only. When the API does not answer, or answers that HBase is
unreachable (503), :class:`ApiUnavailable` carries a sentence for the panel that needs it;
the rest of the page does not depend on the API.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from fink_broker.config import Settings
from fink_broker.errors import FinkError

log = logging.getLogger(__name__)

#: the columns of a light curve point (``withupperlim`` adds d:tag and d:maglim)
CURVE_COLUMNS = ("d:alertId", "d:mjd", "d:band", "d:mag", "d:magerr", "d:flux", "d:fluxerr")
KINDS = ("Science", "Template", "Difference")


class ApiUnavailable(FinkError):
    """The REST API did not answer, or cannot reach its archive; the message says which.

    ``status`` is the API's HTTP status when it answered (503: no archive; 400: a bad
    parameter), None when it did not answer at all.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def api_base_url(settings: Settings) -> str:
    """``dashboard.api_url``, else the API this configuration starts (``api.host:api.port``).

    >>> from fink_broker.config import load_settings
    >>> api_base_url(load_settings(None, env={}))
    'http://127.0.0.1:8000'
    """
    if settings.dashboard.api_url:
        return settings.dashboard.api_url.rstrip("/")
    return f"http://{settings.api.host}:{settings.api.port}"


class ApiClient:
    """GET requests to the REST API with a short timeout."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, route: str, params: dict[str, str], *, missing_ok: bool = False) -> bytes | None:
        """The body of a 200 answer; None for a 404 when ``missing_ok``."""
        url = f"{self.base_url}{route}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as answer:
                return answer.read()
        except urllib.error.HTTPError as err:
            if err.code == 404 and missing_ok:
                return None
            detail = _detail(err.read()) or err.reason
            if err.code == 503:
                message = f"the API cannot reach its archive: {detail}"
            else:
                message = f"the API answered {err.code} to {route}: {detail}"
            raise ApiUnavailable(message, err.code) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ApiUnavailable(f"no API at {self.base_url} ({reason})") from None

    def light_curve(self, object_id: str) -> list[dict[str, Any]]:
        """The alerts and upper limits of one object, oldest first (``d:`` columns)."""
        body = self._get(
            "/api/v1/objects",
            {"objectId": object_id, "withupperlim": "true", "columns": ",".join(CURVE_COLUMNS)},
        )
        return json.loads(body or b"[]")

    def cutout_png(self, alert_id: str, kind: str) -> bytes | None:
        """The PNG of one cutout, None when the archive has no such cutout."""
        if kind not in KINDS:
            raise ValueError(f"kind: one of {KINDS}, not {kind!r}")
        params = {"alertId": alert_id, "kind": kind, "output-format": "PNG"}
        return self._get("/api/v1/cutouts", params, missing_ok=True)

    def probe(self) -> None:
        """Raise :class:`ApiUnavailable` unless the API and its archive answer.

        The cheapest request that touches HBase: the cutout of an alert id that no
        survey uses, as an (empty) array. Fink's cutouts route answers 404 for an alert it
        does not hold: that answer came from the archive too, so it counts as up.
        """
        self._get("/api/v1/cutouts", {"alertId": "0", "output-format": "array"}, missing_ok=True)


def _detail(body: bytes) -> str:
    """The ``detail`` of a FastAPI error body, or the start of the body."""
    try:
        return str(json.loads(body).get("detail", ""))
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")

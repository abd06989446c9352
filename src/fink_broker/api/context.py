"""What every route of one survey shares: its store, its names, column selection, answers.

Built once per survey when the app is created (:func:`fink_broker.api.app.create_app`),
with the survey's adapter and archive shape, so no route asks which survey it serves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pandas as pd
from fastapi import Request
from fastapi.responses import Response

from fink_broker.api.computed import (
    COMPUTED,
    COMPUTED_COLUMNS,
    CURVE_ONLY,
    ComputedInputs,
    add_computed,
    computed_types,
)
from fink_broker.api.formats import render
from fink_broker.api.index_reads import SEPARATION, SEPARATION_DEGREE
from fink_broker.api.limits import Cursor
from fink_broker.api.parsing import BadParameter
from fink_broker.api.store import ArchiveStore
from fink_broker.config import ApiSettings
from fink_broker.surveys.base import SurveyAdapter
from fink_broker.tables import layout as L

#: header carrying the cursor of the next page
NEXT_CURSOR = "Fink-Next-Cursor"


@dataclass
class SurveyApi:
    """One survey's routes' shared state."""

    adapter: SurveyAdapter
    store: ArchiveStore
    limits: ApiSettings
    computed: ComputedInputs = field(init=False)

    def __post_init__(self) -> None:
        shape = self.store.shape
        self.shape = shape
        self.families = shape.families
        self.tai = self.adapter.time_kind == "mjd_tai"
        self.computed = ComputedInputs.of(shape, self.store.main_struct, self.tai)
        #: the survey's own column of the object id, alert id and time (``i:candid``...)
        self.object_column = self.survey_column(self.adapter.object_id)
        self.alert_column = self.survey_column(self.adapter.alert_id)
        self.time_column = self.survey_column(self.adapter.time)
        self.ra_column = self.survey_column(self.adapter.ra)
        self.dec_column = self.survey_column(self.adapter.dec)

    def survey_column(self, path: str) -> str:
        """The API column of a survey field given by its dotted path."""
        struct, _, name = path.rpartition(".")
        qualifier = L.survey_qualifier(struct or None, name, self.store.main_struct)
        return L.column(self.families.survey, qualifier)

    def fink(self, name: str) -> str:
        return L.column(self.families.fink, name)

    # -- columns ----------------------------------------------------------------------

    def _alias(self, name: str) -> str:
        """Rubin's columns also answer to the ``i:``/``d:`` names this API used before
        it followed Fink's ``r:``/``f:`` (documented aliases)."""
        family, _, qualifier = name.partition(":")
        aliases = {L.SURVEY_FAMILY: self.families.survey, L.FINK_FAMILY: self.families.fink}
        return L.column(aliases.get(family, family), qualifier)

    def selection(
        self, columns: str | None, known: Callable[[], dict[str, str]] | None = None
    ) -> tuple[list[str] | None, list[str]]:
        """(stored columns or None for all, computed ``v:`` columns) of a ``columns``
        parameter; an unknown name is a 400."""
        if columns is None or not columns.strip():
            return None, []
        types = (known or self.store.types)()
        stored, computed, unknown = [], [], []
        for raw in columns.split(","):
            name = raw.strip()
            if not name:
                continue
            if name in COMPUTED_COLUMNS or name in (SEPARATION, SEPARATION_DEGREE):
                computed.append(name)
                continue
            name = name if name in types else self._alias(name)
            (stored if name in types else unknown).append(name)
        if unknown:
            raise BadParameter("columns", f"unknown column(s) {unknown[:20]}; see /api/v1/schema")
        return list(dict.fromkeys(stored)), list(dict.fromkeys(computed))

    def alerts(
        self,
        fetch: Callable[[list[str] | None], pd.DataFrame],
        columns: str | None,
        *,
        curve: bool = False,
        extra: Sequence[str] = (),
    ) -> pd.DataFrame:
        """Alerts read by ``fetch(columns)`` with the computed columns: all of them when no
        ``columns`` is given (the light-curve ones, rate and colour, on ``curve`` routes and
        with ``extra``), else the ones asked."""
        stored, computed = self.selection(columns)
        computed = [c for c in computed if c in COMPUTED_COLUMNS]
        if stored is None:
            names = [
                L.column(L.COMPUTED_FAMILY, n)
                for n in COMPUTED
                if curve or n not in CURVE_ONLY or L.column(L.COMPUTED_FAMILY, n) in extra
            ]
            return add_computed(fetch(None), self.computed, names)
        computed = list(dict.fromkeys([*computed, *extra]))
        types = self.store.types()
        inputs = [c for c in self.computed.needs(computed) if c in types] if computed else []
        frame = fetch(list(dict.fromkeys([*stored, *inputs])))
        frame = add_computed(frame, self.computed, computed)
        keep = [*[c for c in self.store.always() if c not in stored], *stored, *computed]
        keep += [c for c in (SEPARATION_DEGREE, SEPARATION) if c in frame.columns]
        return frame[[c for c in dict.fromkeys(keep) if c in frame.columns]]

    # -- answers ----------------------------------------------------------------------

    def types(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Column types for the output formats: archived, computed, extras."""
        fixed = {
            self.fink("tag"): "string",
            SEPARATION: "double",
            SEPARATION_DEGREE: "double",
        }
        return {**self.store.types(), **computed_types(), **fixed, **(extra or {})}

    def answer(
        self,
        frame: pd.DataFrame,
        fmt: str,
        request: Request | None = None,
        cursor: Cursor | None = None,
        types: dict[str, str] | None = None,
    ) -> Response:
        """The response of ``frame`` in ``fmt``, with the next page's cursor if any."""
        if len(frame) > self.limits.max_rows:  # every route pages or caps before this
            raise AssertionError(f"{len(frame)} rows past the cap {self.limits.max_rows}")
        response = render(frame.reset_index(drop=True), fmt, self.types(types))
        if cursor is not None:
            token = cursor.encode()
            response.headers[NEXT_CURSOR] = token
            if request is not None and request.method == "GET":
                query = {k: v for k, v in request.query_params.items() if k != "cursor"}
                url = request.url.replace(query=urlencode({**query, "cursor": token}))
                response.headers["Link"] = f'<{url}>; rel="next"'
        return response

    def cursor(self, text: str | None) -> Cursor | None:
        try:
            return Cursor.decode(text)
        except ValueError as err:
            raise BadParameter("cursor", str(err)) from None

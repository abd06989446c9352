"""Registering one handler for GET (query string) and POST (JSON body), as Fink serves.

FastAPI reads a parameter model from the query string with ``Query()`` and from the body
with ``Body()``; the two endpoints below differ only there, so each route is written once
as ``handler(params, request)``.
"""

import inspect
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

Handler = Callable[[BaseModel, Request], Response]


def _endpoint(model: type[BaseModel], source, handler: Handler, optional: bool):
    def endpoint(request: Request, params: BaseModel | None = None) -> Response:
        return handler(params if params is not None else model(), request)

    annotation = Annotated[model | None if optional else model, source]
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request),
            inspect.Parameter(
                "params",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotation,
                default=None if optional else inspect.Parameter.empty,
            ),
        ]
    )
    return endpoint


def both(
    router: APIRouter,
    path: str,
    model: type[BaseModel],
    handler: Handler,
    summary: str,
    **options,
) -> None:
    """``handler`` as ``GET path`` (query parameters) and ``POST path`` (JSON body)."""
    optional = all(not f.is_required() for f in model.model_fields.values())
    get = _endpoint(model, Query(), handler, optional=False)
    post = _endpoint(model, Body(), handler, optional)
    router.add_api_route(path, get, methods=["GET"], summary=summary, **options)
    router.add_api_route(path, post, methods=["POST"], summary=f"{summary} (JSON body)", **options)

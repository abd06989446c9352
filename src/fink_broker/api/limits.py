"""What bounds one request: its URL, its body, its time, and the rows of its answer.

* A URL longer than ``api.max_url_bytes`` gets 414 and a body longer than
  ``api.max_body_bytes`` 413, before any route runs (the body is counted as it arrives,
  whatever ``Content-Length`` claims).
* A request gets ``api.request_timeout_s``: past it the answer is 503, and the archive
  reads of that request stop at their next row (:func:`check_deadline`), so a timed-out
  query does not keep a Thrift connection busy.
* An answer holds at most ``api.max_rows`` rows. Where more exist, the answer carries the
  next page's cursor (header ``Fink-Next-Cursor``, and ``Link: <…>; rel="next"`` for a GET):
  send it back as ``cursor`` for the rest. The body stays Fink's (a list of rows).
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fink_broker.errors import FinkError

#: monotonic time after which the current request's archive reads give up
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "fink_api_deadline", default=None
)


class RequestTimeout(FinkError):
    """The request ran past ``api.request_timeout_s``."""


def check_deadline() -> None:
    """Raise :class:`RequestTimeout` when the current request is past its deadline."""
    deadline = _DEADLINE.get()
    if deadline is not None and time.monotonic() > deadline:
        raise RequestTimeout("the query took longer than api.request_timeout_s; narrow it")


class BodyTooLarge(HTTPException):
    """The request body exceeds ``api.max_body_bytes``.

    An HTTPException: FastAPI turns any other error raised while it reads a body into a
    400 ("error parsing the body"), but lets this one through to its 413 answer.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body larger than {limit} bytes; at most {limit}")


async def _plain(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@dataclass
class RequestLimits:
    """ASGI middleware that bounds URL, body and time of every HTTP request."""

    app: ASGIApp
    max_url_bytes: int
    max_body_bytes: int
    timeout_s: float

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
        if length > self.max_url_bytes:
            await _plain(send, 414, f"URL of {length} bytes; at most {self.max_url_bytes}")
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _plain(send, 413, f"body of {int(declared)} bytes; at most {self.max_body_bytes}")
            return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        token = _DEADLINE.set(time.monotonic() + self.timeout_s)
        try:
            with anyio.fail_after(self.timeout_s):
                await self.app(scope, bounded, tracked)
        except BodyTooLarge as err:
            if not started:
                await _plain(send, 413, err.detail)
        except TimeoutError:
            if not started:
                await _plain(send, 503, "the query took longer than api.request_timeout_s")
        finally:
            _DEADLINE.reset(token)


@dataclass(frozen=True)
class Cursor:
    """Where a paged scan resumes: the scan range it was in, and the last row key read."""

    #: index of the range (an object of the request, a pixel run...) to resume in
    part: int
    #: the last key returned in that range; None: start the range from its beginning
    after: bytes | None

    def encode(self) -> str:
        """The opaque text a client sends back as ``cursor``."""
        payload = {"p": self.part, "k": None if self.after is None else self.after.hex()}
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """The cursor of a request (None for the first page); ValueError when malformed."""
        if text is None or not text.strip():
            return None
        try:
            raw = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
            payload = json.loads(raw)
            part, after = payload["p"], payload["k"]
            if not isinstance(part, int) or part < 0 or part > 10**6:
                raise ValueError
            return cls(part, None if after is None else bytes.fromhex(after))
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ValueError(f"{text[:40]!r} is not a cursor this API gave") from None


T = TypeVar("T")


def page_of(items: Sequence[T], cursor: Cursor | None, size: int) -> tuple[list[T], Cursor | None]:
    """One page of an answer computed whole (the cursor's part counts items), and the
    cursor of the next page (None: the last)."""
    first = cursor.part if cursor is not None else 0
    page = list(items[first : first + size])
    following = Cursor(first + len(page), None) if first + len(page) < len(items) else None
    return page, following

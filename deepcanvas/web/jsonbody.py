"""Request bodies as the studio reads them: bounded in size, and JSON without NaN, huge numbers or deep nesting.

Python's json module accepts NaN/Infinity, numbers of any length and recurses on nesting; each is
refused here with a 400 (or 413 for size) before anything else looks at the body. :class:`StrictJsonRoute`
makes FastAPI read a route's body this way, so its own validation (the pydantic models) sees only such JSON.
"""

from __future__ import annotations

import json
import re

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from .errors import ApiError

MAX_JSON_DEPTH = 16
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')  # "? : an unclosed string ends the text


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (before reading it when Content-Length says so)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise ApiError(413, f"the request body is too large; the limit is {limit:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the request body is too large; the limit is {limit:,} bytes")
    return bytes(body)


def _bad_json(what: str):
    raise ApiError(400, f"the request body is not valid JSON: {what}")


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > 30:
        _bad_json(f"a number of {len(text)} digits is too long")
    return int(text)


def _json_float(text: str) -> float:
    if len(text) > 64:
        _bad_json(f"a number of {len(text)} characters is too long")
    v = float(text)
    if v in (float("inf"), float("-inf")):
        _bad_json(f"{text} is out of range")
    return v


def _nesting(text: str) -> int:
    """The deepest bracket nesting of a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def parse_json(raw: bytes):
    """JSON as the studio accepts it: no NaN/Infinity, no overlong numbers, no deep nesting; else 400."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        _bad_json("it is not UTF-8")
    if _nesting(text) > MAX_JSON_DEPTH:  # counted before parsing: json's recursion is never reached
        _bad_json(f"it is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float,
                          parse_constant=lambda c: _bad_json(f"{c} is not a number JSON allows"))
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        _bad_json(str(e).split("\n")[0][:120] if isinstance(e, json.JSONDecodeError) else "it cannot be read")


class StrictJsonRequest(Request):
    """A request whose body is read with :func:`read_body` and parsed with :func:`parse_json`.

    FastAPI turns any error but an HTTPException met while reading a body into a bare 400, so the
    refusals are raised as HTTPException (the same ``{"error": ...}`` on the wire)."""

    limit = 1024 * 1024

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            try:
                self._body = await read_body(self, self.limit)
            except ApiError as e:
                raise HTTPException(e.status, e.message) from None
        return self._body

    async def json(self):
        if not hasattr(self, "_json"):
            raw = await self.body()
            try:
                self._json = parse_json(raw)
            except ApiError as e:
                raise HTTPException(e.status, e.message) from None
        return self._json


def strict_json_route(limit: int) -> type[APIRoute]:
    """An APIRoute class whose routes with a body take only JSON (else 415) read as :class:`StrictJsonRequest`
    with a ``limit`` of bytes."""
    request_class = type("LimitedJsonRequest", (StrictJsonRequest,), {"limit": limit})

    class StrictJsonRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()
            has_body = self.body_field is not None

            async def strict(request: Request):
                if has_body and request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                    raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
                return await handler(request_class(request.scope, request.receive))

            return strict

    return StrictJsonRoute

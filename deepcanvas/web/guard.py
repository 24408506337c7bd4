"""Refusing requests that another web site makes the browser send (the studio has no login)."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi.responses import JSONResponse


class SameOriginGuard:
    """ASGI middleware: refuse cross-site and DNS-rebinding requests with 403.

    * A Host header not in ``allowed_hosts`` (when given) is refused: a page on another
      site that rebinds its DNS name to 127.0.0.1 still sends its own name.
    * A request that changes something (not GET/HEAD) whose Origin header names another
      host:port than the one it was sent to is refused; so is ``Origin: null`` (what sandboxed
      iframes, data: and file: pages send), and a ``Sec-Fetch-Site`` other than same-origin or none.
    """

    def __init__(self, app, allowed_hosts: tuple[str, ...] | None):
        self.app, self.allowed = app, allowed_hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            host = headers.get("host", "")
            name = urlsplit(f"//{host}").hostname or ""
            msg = None
            if self.allowed is not None and name not in self.allowed:
                msg = f"this studio answers to {', '.join(self.allowed)}, not to {name or 'no host'}"
            elif scope["method"] not in ("GET", "HEAD") and not same_origin(headers, host):
                msg = "cross-site request refused"
            if msg:
                await JSONResponse({"error": msg}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def same_origin(headers: dict, host: str) -> bool:
    """Whether a request's Origin and Sec-Fetch-Site headers say it comes from the page ``host`` served."""
    origin = headers.get("origin")
    if origin is not None:
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if origin == "null" or parts.scheme not in ("http", "https") or parts.netloc != host:
            return False
    return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")

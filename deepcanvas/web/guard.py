"""Refusing requests that another web site makes the browser send (the studio has no login)."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

# host[:port] as RFC 3986 allows it in a Host header: a DNS name or IPv4 address, or an IPv6 address in brackets.
_HOST = re.compile(r"^(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})))"
                   r"(?::(?P<port>[0-9]{1,5}))?$")


def host_name(host: str) -> str | None:
    """The name in a Host header (lower case; an IP address in its usual form), or None if it is malformed."""
    m = _HOST.match(host)
    if m is None or (m["port"] is not None and not 0 < int(m["port"]) < 65536):
        return None
    if m["ip6"] is not None:
        try:
            return str(ipaddress.IPv6Address(m["ip6"]))
        except ValueError:
            return None
    name = m["name"].lower().rstrip(".")
    if not name or ".." in name or any(not part or part.startswith("-") or part.endswith("-") or len(part) > 63
                                       for part in name.split(".")):
        return None
    return normal_name(name)


def normal_name(name: str) -> str:
    """An address in its usual form (``0:0::1`` and ``::1`` alike), a name as it is."""
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        return name.lower()


class SameOriginGuard:
    """ASGI middleware: refuse cross-site and DNS-rebinding requests with 403.

    * A Host header that is not a plain ``name[:port]`` (or ``[IPv6][:port]``) is a 400.
    * A Host header not in ``allowed_hosts`` (when given) is refused: a page on another
      site that rebinds its DNS name to 127.0.0.1 still sends its own name.
    * A request that changes something (not GET/HEAD) whose Origin header names another
      host:port than the one it was sent to is refused; so is ``Origin: null`` (what sandboxed
      iframes, data: and file: pages send), and a ``Sec-Fetch-Site`` other than same-origin or none.
    """

    def __init__(self, app, allowed_hosts: tuple[str, ...] | None):
        self.app = app
        self.allowed = None if allowed_hosts is None else tuple(normal_name(h) for h in allowed_hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            host = headers.get("host", "")
            name = host_name(host) if host else ""
            msg, status = None, 403
            if name is None:
                msg, status = "malformed Host header", 400
            elif self.allowed is not None and name not in self.allowed:
                msg = f"this studio answers to {', '.join(self.allowed)}, not to {name or 'no host'}"
            elif scope["method"] not in ("GET", "HEAD") and not same_origin(headers, host):
                msg = "cross-site request refused"
            if msg:
                await JSONResponse({"error": msg}, status_code=status)(scope, receive, send)
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

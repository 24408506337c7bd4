"""Hypothesis strategies for the studio's requests, read from its pydantic models (deepcanvas/web/schemas.py).

Shared by tests/test_web_requests.py (a short, derandomized run in the suite) and benchmarks/studio_fuzz.py
(a longer run). Each strategy gives ``(method, path, kwargs)`` for httpx/TestClient's ``request``: valid values
of every field (its range's ends included), values just outside, wrong types, odd text (non-ASCII digits,
huge numbers, NaN), and malformed JSON and headers.
"""

from __future__ import annotations

import json
import tempfile

from hypothesis import strategies as st

from deepcanvas import limits
from deepcanvas.web import forms, schemas
from deepcanvas.web.app import create_app

HUGE = st.sampled_from([2**63, 2**64 + 1, -(2**63) - 1, 10**30, 1e308, -1e308, 1e-320])
ODD_TEXT = st.sampled_from(["", " ", "²", "١٢", "٣", "1e999", "NaN", "-inf", "0x10", "1_000", "١", "\x00", "💥",
                            "9" * 40, "../x", "/etc/passwd", "a,b,c", "relu1_1:1e999", "block10:99999999999"])
ANY_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                       st.text(max_size=30), ODD_TEXT, HUGE)
ANY = st.recursive(ANY_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                   max_leaves=8)


def field_values(field: dict, function: str) -> st.SearchStrategy:
    """Values for one form field: valid ones (the range's ends too) and the neighbours of its range."""
    r = limits.range_of(field["name"], function) if field["type"] in ("int", "float") else None
    options = [ANY_SCALAR]
    if r is not None:
        lo, hi = r.minimum, r.maximum
        edges = [lo, hi, lo - 1, hi + 1, lo + 1e-9, hi - 1e-9, (lo + hi) / 2]
        if field["type"] == "int":
            options.append(st.integers(int(lo), int(min(hi, lo + 10_000))))
            edges = [int(e) for e in edges]
        else:
            options.append(st.floats(lo, hi, allow_nan=False))
        options.append(st.sampled_from(edges + [str(e) for e in edges]))
    if field["choices"]:
        options.append(st.sampled_from(field["choices"]))
    if field["type"] == "bool":
        options.append(st.sampled_from([True, False, "true", "off", "maybe"]))
    return st.one_of(options)


def images() -> st.SearchStrategy:
    one = st.one_of(st.sampled_from(["bundled:chelsea.jpg", "bundled:swirls.jpg", "bundled:coffee.jpg",
                                     "bundled:nope.jpg", "upload:" + "0" * 32, "goldfinch", "../etc/passwd"]),
                    ANY_SCALAR)
    return st.one_of(one, st.lists(one, max_size=20), st.just(["bundled:swirls.jpg"] * 5000))


@st.composite
def job_body(draw) -> object:
    """A POST /api/jobs body: mostly well-formed per technique, with some fields bent."""
    techs = forms.available()
    tech = draw(st.sampled_from(techs))
    fields = draw(st.lists(st.sampled_from(tech.fields), max_size=5, unique_by=lambda f: f["name"]))
    params = {f["name"]: draw(field_values(f, tech.spec.steps)) for f in fields}
    inputs = {i.name: draw(images()) for i in tech.spec.inputs if draw(st.booleans())}
    body = {"technique": draw(st.one_of(st.just(tech.name), ANY_SCALAR)), "inputs": inputs, "params": params}
    if draw(st.booleans()):
        body["preview_every"] = draw(st.one_of(st.integers(-2, 10**6), HUGE, ODD_TEXT, ANY_SCALAR))
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(min_size=1, max_size=8))] = draw(ANY)
    if draw(st.integers(0, 9)) == 0:
        return draw(ANY)
    return body


def _json_text(body) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


RAW_JSON = st.sampled_from([b"", b"{", b"[" * 40 + b"]" * 40, b'{"technique": NaN}', b'{"technique": "style"}',
                            b"\xff\xfe", b'{"technique": "style", "params": {"size": 1' + b"0" * 50 + b"}}",
                            b'{"technique": "style", "preview_every": 9223372036854775808}', b"null", b"[]"])
HOSTS = st.one_of(st.sampled_from(["[", "[::1", "[x]", "]", "[127.0.0.1]:8000", "evil.com@testserver",
                                   "testserver/evil", "testserver:abc", "testserver:99999", "", "testserver.",
                                   "[::1]:8000", "127.0.0.1:8000", "testserver"]),
                  st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20))
JOB_IDS = st.one_of(st.text(max_size=40), st.sampled_from(["0" * 32, "f" * 32, "..", "%2e%2e", "a" * 1000]))


@st.composite
def request(draw):
    """Any of the studio's endpoints with fuzzed path, query, headers and body."""
    kind = draw(st.sampled_from(["job", "job", "job", "raw", "get", "host", "action", "video", "upload"]))
    if kind == "job":
        return "POST", "/api/jobs", {"content": _json_text(draw(job_body())),
                                     "headers": {"content-type": "application/json"}}
    if kind == "raw":
        ctype = draw(st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8", ""]))
        return "POST", "/api/jobs", {"content": draw(st.one_of(RAW_JSON, st.binary(max_size=64))),
                                     "headers": {"content-type": ctype}}
    if kind == "get":
        path = draw(st.sampled_from(["/api/jobs/{id}", "/api/jobs/{id}/result/{n}", "/api/images/{id}",
                                     "/api/videos/{id}", "/api/classes", "/api/info", "/api/techniques",
                                     "/api/models", "/api/images", "/api/jobs"]))
        path = path.replace("{id}", _quote(draw(JOB_IDS))).replace("{n}", str(draw(st.one_of(st.integers(),
                                                                                              HUGE))))
        params = draw(st.dictionaries(st.sampled_from(["model", "download", "thumb"]), ANY_SCALAR.map(str),
                                      max_size=3))
        return "GET", path, {"params": params}
    if kind == "host":
        return "GET", "/api/info", {"headers": {"host": draw(HOSTS)}}
    if kind == "action":
        action = draw(st.sampled_from(["cancel", "resubmit"]))
        return "POST", f"/api/jobs/{_quote(draw(JOB_IDS))}/{action}", {}
    if kind == "video":
        data = {k: str(draw(ANY_SCALAR)) for k in ("style", "size", "iterations", "consistent") if draw(st.booleans())}
        name = draw(st.sampled_from(["a.mp4", "a.gif", "a.txt", ""]))
        return "POST", "/api/videos", {"data": data, "files": {"file": (name, draw(st.binary(max_size=64)))}}
    return "POST", "/api/uploads", {"files": {"file": ("x.png", draw(st.binary(max_size=64)))}}


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="") or "x"


__all__ = ["job_body", "request", "schemas"]


def create_app_not_running(tmp=None):
    """An app whose queue is never started (no lifespan): accepted jobs wait, nothing heavy runs."""
    app = create_app(tmp or tempfile.mkdtemp(prefix="studio-requests-"))
    app.router.lifespan_context = _no_lifespan
    return app


class _no_lifespan:
    def __init__(self, app):
        pass

    async def __aenter__(self):
        return None

    async def __aexit__(self, *exc):
        return None

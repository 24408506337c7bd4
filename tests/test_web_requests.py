"""The studio's requests as described by its models (deepcanvas/web/schemas.py), issue 22's defects E, F, J, K and
L (one test each), and a schema-driven fuzz run over every endpoint (no 5xx).

In-process (FastAPI's TestClient); the upload memory test runs the app in a subprocess to measure its peak.
"""

import io
import json
import socket
import struct
import subprocess
import sys
import textwrap

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the studio's web dependencies are not installed (pip install '.[web]')")
pytest.importorskip("python_multipart")
hypothesis = pytest.importorskip("hypothesis")

from fastapi.testclient import TestClient  # noqa: E402
from h11 import LocalProtocolError  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402

from deepcanvas import cli, limits  # noqa: E402
from deepcanvas.web import allowed_hosts, forms  # noqa: E402
from deepcanvas.web.app import create_app  # noqa: E402

from doubles import BUNDLED  # noqa: E402
from studio_requests import create_app_not_running, job_body, request  # noqa: E402


def error_of(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"]
    return body["error"]


def job(technique="style", inputs=BUNDLED, **extra):
    return {"technique": technique, "inputs": inputs, **extra}


# -- the models: FastAPI validates the body, OpenAPI describes it -------------------------------------------------------
def test_job_bodies_are_described_by_the_models_with_the_limits(client):
    spec = client.get("/api/openapi.json").json()
    body = spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["discriminator"]["propertyName"] == "technique"
    schemas = spec["components"]["schemas"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in body["oneOf"]} == {
        f"{t.name.capitalize()}Job" for t in forms.available()}
    for tech in forms.available():
        props = schemas[f"{tech.name.capitalize()}Params"]["properties"]
        assert set(props) == {f["name"] for f in tech.fields}  # declared once: in the API's option records
        for f in tech.fields:
            r = limits.range_of(f["name"], tech.spec.steps)
            if r is None or f["type"] not in ("int", "float"):
                continue
            p = props[f["name"]]
            p = next((a for a in p.get("anyOf", [p]) if a.get("type") in ("integer", "number")), p)
            assert float(p["exclusiveMinimum" if r.above else "minimum"]) == float(r.minimum), (tech.name, f["name"])
            assert float(p["exclusiveMaximum" if r.below else "maximum"]) == float(r.maximum), (tech.name, f["name"])
    styles = schemas["StyleInputs"]["properties"]["styles"]["anyOf"]
    assert any(a.get("maxItems") for a in styles)
    assert "style" in spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]["discriminator"]["mapping"]


def test_validation_errors_keep_the_one_line_shape(client):
    assert "inputs.content" in error_of(client.post("/api/jobs", json=job(inputs={"content": {"a": 1}})), 400) \
        or "image ids" in error_of(client.post("/api/jobs", json=job(inputs={"content": {"a": 1}})), 400)
    assert "empty" in error_of(client.post("/api/jobs", content=b"", headers={"content-type": "application/json"}),
                               400)
    assert "JSON" in error_of(client.post("/api/jobs", content=b"{}", headers={"content-type": "text/plain"}), 415)
    assert "not a number JSON allows" in error_of(client.post("/api/jobs", content=b'{"technique": NaN}',
                                                              headers={"content-type": "application/json"}), 400)
    assert client.get("/api/jobs").json() == []


# -- E. preview_every: huge integers and non-ASCII digits --------------------------------------------------------------
@pytest.mark.parametrize("value", [2**63, 2**64, 10**25, "²", "١٢", "9223372036854775808", -1, 0, 1.5, True])
def test_preview_every_out_of_range_or_odd_digits_is_a_400(client, value):
    assert "preview_every" in error_of(client.post("/api/jobs", json=job(preview_every=value,
                                                                         params={"size": 32, "iterations": 1})), 400)
    assert client.get("/api/jobs").status_code == 200 and client.get("/api/jobs").json() == []


def test_preview_every_in_range_is_accepted():
    with TestClient(create_app_not_running()) as c:
        r = c.post("/api/jobs", json=job(preview_every="7", params={"size": 32, "iterations": 1}))
        assert r.status_code == 201 and r.json()["preview_every"] == 7


# -- F. the Host header is parsed strictly ---------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["[", "[::1", "[x]", "]", "[127.0.0.1]:8000", "evil.com@studio.lan",
                                  "studio.lan/evil", "studio.lan:abc", "studio.lan:0", "studio.lan:99999",
                                  "studio..lan", "-studio.lan", "studio.lan:80:80"])
def test_a_malformed_host_header_is_a_400(data_dir, host):
    for allowed in (None, ("studio.lan", "127.0.0.1", "::1")):
        with TestClient(create_app(data_dir, allowed_hosts=allowed)) as c:
            for method in ("get", "post"):
                assert "malformed Host" in error_of(getattr(c, method)("/api/jobs", headers={"host": host}), 400)


def test_well_formed_hosts_still_work(data_dir):
    with TestClient(create_app(data_dir, allowed_hosts=("studio.lan", "127.0.0.1", "::1"))) as c:
        for host in ("studio.lan", "studio.lan:8000", "STUDIO.LAN.", "[::1]:8000", "[0:0::1]", "127.0.0.1"):
            assert c.get("/api/images", headers={"host": host}).status_code == 200, host
        assert "not to evil.example" in error_of(c.get("/api/images", headers={"host": "evil.example"}), 403)


# -- J. style sizes that fail inside the network, and lists without a length limit -------------------------------------
@pytest.mark.parametrize("params, words", [
    ({"size": 1}, "size must be at least 32"),
    ({"size": 8}, "size must be at least 32"),
    ({"size": 64, "multiscale": True, "min_size": 1}, "min_size must be at least 32"),
    ({"style_scale": 0.001}, "style_scale 0.001 makes the style images 1 px"),
    ({"size": 64, "style_scale": 0.25}, "style_scale"),
    ({"size": 256, "multiscale": True, "min_size": 32, "style_scale": 0.5}, "style_scale"),
    ({"style_layers": "relu1_1," * 400}, "at most 2000 characters"),
])
def test_style_jobs_that_cannot_run_are_refused_at_submission(client, params, words):
    assert words in error_of(client.post("/api/jobs", json=job(params=params)), 400)
    assert client.get("/api/jobs").json() == []


@pytest.mark.parametrize("body, words", [
    (job(inputs={"content": "bundled:chelsea.jpg", "styles": ["bundled:swirls.jpg"] * 5000}), "at most 16 images"),
    (job("classviz", inputs={"classes": ["goldfinch"] * 5000}), "at most 64 classes"),
    (job(inputs={"content": "bundled:chelsea.jpg", "styles": ["x" * 5000]}), "at most 200 characters"),
])
def test_lists_and_names_have_length_limits(client, body, words):
    assert words in error_of(client.post("/api/jobs", json=body), 400)
    assert client.get("/api/jobs").json() == []


@pytest.mark.slow
def test_the_smallest_style_job_the_studio_accepts_runs():
    from deepcanvas.render import drive
    from deepcanvas.techniques.style import style_transfer_steps
    from doubles import DATA

    drive(style_transfer_steps(str(DATA / "chelsea.jpg"), [str(DATA / "swirls.jpg")], size=64, style_scale=0.5,
                               iterations=1, seed=0), None)


# -- L. --host on another loopback address answers to that address --------------------------------------------------
def test_serving_on_127_0_0_2_accepts_its_own_address(monkeypatch, capsys, tmp_path):
    import uvicorn

    assert "127.0.0.2" in allowed_hosts("127.0.0.2", False, None)
    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert cli.main(["serve", "--host", "127.0.0.2", "--port", str(port), "--data-dir", str(tmp_path / "d")]) == 0
    assert f"http://127.0.0.2:{port}/" in capsys.readouterr().err
    with TestClient(apps[-1], base_url=f"http://127.0.0.2:{port}") as c:
        assert c.get("/api/images").status_code == 200
        assert c.post("/api/jobs", json={"technique": "paint"},
                      headers={"origin": f"http://127.0.0.2:{port}"}).status_code == 400  # not 403
    with TestClient(apps[-1], base_url="http://evil.example") as bad:
        assert error_of(bad.get("/api/images"), 403)


# -- K. an accepted upload costs little more than its pixels ---------------------------------------------------------
_MEASURE = textwrap.dedent("""
    import io, resource, sys, tempfile
    from PIL import Image
    from fastapi.testclient import TestClient
    from deepcanvas.web.app import create_app
    data = open(sys.argv[1], "rb").read()
    small = io.BytesIO(); Image.new("RGBA", (64, 48), (1, 2, 3, 4)).save(small, "PNG")
    with TestClient(create_app(tempfile.mkdtemp())) as c:
        assert c.post("/api/uploads", files={"file": ("w.png", small.getvalue())}).status_code == 201
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        r = c.post("/api/uploads", files={"file": (sys.argv[2], data)})
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert r.status_code == 201, r.text
    print((after - before) * 1024, r.json()["width"], r.json()["height"])
""")


def _ico_with_png(img: Image.Image) -> bytes:
    """An ICO whose one entry is a PNG of any size (the header's 1-byte size says 256)."""
    buf = io.BytesIO()
    img.save(buf, "PNG")
    png = buf.getvalue()
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22) + png


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["png16", "ico"])
def test_an_accepted_upload_peaks_within_three_times_its_rgb_size(tmp_path, kind):
    """Issue 22's files at a quarter of their area: a 16-bit PNG and an RGBA ICO; peak RSS measured in a subprocess."""
    side = 3160 if kind == "png16" else 3000
    if kind == "png16":
        img, name = Image.new("I;16", (side, side), 1000), "deep.png"
        img.save(tmp_path / name)
    else:
        name = "big.ico"
        (tmp_path / name).write_bytes(_ico_with_png(Image.new("RGBA", (side, side), (10, 20, 30, 128))))
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path / name), name], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    extra, w, h = map(int, out.stdout.split())
    assert (w, h) == (side, side)
    rgb = side * side * 3
    assert extra <= 3 * rgb, f"{kind}: +{extra / 2**20:.0f} MB for {rgb / 2**20:.0f} MB of RGB"


# -- the fuzz run: every endpoint, from the models, no 5xx ------------------------------------------------------------
@pytest.fixture(scope="module")
def idle_client(tmp_path_factory):
    with TestClient(create_app_not_running(tmp_path_factory.mktemp("fuzz")), raise_server_exceptions=False) as c:
        c.post("/api/jobs", json=job(params={"size": 32, "iterations": 1}))  # one queued job for the job routes
        yield c


FUZZ = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@FUZZ
@given(body=job_body())
def test_fuzzed_job_bodies_never_get_a_5xx(idle_client, body):
    r = idle_client.post("/api/jobs", content=json.dumps(body).encode(), headers={"content-type": "application/json"})
    assert r.status_code in (201, 400, 413, 429), (body, r.status_code, r.text[:300])
    if r.status_code != 201:
        error_of(r, r.status_code)


@FUZZ
@given(req=request())
def test_fuzzed_requests_to_every_endpoint_never_get_a_5xx(idle_client, req):
    method, path, kwargs = req
    try:
        r = idle_client.request(method, path, **kwargs)
    except (UnicodeEncodeError, ValueError, LocalProtocolError):  # a header the HTTP client will not send
        hypothesis.reject()
    assert r.status_code < 500, (method, path, kwargs, r.status_code, r.text[:300])
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
        error_of(r, r.status_code)

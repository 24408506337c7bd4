"""The studio against bad requests, restarts and a full disk budget (issue 12's defects, one test each).

In-process (FastAPI's TestClient); the server killed mid-job is in test_web_load.py.
"""

import io
import json
import sqlite3
import socket
import time

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the studio's web dependencies are not installed (pip install '.[web]')")
pytest.importorskip("python_multipart")

from fastapi.testclient import TestClient  # noqa: E402

from deepcanvas import cli, limits  # noqa: E402
from deepcanvas.errors import DeepCanvasError  # noqa: E402
from deepcanvas.limits import check_number  # noqa: E402
from deepcanvas.web import app as web_app  # noqa: E402
from deepcanvas.web import forms, store  # noqa: E402
from deepcanvas.web.app import create_app  # noqa: E402

from doubles import BUNDLED  # noqa: E402
TINY = {"size": 32, "iterations": 1, "seed": 0}



def png_bytes(size=(40, 30)):
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buf, format="PNG")
    return buf.getvalue()


def error_of(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"]
    return body["error"]


def post_raw(client, text, **headers):
    return client.post("/api/jobs", content=text if isinstance(text, bytes) else text.encode(),
                       headers={"content-type": "application/json", **headers})


def wait_state(client, job_id, states, timeout=120):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stayed {job['state']}")


# -- 1. NaN and infinity: refused, never queued, the job list keeps answering ------------------------------------
@pytest.mark.parametrize("text", [
    '"lr": "nan"', '"lr": "inf"', '"lr": "-Infinity"', '"lr": NaN', '"lr": Infinity', '"lr": -Infinity',
    '"lr": 1e999', '"size": "1e999"', '"style_weight": "NaN"',
])
def test_nan_and_infinity_are_refused_and_never_queued(client, text):
    body = '{"technique": "style", "inputs": %s, "params": {%s}}' % (json.dumps(BUNDLED), text)
    msg = error_of(post_raw(client, body), 400)
    assert "finite" in msg or "not a number JSON allows" in msg or "out of range" in msg
    r = client.get("/api/jobs")
    assert r.status_code == 200 and r.json() == []


def test_a_diverged_loss_does_not_break_the_job_list():
    from deepcanvas.web.jobs import _finite

    assert _finite(float("nan")) is None and _finite(float("inf")) is None and _finite(2.5) == 2.5


# -- 2. malformed JSON of any shape is a 400 -----------------------------------------------------------------
@pytest.mark.parametrize("text, words", [
    ('{"technique": "style", "params": {"size": %s}}' % ("9" * 400), "too long"),
    ('{"technique": "style", "params": {"size": %s}}' % ("9" * 5000), "too long"),
    ('{"technique": "style", "params": {"lr": 0.%s}}' % ("1" * 5000), "too long"),
    ('{"technique": "style", "params": {"lr": 1%s}}' % ("0" * 5000 + ".5"), "too long"),
    ("[" * 100_000 + "]" * 100_000, "nested"),
    ('{"a": ' * 50_000 + "1" + "}" * 50_000, "nested"),
    ('{"technique": "style", "inputs": {"content": [[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]}}', "nested"),
    ("[" * 60_000, "nested"),
    ('{"technique": "sty', "JSON"),
    ('"' + "\\" * 3001, "JSON"),
])
def test_malformed_json_is_a_400(client, text, words):
    assert words in error_of(post_raw(client, text), 400)
    assert client.get("/api/jobs").json() == []


def test_json_edge_cases(client):
    assert "UTF-8" in error_of(post_raw(client, b'{"technique": "\xff"}'), 400)
    assert "too large" in error_of(post_raw(client, " " * (web_app.MAX_JOB_BODY + 1)), 413)
    # Brackets inside strings are not nesting; a job whose text holds many is judged on its merits.
    assert "unknown technique" in error_of(post_raw(client, json.dumps({"technique": "[" * 100})), 400)
    # Numbers in string form with thousands of digits: a one-line message, not the number.
    msg = error_of(client.post("/api/jobs", json={"technique": "style", "inputs": BUNDLED,
                                                  "params": {"size": "9" * 5000}}), 400)
    assert msg.startswith("size") and len(msg) < 200


# -- 3. every parameter checked when submitted ----------------------------------------------------------------------
@pytest.mark.parametrize("technique, inputs, params, words", [
    ("style", BUNDLED, {"size": -5}, "size must be at least 32"),
    ("style", BUNDLED, {"iterations": -1}, "iterations must be at least 1"),
    ("style", BUNDLED, {"size": 100000}, "size must be at least 32 and at most 16,384"),
    ("style", BUNDLED, {"iterations": 10**12}, "iterations must be at least 1 and at most 100,000"),
    ("style", BUNDLED, {"tile": 300}, "tile must be at least 384"),
    ("style", BUNDLED, {"adam_beta1": 1.5}, "adam_beta1 must be"),
    ("style", BUNDLED, {"style_layers": "relu9_9"}, "no layer 'relu9_9'"),
    ("style", BUNDLED, {"content_layers": "relu4_2:-1"}, "must be at least 0"),
    ("style", BUNDLED, {"style_blend_weights": "1,2,3"}, "style_blend_weights: got 3 values for 1 images"),
    ("style", BUNDLED, {"seed": -1}, "seed must be at least 0"),
    ("dream", {"image": "bundled:coffee.jpg"}, {"octave_scale": 1}, "octave_scale must be greater than 1"),
    ("dream", {"image": "bundled:coffee.jpg"}, {"tile": 100}, "tile must be at least 256"),
    ("dream", {"image": "bundled:coffee.jpg"}, {"layers": "nope"}, "no layer 'nope'"),
    ("dream", {"image": "bundled:coffee.jpg"}, {"channels": "x"}, "channel"),
    ("classviz", {"classes": ["goldfinch", "no such bird"]}, {}, "no such bird"),
    ("classviz", {"classes": ["goldfinch"]}, {"model": "vgg16"}, "not a classifier"),
    ("classviz", {}, {"objective": "nolayer:3"}, "no layer 'nolayer'"),
    ("classviz", {}, {"crop": 2}, "crop must be greater than 0 and at most 1"),
    ("invert", {"image": "bundled:astronaut.jpg"}, {"layer": "relu9_9"}, "no layer 'relu9_9'"),
    ("invert", {"image": "bundled:astronaut.jpg"}, {"model": "nope"}, "unknown model"),
])
def test_parameters_are_checked_when_submitted(client, technique, inputs, params, words):
    if forms.load(technique) is None:
        pytest.skip(f"{technique} is not available")
    r = client.post("/api/jobs", json={"technique": technique, "inputs": inputs, "params": params})
    assert words in error_of(r, 400)
    assert client.get("/api/jobs").json() == []


def test_upper_limits_apply_to_the_api_and_cli_too():
    from deepcanvas.techniques import style

    with pytest.raises(DeepCanvasError, match="size must be at most 16,384"):
        next(style.style_transfer_steps("x.jpg", ["y.jpg"], size=100000))
    with pytest.raises(DeepCanvasError, match="iterations must be at most"):
        check_number("iterations", 10**12, integer=True, positive=True)
    assert check_number("iterations", 100_000, integer=True, positive=True) == 100_000


def test_every_numeric_field_has_a_range_and_the_techniques_agree():
    """The studio's check (deepcanvas.limits) and each technique's own check refuse the same values."""
    for tech in forms.available():
        for f in tech.fields:
            if f["type"] not in ("int", "float"):
                continue
            r = limits.range_of(f["name"], tech.spec.steps)
            assert r is not None, f"{tech.name}.{f['name']} has no range in deepcanvas/limits.py"
            step = 1 if r.integer else 1e-6
            below = r.minimum if r.above else r.minimum - step
            with pytest.raises(DeepCanvasError):
                limits.check(f["name"], below, tech.spec.steps)
            ok = r.minimum + step if r.above else r.minimum
            assert limits.check(f["name"], ok, tech.spec.steps) == ok


@pytest.mark.parametrize("technique, name, value", [
    ("style", "tile", 383), ("dream", "tile", 255), ("dream", "octave_scale", 1.0), ("classviz", "crop", 1.01),
    ("classviz", "scale", 1.0), ("style", "size", 0), ("invert", "iterations", 0), ("dream", "octaves", 0),
])
def test_the_technique_refuses_what_the_table_refuses(technique, name, value):
    """Just outside a range, the technique itself fails too (before any slow work)."""
    tech = forms.load(technique)
    with pytest.raises(DeepCanvasError):
        limits.check(name, value, tech.spec.steps)
    args = {"style": ("bundled.jpg", ["b.jpg"]), "dream": ("bundled.jpg",), "classviz": (), "invert": ("a.jpg",)}
    with pytest.raises(DeepCanvasError, match=name):
        next(tech.func(*args[technique], **{name: value}))


# -- 4. cross-site requests, Origin: null included -------------------------------------------------------------
def test_origin_null_and_other_cross_site_requests_are_refused(client, data_dir):
    job = {"technique": "style", "inputs": BUNDLED, "params": TINY}
    for headers in ({"origin": "null"}, {"origin": "file://"}, {"origin": "https://evil.example"},
                    {"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"}):
        assert "cross-site" in error_of(client.post("/api/jobs", json=job, headers=headers), 403)
        assert "cross-site" in error_of(client.post("/api/uploads", headers=headers,
                                                    files={"file": ("a.png", png_bytes(), "image/png")}), 403)
        assert "cross-site" in error_of(client.post("/api/jobs/abc/cancel", headers=headers), 403)
    assert list((data_dir / "uploads").iterdir()) == [] and client.get("/api/jobs").json() == []
    # The page itself (same origin, or a tool sending no Origin) still works.
    r = client.post("/api/uploads", headers={"origin": "http://testserver", "sec-fetch-site": "same-origin"},
                    files={"file": ("a.png", png_bytes(), "image/png")})
    assert r.status_code == 201


# -- 5. image dimensions from the header, before decoding ------------------------------------------------------------
def test_a_small_file_of_huge_dimensions_is_refused_before_decoding(client, data_dir, monkeypatch):
    buf = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buf, format="PNG", optimize=True)
    data = buf.getvalue()
    assert len(data) < 40_000
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: (decoded.append(self.size), real_load(self))[1])
    msg = error_of(client.post("/api/uploads", files={"file": ("bomb.png", data, "image/png")}), 400)
    assert "10000x10000" in msg and f"{web_app.MAX_UPLOAD_PIXELS:,}" in msg and "bomb.png" in msg
    assert (10000, 10000) not in decoded  # refused from the header alone
    assert list((data_dir / "uploads").iterdir()) == []
    ok = client.post("/api/uploads", files={"file": ("ok.png", png_bytes(), "image/png")})
    assert ok.status_code == 201 and decoded  # a normal upload is decoded (the spy works)
    assert client.get("/api/info").json()["max_upload_pixels"] == web_app.MAX_UPLOAD_PIXELS
    js = client.get("/static/app.js").text
    assert "max_upload_pixels" in js and "megapixels" in js  # the page states the limit


# -- 6. the store: restarts, resubmission, retention, crash safety, migrations ---------------------------------------
def _run_tiny(client, **params):
    r = client.post("/api/jobs", json={"technique": "style", "inputs": BUNDLED, "params": {**TINY, **params}})
    assert r.status_code == 201, r.text
    return wait_state(client, r.json()["id"], ("done", "failed", "cancelled"))


def test_gallery_and_uploads_survive_a_restart(data_dir):
    with TestClient(create_app(data_dir)) as c:
        up = c.post("/api/uploads", files={"file": ("mine.png", png_bytes(), "image/png")}).json()
        done = _run_tiny(c)
        assert done["state"] == "done"
        png = c.get(done["results"][0]["url"]).content
    # A stray file and an upload file nobody recorded (e.g. copied in by hand): orphans.
    (data_dir / "results" / ("f" * 32 + ".png")).write_bytes(b"x")
    (data_dir / "uploads" / ("e" * 32 + ".img")).write_bytes(png_bytes())
    (data_dir / "uploads" / ".abc.part").write_bytes(b"x")
    with TestClient(create_app(data_dir)) as c:
        jobs = c.get("/api/jobs").json()
        assert [(j["id"], j["state"], j["params"]) for j in jobs] == [(done["id"], "done", TINY)]
        assert c.get(jobs[0]["results"][0]["url"]).content == png
        assert up["id"] in [i["id"] for i in c.get("/api/images").json()]
        assert c.get(f"/api/images/{up['id']}").status_code == 200
        assert "unknown image" in error_of(c.get("/api/images/upload:" + "e" * 32), 400)
    assert sorted(p.name for p in (data_dir / "results").iterdir()) == [f"{done['id']}.png"]
    assert sorted(p.name for p in (data_dir / "uploads").iterdir()) == sorted(
        [up["id"][7:] + ".img", up["id"][7:] + ".jpg"])


def test_interrupted_jobs_keep_their_checkpoint_and_can_be_resubmitted(data_dir):
    """The database as a crash leaves it: one job running (with a checkpoint on disk), one queued."""
    st = store.Store(data_dir)
    req = {"technique": "style", "inputs": BUNDLED, "params": TINY, "preview_every": 5}
    for jid, state in (("a" * 32, "running"), ("b" * 32, "queued")):
        st.insert_job({"id": jid, "technique": "style", "title": "Style transfer", "request": req, "inputs": BUNDLED,
                       "params": TINY, "preview_every": 5, "state": state, "created": time.time()})
    Image.new("RGB", (32, 24), (1, 2, 3)).save(data_dir / "results" / store.checkpoint_name("a" * 32, 0))
    st.close()
    with TestClient(create_app(data_dir)) as c:
        jobs = {j["id"]: j for j in c.get("/api/jobs").json()}
        ran, waited = jobs["a" * 32], jobs["b" * 32]
        assert ran["state"] == "interrupted" and ran["partial"] and "kept" in ran["error"]
        assert (ran["results"][0]["width"], ran["results"][0]["height"]) == (32, 24)
        with Image.open(io.BytesIO(c.get(ran["results"][0]["url"]).content)) as im:
            assert im.getpixel((0, 0)) == (1, 2, 3)
        assert waited["state"] == "interrupted" and waited["results"] == [] and "resubmit" in waited["error"]
        again = c.post(f"/api/jobs/{'b' * 32}/resubmit")
        assert again.status_code == 201 and again.json()["params"] == TINY
        assert wait_state(c, again.json()["id"], ("done", "failed"))["state"] == "done"
        assert "no job" in error_of(c.post("/api/jobs/nope/resubmit"), 404)
    assert sorted(p.name for p in (data_dir / "results").iterdir()) == sorted(
        [f"{'a' * 32}.png", f"{again.json()['id']}.png"])


def test_a_running_job_writes_checkpoints(data_dir):
    with TestClient(create_app(data_dir, checkpoint_every=0.0)) as c:
        seen = []
        orig = store.checkpoint_name
        job = c.post("/api/jobs", json={"technique": "style", "inputs": BUNDLED,
                                        "params": {**TINY, "iterations": 300}}).json()
        t0 = time.monotonic()
        while not seen and time.monotonic() - t0 < 60:
            seen = list((data_dir / "results").glob(f"{job['id']}.partial_*.png"))
            time.sleep(0.05)
        assert seen and orig(job["id"], 0) == seen[0].name
        c.post(f"/api/jobs/{job['id']}/cancel")
        assert wait_state(c, job["id"], ("cancelled",))["partial"]
    assert [p.name for p in (data_dir / "results").iterdir()] == [f"{job['id']}.png"]  # checkpoint removed


def test_retention_deletes_the_oldest_files_and_rows_together(data_dir):
    with TestClient(create_app(data_dir, keep_jobs=2, keep_uploads=1)) as c:
        ids = [_run_tiny(c)["id"] for _ in range(3)]
        ups = [c.post("/api/uploads", files={"file": (f"{i}.png", png_bytes(), "image/png")}).json()["id"]
               for i in range(2)]
        assert [j["id"] for j in c.get("/api/jobs").json()] == ids[:0:-1]
        assert [i["id"] for i in c.get("/api/images").json() if not i["bundled"]] == ups[1:]
    assert sorted(p.name for p in (data_dir / "results").iterdir()) == sorted(f"{i}.png" for i in ids[1:])
    assert len(list((data_dir / "uploads").iterdir())) == 2
    db = sqlite3.connect(data_dir / "studio.db")
    assert db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM uploads").fetchone()[0] == 1
    db.close()
    # Bytes: a budget of 0 MB keeps nothing finished.
    with TestClient(create_app(data_dir, keep_mb=0)) as c:
        assert c.get("/api/jobs").json() == []
    assert list((data_dir / "results").iterdir()) == []


def test_a_crash_between_row_and_files_leaves_nothing_dangling(data_dir):
    st = store.Store(data_dir)
    for jid in ("a" * 32, "b" * 32):
        st.insert_job({"id": jid, "technique": "style", "title": "t", "request": {}, "inputs": {}, "params": {},
                       "preview_every": 5, "state": "done", "created": time.time(),
                       "results": [{"file": f"{jid}.png", "width": 8, "height": 8}]})
        Image.new("RGB", (8, 8)).save(data_dir / "results" / f"{jid}.png")
    # Crash 1: the row was marked for deletion, the file not yet removed.
    st.db.execute("UPDATE jobs SET deleting = 1 WHERE id = ?", ("a" * 32,))
    # Crash 2: the file removed, the marked row not yet.
    st.db.execute("UPDATE jobs SET deleting = 1 WHERE id = ?", ("b" * 32,))
    (data_dir / "results" / f"{'b' * 32}.png").unlink()
    st.close()
    st = store.Store(data_dir)
    assert st.jobs() == []  # a marked row is never listed
    assert st.recover()["deleted"] == 2
    assert st.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0
    assert list((data_dir / "results").iterdir()) == []
    st.close()


def test_migrations_and_a_newer_database(data_dir):
    st = store.Store(data_dir)
    assert st.db.execute("PRAGMA user_version").fetchone()[0] == len(store.MIGRATIONS)
    assert st.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert st.migrate() == len(store.MIGRATIONS)  # idempotent
    st.db.execute(f"PRAGMA user_version = {len(store.MIGRATIONS) + 1}")
    st.close()
    with pytest.raises(DeepCanvasError, match="newer deepcanvas"):
        store.Store(data_dir)
    (data_dir / "studio.db").write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (data_dir / f"studio.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(DeepCanvasError, match="studio database"):
        store.Store(data_dir)


# -- 7. remote binding is explicit and keeps the Host check -------------------------------------------------------------
def test_remote_binding_needs_flags_and_a_bad_host_is_named(monkeypatch, capsys, tmp_path):
    import uvicorn

    apps = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    base = ["serve", "--port", port, "--data-dir", str(tmp_path / "d")]
    assert cli.main([*base, "--host", "0.0.0.0"]) == 1
    assert "--allow-remote" in capsys.readouterr().err
    assert cli.main([*base, "--host", "0.0.0.0", "--allow-remote"]) == 1
    assert "--allowed-hosts" in capsys.readouterr().err
    assert cli.main([*base, "--host", "0.0.0.0", "--allow-remote", "--allowed-hosts", "bad name!"]) == 1
    assert "bad name" in capsys.readouterr().err
    for bad in ("300.1.1.1", "no-such-host.invalid"):
        assert cli.main([*base, "--host", bad]) == 1
        err = capsys.readouterr().err
        assert f"bad --host '{bad}'" in err and "port" not in err and err.count("\n") == 1
    assert cli.main([*base, "--host", "0.0.0.0", "--allow-remote", "--allowed-hosts", "studio.lan"]) == 0
    err = capsys.readouterr().err
    assert "studio.lan" in err and "anyone who can reach" in err
    with TestClient(apps[-1], base_url="http://studio.lan:8000") as ok, \
            TestClient(apps[-1], base_url="http://attacker.example:8000") as bad:
        assert ok.get("/api/images").status_code == 200
        assert "not to attacker.example" in error_of(bad.get("/api/images"), 403)

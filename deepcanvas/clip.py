"""Video clips in and out: probe, pick frames, decode, and write MP4 (H.264) or GIF.

Decoding and encoding go through PyAV (FFmpeg's libraries in a wheel), imported only when a clip is
touched. Everything a person can get wrong about a clip is found by :func:`probe`, which reads
headers (checked against the limits first) and then the first frame only, so a bad clip fails in a second with one line, before any
network is loaded (framestore.check_output does the same for the output). Files are written
atomically (:mod:`atomic`): a finished movie or none.

A clip is either a video file (mp4, mov, webm, mkv, avi, animated gif...) or a folder or glob
pattern of still frames (sorted by name; all of one size).
"""

from __future__ import annotations

import glob
import math
import os
import pathlib
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from . import io
from .atomic import atomic_path
from .errors import DeepCanvasError

FRAME_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
#: Frame rate given to a folder of frames when no --fps is set.
FOLDER_FPS = 25.0
#: Limits on what is decoded (the studio sets tighter ones).
MAX_INPUT_PIXELS = 8192 * 8192
MAX_SECONDS = 3600.0


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - a core dependency
        raise DeepCanvasError("video needs PyAV: pip install av") from None
    av.logging.set_level(av.logging.PANIC)  # FFmpeg's own chatter on stderr; errors come to us as exceptions
    return av


@dataclass
class ClipInfo:
    """What :func:`probe` found: enough to plan the work without decoding the clip."""

    source: str
    kind: str  # 'video' or 'frames'
    width: int
    height: int
    fps: float
    frames: int  # the whole input's frame count (estimated from the duration for some containers)
    duration: float  # seconds
    has_audio: bool = False
    codec: str = ""
    files: list[pathlib.Path] = field(default_factory=list, repr=False)


def _fail(src: str, why: str) -> DeepCanvasError:
    return DeepCanvasError(f"cannot read video '{src}': {why}")


def probe(spec, *, max_pixels: int = MAX_INPUT_PIXELS, max_seconds: float = MAX_SECONDS) -> ClipInfo:
    """Look at a clip (file, folder or glob) without decoding it all; a one-line error if it is unusable.

    Checks: it exists; it is a video whose first frame decodes (or a folder of images of one size);
    it has at least one frame; its resolution and duration are within the limits.
    """
    src = os.fspath(spec) if not isinstance(spec, str) else spec
    if not src:
        raise DeepCanvasError("cannot read video: no input given")
    p = pathlib.Path(os.path.expanduser(src))
    if p.is_dir() or (not p.exists() and any(c in src for c in "*?[")):
        info = _probe_frames(src, p)
    elif not p.exists():
        raise _fail(src, "no such file")
    elif not p.is_file():
        raise _fail(src, "not a regular file")
    elif p.suffix.lower() in FRAME_SUFFIXES:
        raise _fail(src, "it is a still image; give a video, or a folder or glob of frames")
    else:
        info = _probe_video(src, p, max_pixels, max_seconds)
    if info.width * info.height > max_pixels:
        raise _fail(src, f"{info.width}x{info.height} is over the limit of {max_pixels:,} pixels a frame")
    if info.duration > max_seconds:
        raise _fail(src, f"it lasts {info.duration:.0f} s, over the limit of {max_seconds:.0f} s")
    return info


def _probe_frames(src: str, p: pathlib.Path) -> ClipInfo:
    from PIL import Image

    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in FRAME_SUFFIXES and f.is_file())
    else:
        files = sorted(pathlib.Path(f) for f in glob.glob(os.path.expanduser(src))
                       if pathlib.Path(f).suffix.lower() in FRAME_SUFFIXES and os.path.isfile(f))
    if not files:
        raise _fail(src, "no frames (no .png/.jpg/... images in it)")
    sizes: dict[tuple[int, int], pathlib.Path] = {}
    for f in files:  # headers only
        try:
            with Image.open(f) as im:
                sizes.setdefault(im.size, f)
        except Image.DecompressionBombError:
            raise _fail(src, f"frame '{f.name}' is over the limit of {MAX_INPUT_PIXELS:,} pixels a frame") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise _fail(src, f"frame '{f.name}' is not a readable image ({e.__class__.__name__})") from None
        if len(sizes) > 1:
            (a, fa), (b, fb) = list(sizes.items())[:2]
            raise _fail(src, f"its frames differ in size: '{fa.name}' is {a[0]}x{a[1]}, "
                             f"'{fb.name}' is {b[0]}x{b[1]}")
    (w, h), = sizes
    return ClipInfo(src, "frames", w, h, FOLDER_FPS, len(files), len(files) / FOLDER_FPS, files=files)


def _open_container(src: str):
    av = _av()
    try:
        return av.open(src)
    except av.error.InvalidDataError:
        raise _fail(src, "not a video (no container format recognised)") from None
    except av.error.FFmpegError as e:
        raise _fail(src, f"not a video ({_ff(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(src, str(getattr(e, "strerror", None) or e)) from None


def _ff(e) -> str:
    return str(getattr(e, "strerror", None) or e).splitlines()[0][:120]


def _probe_video(src: str, p: pathlib.Path, max_pixels: int, max_seconds: float) -> ClipInfo:
    av = _av()
    if p.stat().st_size == 0:
        raise _fail(src, "file is empty")
    with _open_container(src) as c:
        if not c.streams.video:
            raise _fail(src, "it has no video stream" + (" (only audio)" if c.streams.audio else ""))
        s = c.streams.video[0]
        codec = s.codec_context.name if s.codec_context else "?"
        w, h = s.codec_context.width, s.codec_context.height
        rate = s.average_rate or s.guessed_rate or s.base_rate
        fps = float(rate) if rate else 0.0
        if s.duration is not None and s.time_base:
            duration = float(s.duration * s.time_base)
        elif c.duration is not None:
            duration = c.duration / 1e6
        else:
            duration = 0.0
        # The header's size and length against the limits before any frame is decoded: a decoder allocates
        # what the header claims (a few bytes of GIF can claim a 16000x16000 screen).
        if w * h > max_pixels:
            raise _fail(src, f"{w}x{h} is over the limit of {max_pixels:,} pixels a frame")
        if duration > max_seconds:
            raise _fail(src, f"it lasts {duration:.0f} s, over the limit of {max_seconds:.0f} s")
        # The first frame decodes, or the codec is one we cannot read.
        first = None
        try:
            for first in c.decode(s):
                break
        except av.error.FFmpegError as e:
            raise _fail(src, f"cannot decode its {codec} video ({_ff(e)})") from None
        except (ValueError, RuntimeError) as e:
            raise _fail(src, f"cannot decode its {codec} video ({e})") from None
        if first is None:
            raise _fail(src, "it has no frames")
        w, h = first.width, first.height
        n = s.frames or 0
        if not fps or not math.isfinite(fps) or fps > 1000:
            fps = FOLDER_FPS
        if n <= 0:
            n = max(1, round(duration * fps))
        if duration <= 0:
            duration = n / fps
        return ClipInfo(src, "video", w, h, fps, n, duration, has_audio=bool(c.streams.audio), codec=codec)


# --------------------------------------------------------------------------- picking and decoding


@dataclass
class Selection:
    """Which frames to process: their times in the input (seconds), the output rate and size."""

    times: list[float]
    fps: float
    start: float
    duration: float
    hw: tuple[int, int]


def select(info: ClipInfo, *, fps: float | None = None, start: float = 0.0, duration: float | None = None,
           size: int | None = None, max_frames: int | None = None) -> Selection:
    """The frames to process: from ``start`` for ``duration`` seconds at ``fps`` (default: the clip's)."""
    from .limits import check_number

    start = check_number("start", start, minimum=0)
    out_fps = info.fps if fps is None else check_number("fps", fps, positive=True)
    if info.kind == "frames" and fps is not None:  # a folder has no rate of its own: its frames play at fps
        info.fps, info.duration = out_fps, info.frames / out_fps
    end = info.duration if duration is None else start + check_number("duration", duration, positive=True)
    end = min(end, info.duration)
    if start >= info.duration:
        raise DeepCanvasError(f"start {start:g} s is past the end of the clip ({info.duration:.2f} s)")
    n = max(1, int(math.floor((end - start) * out_fps + 1e-6)))
    if max_frames is not None and n > max_frames:
        raise DeepCanvasError(f"{n:,} frames to process, over the limit of {max_frames:,}; "
                              f"pick fewer with --duration or --fps")
    times = [start + k / out_fps for k in range(n)]
    w, h = info.width, info.height
    if size is not None:
        size = int(check_number("size", size, integer=True, positive=True))
        s = size / max(w, h)
        w, h = max(1, round(w * s)), max(1, round(h * s))
    if min(w, h) < io.MIN_SIDE:
        raise DeepCanvasError(f"frames of {w}x{h} are too small (at least {io.MIN_SIDE} px a side)")
    return Selection(times, out_fps, start, end - start, (h, w))


def _resize(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if arr.shape[:2] == tuple(hw):
        return arr
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize((hw[1], hw[0]), Image.BICUBIC))


def read_frames(info: ClipInfo, pl: Selection) -> list[np.ndarray]:
    """The planned frames as (H, W, 3) uint8 arrays at the planned size."""
    if info.kind == "frames":
        out = []
        for t in pl.times:
            k = min(len(info.files) - 1, int(round(t * info.fps)))
            out.append(_resize(np.asarray(io.load_image(info.files[k], what="frame")), pl.hw))
        return out
    av = _av()
    src = info.source
    decoded: list[tuple[float, np.ndarray]] = []
    end = pl.times[-1] + 0.5 / pl.fps
    with _open_container(src) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        try:
            if pl.start > 1.0:
                c.seek(int(max(0.0, pl.start - 1.0) / s.time_base), stream=s, backward=True)
            prev = None
            for fr in c.decode(s):
                t = float(fr.pts * s.time_base) if fr.pts is not None else (len(decoded) / info.fps)
                if t < pl.start - 0.5 / pl.fps:
                    prev = (t, fr)
                    continue
                if prev is not None and not decoded:
                    decoded.append((prev[0], _resize(prev[1].to_ndarray(format="rgb24"), pl.hw)))
                decoded.append((t, _resize(fr.to_ndarray(format="rgb24"), pl.hw)))
                if t > end:
                    break
        except av.error.FFmpegError as e:
            raise _fail(src, f"cannot decode its {info.codec} video ({_ff(e)})") from None
    if not decoded:
        raise _fail(src, "it has no frames in the chosen time range")
    first_t = decoded[0][0] if pl.start == 0 else 0.0
    out = []
    j = 0
    for t in pl.times:  # the last decoded frame showing at time t (nearest at the boundaries)
        t = t + first_t
        while j + 1 < len(decoded) and decoded[j + 1][0] <= t + 1e-6:
            j += 1
        out.append(decoded[j][1])
    return out


# --------------------------------------------------------------------------- writing


def write_mp4(frames, path, fps: float, *, audio_from: str | None = None, start: float = 0.0,
              duration: float | None = None, crf: int = 18) -> pathlib.Path:
    """Encode (H, W, 3) uint8 arrays (or PIL images, or PNG paths) as an H.264 MP4, atomically.

    ``audio_from``: a video whose audio (from ``start`` for ``duration`` seconds) goes along, as AAC.
    """
    av = _av()
    p = pathlib.Path(path)
    frames = list(frames)
    first = _as_array(frames[0])
    h, w = first.shape[:2]
    h2, w2 = h - h % 2, w - w % 2  # yuv420p needs even sides
    rate = Fraction(fps).limit_denominator(1001)
    try:
        with atomic_path(p) as tmp:
            with av.open(str(tmp), mode="w", format="mp4") as out:
                vs = out.add_stream("libx264", rate=rate)
                vs.width, vs.height, vs.pix_fmt = w2, h2, "yuv420p"
                vs.options = {"crf": str(crf), "preset": "medium"}
                audio = _audio_source(audio_from) if audio_from else None
                aus = None
                if audio is not None:
                    aus = out.add_stream("aac", rate=audio[1])
                    aus.layout = "stereo"
                for i, f in enumerate(frames):
                    a = _as_array(f)[:h2, :w2]
                    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
                    vf.pts = i
                    for pkt in vs.encode(vf):
                        out.mux(pkt)
                for pkt in vs.encode():
                    out.mux(pkt)
                if aus is not None:
                    _mux_audio(out, aus, audio_from, start, duration if duration is not None else len(frames) / fps)
    except av.error.FFmpegError as e:
        raise DeepCanvasError(f"cannot write video '{p}': {_ff(e)}") from None
    return p


def _as_array(f) -> np.ndarray:
    if isinstance(f, np.ndarray):
        return f
    if isinstance(f, (str, os.PathLike)):
        return np.asarray(io.load_image(f, what="frame"))
    return np.asarray(f.convert("RGB"))


def _audio_source(src: str):
    """(stream index, sample rate) of the first audio stream of ``src``, or None."""
    try:
        with _open_container(src) as c:
            if not c.streams.audio:
                return None
            a = c.streams.audio[0]
            return a.index, a.codec_context.sample_rate or 44100
    except DeepCanvasError:
        return None


def _mux_audio(out, aus, src: str, start: float, duration: float) -> None:
    """Decode ``src``'s audio from ``start`` for ``duration`` seconds and encode it into ``aus`` (AAC)."""
    av = _av()
    rate = aus.codec_context.sample_rate
    res = av.AudioResampler(format="fltp", layout="stereo", rate=rate, frame_size=aus.codec_context.frame_size or 1024)
    written = 0
    total = int(round(duration * rate))
    with av.open(src) as c:
        s = c.streams.audio[0]
        try:
            for fr in c.decode(s):
                t = float(fr.pts * s.time_base) if fr.pts is not None else 0.0
                if t + fr.samples / max(1, fr.sample_rate) < start:
                    continue
                for rf in res.resample(fr):
                    if written >= total:
                        break
                    rf.pts = written
                    written += rf.samples
                    for pkt in aus.encode(rf):
                        out.mux(pkt)
                if written >= total:
                    break
            for rf in res.resample(None):
                if written < total:
                    rf.pts = written
                    written += rf.samples
                    for pkt in aus.encode(rf):
                        out.mux(pkt)
        except av.error.FFmpegError:
            pass  # a damaged audio track: keep what was read
        for pkt in aus.encode(None):
            out.mux(pkt)


def write_gif(frames, path, fps: float) -> pathlib.Path:
    """Frames (arrays, PIL images or PNG paths) as an endlessly looping GIF, atomically."""
    from PIL import Image

    images = [Image.fromarray(_as_array(f)) for f in frames]
    p = pathlib.Path(path)
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as fh:
            images[0].save(fh, format="GIF", save_all=True, append_images=images[1:],
                           duration=max(10, round(1000 / fps)), loop=0)
            fh.flush()
    return p

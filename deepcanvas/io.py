"""Image input and output that fails with a clear message instead of a traceback.

Reading
    :func:`load_image` turns whatever a person points us at into an 8-bit RGB
    :class:`PIL.Image.Image`, or raises :class:`~deepcanvas.errors.DeepCanvasError`
    with a one-line message that names the file ("cannot read style image
    'x.png': file is empty"). The image is fully decoded before it is returned,
    so a truncated file fails here and not halfway through a long run.

Writing
    :func:`check_output_path` is meant to be called before any work starts, so
    that an unwritable output is reported in a second rather than after an
    hour of optimisation. :func:`save_image`, :func:`save_bytes_atomic` and
    :func:`atomic_path` write to a temporary file in the destination directory
    and rename it over the destination only once it is complete, so a failure
    never leaves a half-written file or clobbers an existing one.
"""

from __future__ import annotations

import contextlib
import io as _io
import os
import pathlib
import stat
import tempfile
import warnings
from typing import Iterator, Union

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .errors import DeepCanvasError

__all__ = [
    "MIN_SIDE",
    "MAX_ASPECT",
    "OUTPUT_FORMATS",
    "load_image",
    "resize_longest",
    "image_to_tensor",
    "tensor_to_image",
    "check_output_path",
    "save_image",
    "save_bytes_atomic",
    "atomic_path",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Smallest accepted side, in pixels; smaller images are useless to the networks.
MIN_SIDE = 16
#: Largest accepted ratio of the long side to the short side.
MAX_ASPECT = 20

#: Output extension -> Pillow format name.
OUTPUT_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".gif": "GIF",
}

# Errors Pillow raises while parsing or decoding a broken file.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, MemoryError)

_UNSUPPORTED_BY_EXTENSION = {
    ".svg": "SVG is not supported; convert it to PNG first",
    ".svgz": "SVG is not supported; convert it to PNG first",
    ".heic": "HEIC/HEIF is not supported; convert it to JPEG or PNG first",
    ".heif": "HEIC/HEIF is not supported; convert it to JPEG or PNG first",
    ".pdf": "PDF is not an image format that can be read; export the page as PNG first",
}


# --------------------------------------------------------------------------- reading


def load_image(
    path: Union[PathLike, Image.Image],
    *,
    what: str = "image",
    max_pixels: int = 100_000_000,
) -> Image.Image:
    """Read ``path`` (or take an already opened image) as an 8-bit RGB image.

    ``what`` names the image in messages ("style image", "content image").
    ``max_pixels`` is the decompression-bomb limit (width x height); it is used
    instead of Pillow's global ``Image.MAX_IMAGE_PIXELS`` (Pillow's own hard
    limit, twice its global, still applies on top).

    EXIF orientation is applied; transparency is composited onto white;
    16-bit and floating-point greyscale is rescaled to 0..255; CMYK goes
    through its embedded ICC profile when there is one.
    """
    if isinstance(path, Image.Image):
        return _prepare(path, f"cannot use {what}", max_pixels)

    try:
        fspath = os.fspath(path)
    except TypeError:
        raise DeepCanvasError(
            f"cannot read {what}: expected a file path or an image, got {type(path).__name__}"
        ) from None
    if isinstance(fspath, bytes):
        fspath = os.fsdecode(fspath)
    if not fspath:
        raise DeepCanvasError(f"cannot read {what}: no file name given")
    prefix = f"cannot read {what} '{fspath}'"
    real = os.path.expanduser(fspath)

    if not os.path.lexists(real):
        raise DeepCanvasError(f"{prefix}: no such file")
    if not os.path.exists(real):
        raise DeepCanvasError(f"{prefix}: it is a broken symbolic link")
    if os.path.isdir(real):
        raise DeepCanvasError(f"{prefix}: it is a directory, not an image file")
    if not os.path.isfile(real):
        raise DeepCanvasError(f"{prefix}: not a regular file")

    try:
        f = open(real, "rb")
    except PermissionError:
        raise DeepCanvasError(f"{prefix}: permission denied") from None
    except OSError as e:
        raise DeepCanvasError(f"{prefix}: {_os_reason(e)}") from None

    with f:
        try:
            head = f.read(4096)
            f.seek(0)
        except OSError as e:
            raise DeepCanvasError(f"{prefix}: {_os_reason(e)}") from None
        if not head:
            raise DeepCanvasError(f"{prefix}: file is empty")
        if _looks_like_svg(real, head):
            raise DeepCanvasError(f"{prefix}: SVG is not supported; convert it to PNG first")

        img = _open(f, prefix, max_pixels, real, head)
        return _prepare(img, prefix, max_pixels)


def _open(f, prefix: str, max_pixels: int, real: str, head: bytes) -> Image.Image:
    """``Image.open`` with our own size limit and readable errors (header only)."""
    with warnings.catch_warnings():
        # Pillow warns above its global limit; our limit is max_pixels, checked
        # in _check_size, so its warning is neither shown nor used.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(f)
        except Image.DecompressionBombError as e:
            raise DeepCanvasError(f"{prefix}: image is too large, a possible decompression bomb ({e})") from None
        except UnidentifiedImageError:
            raise DeepCanvasError(f"{prefix}: {_not_an_image_reason(real, head)}") from None
        except _DECODE_ERRORS as e:
            raise DeepCanvasError(f"{prefix}: image data is truncated or corrupt ({_short(e)})") from None


def _prepare(img: Image.Image, prefix: str, max_pixels: int) -> Image.Image:
    """Check the size, decode fully, orient and convert to RGB."""
    _check_size(img.size, prefix, max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img.load()  # force a full decode: truncated files fail here
        except Image.DecompressionBombError as e:
            raise DeepCanvasError(f"{prefix}: image is too large, a possible decompression bomb ({e})") from None
        except _DECODE_ERRORS as e:
            raise DeepCanvasError(f"{prefix}: image data is truncated or corrupt ({_short(e)})") from None
    img = _exif_transpose(img)
    try:
        rgb = _to_rgb(img)
    except _DECODE_ERRORS as e:
        raise DeepCanvasError(f"{prefix}: cannot convert {img.mode} image to RGB ({_short(e)})") from None
    if rgb.mode != "RGB":  # pragma: no cover - defensive
        raise DeepCanvasError(f"{prefix}: cannot convert {img.mode} image to RGB")
    return rgb


def _check_size(size, prefix: str, max_pixels: int) -> None:
    w, h = size
    if w * h > max_pixels:
        raise DeepCanvasError(
            f"{prefix}: image is too large ({w}x{h} = {w * h:,} pixels, the limit is {max_pixels:,}); "
            "it may be a decompression bomb - shrink it first"
        )
    if min(w, h) < MIN_SIDE:
        raise DeepCanvasError(
            f"{prefix}: image is too small ({w}x{h}); each side must be at least {MIN_SIDE} pixels"
        )
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise DeepCanvasError(
            f"{prefix}: image is too elongated ({w}x{h}, aspect ratio over {MAX_ASPECT}:1); crop it first"
        )


def _exif_transpose(img: Image.Image) -> Image.Image:
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF must not make a good image unreadable
        return img
    return img if out is None else out


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (new image; ``img`` is untouched)."""
    mode = img.mode
    if mode == "RGB":
        if "transparency" in img.info:
            return _flatten(img.convert("RGBA"))
        return img.copy()
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _flatten(img.convert("RGBA"))
    if mode == "P":
        if "transparency" in img.info or (img.palette is not None and img.palette.mode == "RGBA"):
            return _flatten(img.convert("RGBA"))
        return img.convert("RGB")
    if mode in ("L", "1"):
        if "transparency" in img.info:
            return _flatten(img.convert("RGBA"))
        return img.convert("L").convert("RGB")
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_to_rgb(img)
    return img.convert("RGB")  # YCbCr, LAB, HSV, ...


def _flatten(rgba: Image.Image) -> Image.Image:
    """Composite an RGBA image onto white."""
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


_SRGB = None


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc:
        global _SRGB
        try:
            if _SRGB is None:
                _SRGB = ImageCms.createProfile("sRGB")
            src = ImageCms.ImageCmsProfile(_io.BytesIO(icc))
            out = ImageCms.profileToProfile(
                img, src, _SRGB, renderingIntent=0, outputMode="RGB"  # 0: perceptual
            )
            if out is not None and out.mode == "RGB":
                return out
        except Exception:  # a broken profile: fall back to the plain conversion
            pass
    return img.convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float greyscale -> 8-bit, rescaled, not clipped."""
    a = np.asarray(img)
    if img.mode.startswith("I;16"):
        scaled = a.astype(np.float64) / 257.0  # 65535 -> 255
    else:
        a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if img.mode == "F" and lo >= 0.0 and hi <= 1.0:
            scaled = a * 255.0  # float image in [0, 1]
        elif lo >= 0.0 and hi <= 255.0:
            scaled = a  # already 8-bit range
        elif lo >= 0.0 and hi <= 65535.0:
            scaled = a / 257.0  # 16-bit data in a 32-bit container
        else:
            scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    g = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(g, "L").convert("RGB")


def _looks_like_svg(real: str, head: bytes) -> bool:
    ext = os.path.splitext(real)[1].lower()
    if ext in (".svg", ".svgz"):
        return True
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg"):
        return True
    return (text.startswith(b"<?xml") or text.startswith(b"<!doctype svg")) and b"<svg" in text


def _not_an_image_reason(real: str, head: bytes) -> str:
    ext = os.path.splitext(real)[1].lower()
    explained = _UNSUPPORTED_BY_EXTENSION.get(ext)
    if explained:
        return explained
    if head.startswith(b"%PDF"):
        return _UNSUPPORTED_BY_EXTENSION[".pdf"]
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            # a multi-byte character cut at the end of the sample is still text
            if e.start < len(head) - 4:
                return "not an image (it is not in any image format Pillow can read)"
        return "not an image (it looks like a text file)"
    return "not an image (it is not in any image format Pillow can read)"


def _short(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    if not msg:
        return type(e).__name__
    return msg if len(msg) <= 160 else msg[:157] + "..."


def _os_reason(e: OSError) -> str:
    return e.strerror or _short(e)


# --------------------------------------------------------------------------- conversions


def resize_longest(img: Image.Image, size: int) -> Image.Image:
    """Resize so the longer side is ``size`` pixels, keeping the aspect ratio (LANCZOS).

    Both up- and downscales; each side stays at least 1 pixel.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise DeepCanvasError(f"image size must be a whole number of at least 1, got {size!r}")
    size = int(size)
    w, h = img.size
    if max(w, h) == size:
        return img.copy()
    scale = size / max(w, h)
    if w >= h:
        nw, nh = size, max(1, round(h * scale))
    else:
        nw, nh = max(1, round(w * scale)), size
    return img.resize((nw, nh), Image.Resampling.LANCZOS)


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB image -> float32 tensor of shape (1, 3, H, W) with values in [0, 1]."""
    if img.mode != "RGB":
        img = _to_rgb(img)
    a = np.array(img, dtype=np.uint8, copy=True)  # (H, W, 3), writable
    t = torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).contiguous()
    return t.to(torch.float32).div_(255.0)


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> RGB image (clamped, rounded).

    A single channel ((1, 1, H, W), (1, H, W) or (H, W)) becomes grey RGB.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(t).__name__}")
    x = t.detach()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected a batch of one image, got shape {tuple(t.shape)}")
        x = x[0]
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected an image tensor of shape (1, 3, H, W), got {tuple(t.shape)}")
    x = x.to(device="cpu", dtype=torch.float32)
    x = torch.nan_to_num(x, nan=0.0).clamp_(0.0, 1.0).mul_(255.0).round_()
    a = x.to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    if a.shape[2] == 1:
        return Image.fromarray(a[:, :, 0], "L").convert("RGB")
    return Image.fromarray(a, "RGB")


# --------------------------------------------------------------------------- writing


def _output_format(p: pathlib.Path, prefix: str) -> str:
    ext = p.suffix.lower()
    choices = ", ".join(sorted(OUTPUT_FORMATS))
    if not ext:
        raise DeepCanvasError(f"{prefix}: the file name has no extension; use one of {choices}")
    fmt = OUTPUT_FORMATS.get(ext)
    if fmt is None:
        raise DeepCanvasError(f"{prefix}: cannot write '{ext}' files; use one of {choices}")
    Image.init()
    if fmt not in Image.SAVE:  # pragma: no cover - depends on how Pillow was built
        raise DeepCanvasError(f"{prefix}: this Pillow installation cannot write {fmt} files")
    return fmt


def _as_path(path: PathLike, prefix_word: str = "cannot write output") -> tuple[pathlib.Path, str]:
    try:
        fspath = os.fspath(path)
    except TypeError:
        raise DeepCanvasError(f"{prefix_word}: expected a file path, got {type(path).__name__}") from None
    if isinstance(fspath, bytes):
        fspath = os.fsdecode(fspath)
    if not fspath:
        raise DeepCanvasError(f"{prefix_word}: no file name given")
    return pathlib.Path(os.path.expanduser(fspath)), f"{prefix_word} '{fspath}'"


def _check_destination(p: pathlib.Path, prefix: str) -> pathlib.Path:
    """Common checks for a file we are about to write; return its directory."""
    if p.is_dir():
        raise DeepCanvasError(f"{prefix}: it is an existing directory; give a file name")
    parent = p.parent
    if not parent.exists():
        raise DeepCanvasError(f"{prefix}: directory '{parent}' does not exist")
    if not parent.is_dir():
        raise DeepCanvasError(f"{prefix}: '{parent}' is not a directory")
    return parent


def check_output_path(path: PathLike) -> pathlib.Path:
    """Validate an output path before any work is done; return it as a Path.

    Fails if the extension is not one we can write (see ``OUTPUT_FORMATS``),
    the path is an existing directory, or its directory is missing or not
    writable (tested by creating and deleting a temporary file there).
    """
    p, prefix = _as_path(path)
    if p.is_dir():
        raise DeepCanvasError(f"{prefix}: it is an existing directory; give a file name")
    _output_format(p, prefix)
    parent = _check_destination(p, prefix)
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".deepcanvas-probe-", suffix=".tmp"):
            pass
    except OSError as e:
        raise DeepCanvasError(f"{prefix}: directory '{parent}' is not writable ({_os_reason(e)})") from None
    return p


def _target_mode(target: str) -> int:
    """Permission bits the finished file should get (tempfiles are created 0600)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)  # keep an existing file's mode
    except OSError:
        pass
    umask = None
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
                    break
    except (OSError, ValueError, IndexError):
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary file has the same extension as ``path`` (so writers that go
    by extension work) and is synced to disk before the rename. If the body
    raises, the temporary file is removed and ``path`` is left as it was;
    ``OSError`` is reported as :class:`DeepCanvasError`, anything else is
    re-raised unchanged. A symbolic link at ``path`` is written through.
    """
    p, prefix = _as_path(path)
    parent = _check_destination(p, prefix)
    target = os.path.realpath(p) if os.path.islink(p) else os.fspath(p)
    tdir = os.path.dirname(target) or "."
    try:
        tmp = tempfile.NamedTemporaryFile(
            dir=tdir, prefix="." + os.path.basename(target) + ".", suffix=p.suffix or ".tmp", delete=False
        )
        tmp.close()
    except OSError as e:
        raise DeepCanvasError(f"{prefix}: directory '{parent}' is not writable ({_os_reason(e)})") from None
    tmp_name = tmp.name
    done = False
    try:
        yield pathlib.Path(tmp_name)
        fd = os.open(tmp_name, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if os.path.getsize(tmp_name) == 0:
            raise OSError("nothing was written")
        os.chmod(tmp_name, _target_mode(target))
        os.replace(tmp_name, target)
        done = True
        _fsync_dir(tdir)
    except OSError as e:
        raise DeepCanvasError(f"{prefix}: {_os_reason(e)}") from None
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _fsync_dir(d: str) -> None:
    """Best effort: make the rename itself durable (POSIX only)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_bytes_atomic(data: bytes, path: PathLike) -> pathlib.Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    p, _ = _as_path(path)
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
    return p


def save_image(img: Image.Image, path: PathLike) -> pathlib.Path:
    """Save ``img`` atomically, in the format given by the extension; return the path.

    JPEG is written at quality 95 without chroma subsampling; images with
    transparency are flattened onto white for formats without alpha.
    """
    p, prefix = _as_path(path)
    fmt = _output_format(p, prefix)
    kwargs: dict = {}
    if fmt == "JPEG":
        kwargs = {"quality": 95, "subsampling": 0}
        if img.mode not in ("RGB", "L"):
            img = _to_rgb(img)
    elif fmt == "WEBP":
        kwargs = {"quality": 95}
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1") and fmt != "TIFF":
        img = _to_rgb(img)
    try:
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as fh:
                img.save(fh, format=fmt, **kwargs)
                fh.flush()
    except (ValueError, KeyError) as e:  # Pillow refusing this mode/format
        raise DeepCanvasError(f"{prefix}: {_short(e)}") from None
    return p

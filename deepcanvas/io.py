"""Image files in and out, failing with a clear message instead of a traceback.

Reading
    :func:`load_image` turns whatever a person points us at into an 8-bit RGB
    :class:`PIL.Image.Image`, or raises :class:`~deepcanvas.errors.DeepCanvasError`
    with a one-line message that names the file ("cannot read style image
    'x.png': file is empty"). The image is fully decoded before it is returned,
    so a truncated file fails here and not halfway through a long run.

Writing
    :func:`check_output_path` is meant to be called before any work starts, so
    that an unwritable output is reported in a second rather than after an
    hour of optimisation. :func:`save_image` writes atomically (:mod:`atomic`).

Conversions between images, arrays and tensors are in :mod:`imaging`.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import warnings
from typing import Union

from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path, check_destination, os_reason, output_path, short_reason
from .errors import DeepCanvasError
from .imaging import to_rgb

__all__ = [
    "MIN_SIDE",
    "MAX_ASPECT",
    "OUTPUT_FORMATS",
    "load_image",
    "load_preview",
    "check_output_path",
    "save_image",
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

    f, prefix, real, head = _open_file(path, what)
    with f:
        img = _open(f, prefix, max_pixels, real, head)
        return _prepare(img, prefix, max_pixels)


# EXIF orientation -> the transpose that undoes it (as ImageOps.exif_transpose).
_ORIENT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def load_preview(path: PathLike, side: int, *, what: str = "image",
                 max_pixels: int = 100_000_000) -> tuple[Image.Image, tuple[int, int]]:
    """Check an image file as :func:`load_image` does, but return only an 8-bit RGB preview of at most ``side``
    pixels and the (oriented) size of the image, with little memory beyond the decoded pixels.

    The size is checked from the header; the first frame is decoded in full (so a truncated file fails), a JPEG
    at the smallest DCT scale that still covers ``side``; the preview is reduced from the decoded pixels in
    their own mode (16-bit greyscale by way of 32-bit) and only then converted, so no full-size RGB, float or
    alpha-composited copy is ever made: at most the decoded image plus one copy at 4 bytes a pixel.
    """
    f, prefix, real, head = _open_file(path, what)
    with f:
        img = _open(f, prefix, max_pixels, real, head)
        _check_size(img.size, prefix, max_pixels)
        (w, h), orientation = img.size, _orientation(img)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb warnings (checked above), ICO's size notes
            try:
                if img.format == "JPEG":
                    img.draft(None, (side, side))
                img.load()
                if img.mode.startswith("I;16"):  # reduce() has no 16-bit kernel; 65535 -> 255 as to_rgb
                    img = img.convert("I").reduce(max(1, max(img.size) // side)).point(lambda v: v / 257)
                elif img.mode in ("1", "P"):
                    img = img.convert("RGBA" if img.mode == "P" else "L")
            except Image.DecompressionBombError as e:
                raise DeepCanvasError(f"{prefix}: image is too large, a possible decompression bomb ({e})") from None
            except _DECODE_ERRORS as e:
                raise DeepCanvasError(f"{prefix}: image data is truncated or corrupt ({short_reason(e)})") from None
    small = img.reduce(max(1, max(img.size) // side))
    del img
    if orientation in _ORIENT:
        small = small.transpose(_ORIENT[orientation])
        if orientation >= 5:
            w, h = h, w
    try:
        rgb = to_rgb(small)
    except _DECODE_ERRORS as e:
        raise DeepCanvasError(f"{prefix}: cannot convert {small.mode} image to RGB ({short_reason(e)})") from None
    rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
    return rgb, (w, h)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112) or 1)
    except Exception:  # broken EXIF must not make a good image unreadable
        return 1


def _open_file(path: PathLike, what: str):
    """The open file at ``path`` (a regular, non-empty, non-SVG file), the message prefix, its path and first
    bytes; a one-line DeepCanvasError otherwise."""
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
        raise DeepCanvasError(f"{prefix}: {os_reason(e)}") from None

    try:
        head = f.read(4096)
        f.seek(0)
        if not head:
            raise DeepCanvasError(f"{prefix}: file is empty")
        if _looks_like_svg(real, head):
            raise DeepCanvasError(f"{prefix}: SVG is not supported; convert it to PNG first")
    except OSError as e:
        f.close()
        raise DeepCanvasError(f"{prefix}: {os_reason(e)}") from None
    except DeepCanvasError:
        f.close()
        raise
    return f, prefix, real, head



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
            raise DeepCanvasError(f"{prefix}: image data is truncated or corrupt ({short_reason(e)})") from None


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
            raise DeepCanvasError(f"{prefix}: image data is truncated or corrupt ({short_reason(e)})") from None
    img = _exif_transpose(img)
    try:
        rgb = to_rgb(img)
    except _DECODE_ERRORS as e:
        raise DeepCanvasError(f"{prefix}: cannot convert {img.mode} image to RGB ({short_reason(e)})") from None
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



def check_output_path(path: PathLike) -> pathlib.Path:
    """Validate an output path before any work is done; return it as a Path.

    Fails if the extension is not one we can write (see ``OUTPUT_FORMATS``),
    the path is an existing directory, or its directory is missing or not
    writable (tested by creating and deleting a temporary file there).
    """
    p, prefix = output_path(path)
    if p.is_dir():
        raise DeepCanvasError(f"{prefix}: it is an existing directory; give a file name")
    _output_format(p, prefix)
    parent = check_destination(p, prefix)
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".deepcanvas-probe-", suffix=".tmp"):
            pass
    except OSError as e:
        raise DeepCanvasError(f"{prefix}: directory '{parent}' is not writable ({os_reason(e)})") from None
    return p



def save_image(img: Image.Image, path: PathLike) -> pathlib.Path:
    """Save ``img`` atomically, in the format given by the extension; return the path.

    JPEG is written at quality 95 without chroma subsampling; images with
    transparency are flattened onto white for formats without alpha. A ``dpi`` in
    ``img.info`` (a print's) is recorded in PNG, JPEG and TIFF files.
    """
    p, prefix = output_path(path)
    fmt = _output_format(p, prefix)
    kwargs: dict = {}
    dpi = img.info.get("dpi")  # before any conversion, which drops info
    if fmt == "JPEG":
        kwargs = {"quality": 95, "subsampling": 0}
        if img.mode not in ("RGB", "L"):
            img = to_rgb(img)
    elif fmt == "WEBP":
        kwargs = {"quality": 95}
    if dpi and fmt in ("PNG", "JPEG", "TIFF"):
        kwargs["dpi"] = tuple(float(d) for d in dpi)
    if img.mode not in ("RGB", "RGBA", "L", "LA", "P", "1") and fmt != "TIFF":
        img = to_rgb(img)
    try:
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as fh:
                img.save(fh, format=fmt, **kwargs)
                fh.flush()
    except (ValueError, KeyError) as e:  # Pillow refusing this mode/format
        raise DeepCanvasError(f"{prefix}: {short_reason(e)}") from None
    return p

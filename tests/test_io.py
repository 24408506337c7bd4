"""Tests for deepcanvas.io: robust loading, conversions, atomic saving."""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

import deepcanvas.io as dcio
from deepcanvas.atomic import atomic_path, save_bytes_atomic
from deepcanvas.errors import DeepCanvasError
from deepcanvas.imaging import image_to_tensor, resize_longest, tensor_to_image
from deepcanvas.io import check_output_path, load_image, save_image


# --------------------------------------------------------------------------- helpers


def _noise(w=64, h=48, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _raw_png(width, height, bit_depth, color_type, rows: bytes) -> bytes:
    """A PNG built by hand (for what Pillow cannot write, e.g. 16-bit RGB)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _error(path, **kw) -> str:
    with pytest.raises(DeepCanvasError) as ei:
        load_image(path, **kw)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def _px(img, x, y):
    return img.getpixel((x, y))


# --------------------------------------------------------------------------- load errors


def test_missing_file(tmp_path):
    p = tmp_path / "nope.png"
    msg = _error(p, what="style image")
    assert msg.startswith("cannot read style image '")
    assert "nope.png" in msg and "no such file" in msg


def test_directory(tmp_path):
    d = tmp_path / "adir.png"
    d.mkdir()
    msg = _error(d)
    assert "adir.png" in msg and "directory" in msg


def test_broken_symlink(tmp_path):
    link = tmp_path / "link.png"
    link.symlink_to(tmp_path / "gone.png")
    msg = _error(link)
    assert "link.png" in msg and "symbolic link" in msg


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read anything")
def test_unreadable_real_permissions(tmp_path):
    p = tmp_path / "secret.png"
    _noise().save(p)
    p.chmod(0)
    try:
        msg = _error(p)
    finally:
        p.chmod(0o644)
    assert "secret.png" in msg and "permission denied" in msg


def test_unreadable_permission_error(tmp_path, monkeypatch):
    p = tmp_path / "secret.png"
    _noise().save(p)

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(dcio, "open", denied, raising=False)  # shadows the builtin in the module
    msg = _error(p)
    assert "secret.png" in msg and "permission denied" in msg


def test_zero_byte(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    msg = _error(p, what="style image")
    assert msg == f"cannot read style image '{p}': file is empty"


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif"), ("WEBP", "webp")])
def test_truncated(tmp_path, fmt, ext):
    buf = io.BytesIO()
    _noise(200, 150).save(buf, fmt)
    data = buf.getvalue()
    p = tmp_path / f"cut.{ext}"
    p.write_bytes(data[: len(data) // 2])
    msg = _error(p)
    assert "cut." + ext in msg and "truncated or corrupt" in msg


def test_truncated_flag_is_not_changed(tmp_path):
    from PIL import ImageFile

    before = ImageFile.LOAD_TRUNCATED_IMAGES
    p = tmp_path / "ok.png"
    _noise().save(p)
    load_image(p)
    assert ImageFile.LOAD_TRUNCATED_IMAGES == before


def test_text_file(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("hello, this is not an image\n" * 20)
    msg = _error(p)
    assert "notes.txt" in msg and "not an image" in msg and "text" in msg


def test_text_file_with_image_extension(tmp_path):
    p = tmp_path / "fake.jpg"
    p.write_text("<html><body>404 not found</body></html>")
    msg = _error(p)
    assert "fake.jpg" in msg and "not an image" in msg


def test_binary_garbage(tmp_path):
    p = tmp_path / "blob.png"
    p.write_bytes(bytes(range(256)) * 8)
    msg = _error(p)
    assert "blob.png" in msg and "not an image" in msg


SVG = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>\n'


@pytest.mark.parametrize("name", ["drawing.svg", "drawing_without_ext.png", "DRAWING.SVG"])
def test_svg(tmp_path, name):
    p = tmp_path / name
    p.write_text(SVG)
    msg = _error(p)
    assert name in msg and "SVG is not supported" in msg and "PNG" in msg


def test_decompression_bomb_default_limit(tmp_path):
    # 12000 x 12000 = 144 Mpx > 100 Mpx default; mode "1" keeps the file tiny.
    p = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(p)
    assert p.stat().st_size < 200_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not escape
        msg = _error(p)
    assert "bomb.png" in msg and "too large" in msg and "12000x12000" in msg


def test_decompression_bomb_custom_limit(tmp_path):
    p = tmp_path / "big.png"
    Image.new("L", (2000, 1000)).save(p)
    msg = _error(p, max_pixels=1_000_000)
    assert "big.png" in msg and "too large" in msg and "1,000,000" in msg
    assert load_image(p, max_pixels=2_000_000).size == (2000, 1000)


def test_max_pixels_overrides_pillow_warning_limit(tmp_path):
    # Just above Pillow's warning threshold (89.5 Mpx) but under our default 100 Mpx:
    # only the header matters, so a hand-made PNG header that fails later is enough.
    p = tmp_path / "header_only.png"
    p.write_bytes(_raw_png(9500, 9500, 1, 0, b"\x00" * 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        msg = _error(p, max_pixels=10_000)  # our limit, not Pillow's, decides
        assert "too large" in msg and "10,000" in msg
        msg = _error(p)  # 90.25 Mpx is within the default 100 Mpx: it gets as far as decoding
    assert "too large" not in msg and "truncated or corrupt" in msg


def test_pillow_hard_limit_becomes_deepcanvas_error(tmp_path):
    # 20000 x 20000 = 400 Mpx: over twice Pillow's limit, so Image.open itself refuses.
    p = tmp_path / "huge.png"
    p.write_bytes(_raw_png(20000, 20000, 1, 0, b"\x00" * 10))
    msg = _error(p, max_pixels=10**12)
    assert "huge.png" in msg and "too large" in msg


@pytest.mark.parametrize("size", [(10, 100), (100, 15), (8, 8)])
def test_too_small(tmp_path, size):
    p = tmp_path / "tiny.png"
    Image.new("RGB", size).save(p)
    msg = _error(p)
    assert "tiny.png" in msg and "too small" in msg and "16" in msg


@pytest.mark.parametrize("size", [(16, 400), (2100, 100)])
def test_too_elongated(tmp_path, size):
    p = tmp_path / "strip.png"
    Image.new("RGB", size).save(p)
    msg = _error(p)
    assert "strip.png" in msg and "aspect ratio" in msg and "20:1" in msg


def test_limits_are_inclusive(tmp_path):
    p = tmp_path / "edge.png"
    Image.new("RGB", (16, 320)).save(p)
    assert load_image(p).size == (16, 320)


def test_bad_argument_type():
    with pytest.raises(DeepCanvasError):
        load_image(12345)
    with pytest.raises(DeepCanvasError):
        load_image("")


# --------------------------------------------------------------------------- conversions


def _roundtrip(tmp_path, img, name="x.png", **save_kw):
    p = tmp_path / name
    img.save(p, **save_kw)
    out = load_image(p)
    assert out.mode == "RGB"
    return out


def test_rgb_unchanged(tmp_path):
    src = _noise()
    out = _roundtrip(tmp_path, src)
    assert np.array_equal(np.asarray(out), np.asarray(src))


def test_grayscale_l(tmp_path):
    out = _roundtrip(tmp_path, Image.new("L", (20, 20), 77))
    assert _px(out, 5, 5) == (77, 77, 77)


def test_bilevel(tmp_path):
    out = _roundtrip(tmp_path, Image.new("1", (20, 20), 1))
    assert _px(out, 0, 0) == (255, 255, 255)


def test_16bit_grey_png(tmp_path):
    a = np.full((20, 30), 65535, dtype=np.uint16)
    a[:, 10:20] = 32896  # 32896 / 257 = 128
    a[:, 20:] = 0
    img = Image.fromarray(a)
    assert img.mode == "I;16"
    out = _roundtrip(tmp_path, img)
    assert _px(out, 0, 0) == (255, 255, 255)
    assert _px(out, 15, 0) == (128, 128, 128)
    assert _px(out, 25, 0) == (0, 0, 0)


def test_16bit_rgb_png(tmp_path):
    # Pillow cannot write 16-bit RGB PNGs, so build one by hand.
    w, h = 20, 20
    row = b"\x00" + struct.pack(">HHH", 65535, 0, 32896) * w
    p = tmp_path / "rgb16.png"
    p.write_bytes(_raw_png(w, h, 16, 2, row * h))
    out = load_image(p)
    assert out.mode == "RGB" and out.size == (w, h)
    r, g, b = _px(out, 3, 3)
    assert r == 255 and g == 0 and abs(b - 128) <= 1


def test_int32_grey_16bit_range():
    a = np.full((20, 20), 65535, dtype=np.int32)
    a[:, :10] = 0
    out = load_image(Image.fromarray(a, "I"))
    assert _px(out, 15, 0) == (255, 255, 255) and _px(out, 0, 0) == (0, 0, 0)


def test_int32_grey_8bit_range_kept():
    out = load_image(Image.fromarray(np.full((20, 20), 200, dtype=np.int32), "I"))
    assert _px(out, 0, 0) == (200, 200, 200)


def test_float_grey_unit_range():
    a = np.full((20, 20), 0.25, dtype=np.float32)
    a[:, 10:] = 1.0
    out = load_image(Image.fromarray(a, "F"))
    assert _px(out, 0, 0) == (64, 64, 64)
    assert _px(out, 15, 0) == (255, 255, 255)


def test_float_grey_wide_range_is_normalised_not_clipped():
    a = np.linspace(-1000.0, 3000.0, 400, dtype=np.float32).reshape(20, 20)
    out = np.asarray(load_image(Image.fromarray(a, "F")))[:, :, 0]
    assert out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) > 200  # a ramp, not two clipped plateaus


def test_float_grey_with_nan():
    a = np.full((20, 20), 0.5, dtype=np.float32)
    a[0, 0] = np.nan
    out = load_image(Image.fromarray(a, "F"))
    assert out.mode == "RGB"


def test_la(tmp_path):
    img = Image.new("LA", (20, 20), (0, 255))
    img.paste((0, 0), (0, 0, 10, 20))  # left half fully transparent black
    out = _roundtrip(tmp_path, img)
    assert _px(out, 2, 2) == (255, 255, 255)
    assert _px(out, 15, 2) == (0, 0, 0)


def test_rgba_transparent_onto_white(tmp_path):
    img = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    img.paste((0, 0, 0, 128), (10, 0, 20, 20))
    out = _roundtrip(tmp_path, img)
    assert _px(out, 2, 2) == (255, 255, 255)
    r, g, b = _px(out, 15, 2)
    assert r == g == b and 120 <= r <= 135


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    img.paste(1, (10, 0, 20, 20))
    img.info["transparency"] = 0
    out = _roundtrip(tmp_path, img, "pal.png", transparency=0)
    assert _px(out, 2, 2) == (255, 255, 255)  # index 0 is transparent
    assert _px(out, 15, 2) == (255, 0, 0)
    out = _roundtrip(tmp_path, img, "pal.gif", transparency=0)
    assert _px(out, 2, 2) == (255, 255, 255)
    assert _px(out, 15, 2) == (255, 0, 0)


def test_palette_opaque(tmp_path):
    img = _noise().convert("P")
    out = _roundtrip(tmp_path, img, "opaque.gif")
    assert np.array_equal(np.asarray(out), np.asarray(img.convert("RGB")))


def test_cmyk_plain(tmp_path):
    img = Image.new("CMYK", (20, 20), (0, 0, 0, 0))
    img.paste((255, 255, 0, 0), (10, 0, 20, 20))
    out = _roundtrip(tmp_path, img, "cmyk.jpg", quality=95)
    r, g, b = _px(out, 2, 2)
    assert min(r, g, b) > 240  # white
    r, g, b = _px(out, 15, 2)
    assert b > 200 and r < 40 and g < 40  # cyan + magenta = blue


def test_cmyk_with_unusable_icc_falls_back(tmp_path):
    img = Image.new("CMYK", (20, 20), (0, 0, 0, 0))
    out = load_image(_with_info(img, icc_profile=b"this is not an ICC profile"))
    assert min(_px(out, 0, 0)) > 240
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = load_image(_with_info(img, icc_profile=srgb))  # wrong colour space for CMYK
    assert min(_px(out, 0, 0)) > 240


def test_cmyk_uses_icc_when_possible(monkeypatch):
    calls = []

    def spy(im, src, dst, **kw):
        calls.append(kw.get("outputMode"))
        return Image.new("RGB", im.size, (1, 2, 3))

    monkeypatch.setattr(ImageCms, "ImageCmsProfile", lambda f: object())
    monkeypatch.setattr(ImageCms, "profileToProfile", spy)
    img = _with_info(Image.new("CMYK", (20, 20)), icc_profile=b"fake")
    out = load_image(img)
    assert calls == ["RGB"] and _px(out, 0, 0) == (1, 2, 3)


def _with_info(img, **info):
    img.info.update(info)
    return img


def test_exif_orientation(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    p = tmp_path / "rotated.jpg"
    img.save(p, exif=exif, quality=95)
    out = load_image(p)
    assert out.size == (20, 40)
    r, g, b = _px(out, 10, 5)  # the left half ends up on top
    assert r > 200 and b < 60
    r, g, b = _px(out, 10, 35)
    assert b > 200 and r < 60


def test_image_object_input_is_converted_and_not_modified():
    src = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    out = load_image(src)
    assert out.mode == "RGB" and _px(out, 0, 0) == (255, 255, 255)
    assert src.mode == "RGBA" and src.getpixel((0, 0)) == (0, 0, 0, 0)
    rgb = _noise()
    out = load_image(rgb)
    assert out is not rgb and np.array_equal(np.asarray(out), np.asarray(rgb))


def test_image_object_size_checks():
    with pytest.raises(DeepCanvasError, match="too small"):
        load_image(Image.new("RGB", (5, 50)), what="content image")


def test_pathlike_and_str(tmp_path):
    p = tmp_path / "ok.webp"
    _noise().save(p)
    assert load_image(p).size == load_image(str(p)).size == (64, 48)


# --------------------------------------------------------------------------- tensors, resize


def test_tensor_roundtrip():
    img = _noise(33, 17)
    t = image_to_tensor(img)
    assert t.shape == (1, 3, 17, 33) and t.dtype == torch.float32
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    assert np.array_equal(np.asarray(tensor_to_image(t)), np.asarray(img))


def test_tensor_channel_order():
    t = image_to_tensor(Image.new("RGB", (4, 4), (255, 0, 0)))
    assert t[0, 0].min() == 1.0 and t[0, 1:].max() == 0.0


def test_tensor_to_image_clamps_and_rounds():
    t = torch.tensor([-1.0, 2.0, 0.5 / 255 + 1e-4, 0.5, float("nan")]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    out = np.asarray(tensor_to_image(t))[0, :, 0]
    assert out.tolist() == [0, 255, 1, 128, 0]


def test_tensor_to_image_shapes():
    assert tensor_to_image(torch.zeros(3, 5, 7)).size == (7, 5)
    assert tensor_to_image(torch.ones(1, 1, 5, 7)).getpixel((0, 0)) == (255, 255, 255)
    if torch.cuda.is_available():  # pragma: no cover
        assert tensor_to_image(torch.zeros(1, 3, 5, 7, device="cuda")).size == (7, 5)
    with pytest.raises(ValueError):
        tensor_to_image(torch.zeros(2, 3, 5, 7))
    with pytest.raises(ValueError):
        tensor_to_image(torch.zeros(1, 4, 5, 7))


def test_tensor_to_image_requires_grad():
    t = torch.rand(1, 3, 8, 8, requires_grad=True)
    assert tensor_to_image(t * 1.0).size == (8, 8)


@pytest.mark.parametrize(
    "size_in,longest,size_out",
    [((400, 200), 100, (100, 50)), ((200, 400), 100, (50, 100)), ((30, 20), 60, (60, 40)),
     ((1000, 10), 5, (5, 1)), ((64, 64), 64, (64, 64)), ((3, 2), 1, (1, 1))],
)
def test_resize_longest(size_in, longest, size_out):
    out = resize_longest(Image.new("RGB", size_in), longest)
    assert out.size == size_out and out.mode == "RGB"


@pytest.mark.parametrize("bad", [0, -3, 2.5, "big", None, True])
def test_resize_longest_bad_size(bad):
    with pytest.raises(DeepCanvasError):
        resize_longest(Image.new("RGB", (10, 10)), bad)


# --------------------------------------------------------------------------- output paths


def test_check_output_path_ok(tmp_path):
    for ext in ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif", "PNG", "JPG"]:
        p = tmp_path / f"out.{ext}"
        assert check_output_path(p) == p
        assert check_output_path(str(p)) == p
    assert os.listdir(tmp_path) == []  # the probe file is gone


def test_check_output_path_missing_dir(tmp_path):
    with pytest.raises(DeepCanvasError, match="does not exist") as ei:
        check_output_path(tmp_path / "nodir" / "out.png")
    assert "out.png" in str(ei.value)


def test_check_output_path_parent_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(DeepCanvasError, match="not a directory"):
        check_output_path(f / "out.png")


@pytest.mark.parametrize("name", ["result.png", "results"])
def test_check_output_path_is_directory(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    with pytest.raises(DeepCanvasError, match="existing directory") as ei:
        check_output_path(d)
    assert name in str(ei.value)


@pytest.mark.parametrize("name,words", [("out.xyz", "cannot write '.xyz'"), ("out.svg", "'.svg'"), ("out", "no extension")])
def test_check_output_path_bad_extension(tmp_path, name, words):
    with pytest.raises(DeepCanvasError) as ei:
        check_output_path(tmp_path / name)
    assert words in str(ei.value) and ".png" in str(ei.value)


def test_check_output_path_unwritable_dir(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(dcio.tempfile, "NamedTemporaryFile", denied)
    with pytest.raises(DeepCanvasError, match="not writable") as ei:
        check_output_path(tmp_path / "out.png")
    assert "out.png" in str(ei.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_check_output_path_unwritable_dir_real(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        with pytest.raises(DeepCanvasError, match="not writable"):
            check_output_path(d / "out.png")
    finally:
        d.chmod(0o755)


# --------------------------------------------------------------------------- atomic saving


@pytest.mark.parametrize("ext,fmt", [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP"), ("bmp", "BMP"), ("tiff", "TIFF"), ("gif", "GIF")])
def test_save_image_formats(tmp_path, ext, fmt):
    p = tmp_path / f"out.{ext}"
    assert save_image(_noise(), p) == p
    with Image.open(p) as im:
        assert im.format == fmt and im.size == (64, 48)
    assert os.listdir(tmp_path) == [p.name]


def test_save_image_png_lossless_and_jpeg_quality(tmp_path):
    img = _noise()
    save_image(img, tmp_path / "a.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png").convert("RGB")), np.asarray(img))
    smooth = Image.linear_gradient("L").convert("RGB").resize((64, 64))
    save_image(smooth, tmp_path / "a.jpg")
    diff = np.abs(np.asarray(Image.open(tmp_path / "a.jpg"), dtype=int) - np.asarray(smooth, dtype=int))
    assert diff.mean() < 2.0


def test_save_image_rgba_to_jpeg_flattens(tmp_path):
    save_image(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), tmp_path / "t.jpg")
    assert min(Image.open(tmp_path / "t.jpg").getpixel((5, 5))) > 245


def test_save_image_overwrites_existing(tmp_path):
    p = tmp_path / "out.png"
    p.write_bytes(b"old")
    save_image(_noise(), p)
    assert Image.open(p).size == (64, 48)
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_save_image_failure_keeps_old_file_and_cleans_up(tmp_path, monkeypatch):
    p = tmp_path / "out.png"
    p.write_bytes(b"precious")

    def broken(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(DeepCanvasError) as ei:
        save_image(_noise(), p)
    assert "out.png" in str(ei.value) and "No space left" in str(ei.value)
    assert p.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["out.png"]


def test_save_image_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    p = tmp_path / "new.png"

    def half(self, fp, *a, **k):
        fp.write(b"\x89PNG partial")
        raise OSError("disk went away")

    monkeypatch.setattr(Image.Image, "save", half)
    with pytest.raises(DeepCanvasError, match="disk went away"):
        save_image(_noise(), p)
    assert os.listdir(tmp_path) == []


def test_save_image_pillow_value_error(tmp_path, monkeypatch):
    def refuse(self, *a, **k):
        raise ValueError("cannot write mode XYZ")

    monkeypatch.setattr(Image.Image, "save", refuse)
    with pytest.raises(DeepCanvasError, match="mode XYZ"):
        save_image(_noise(), tmp_path / "o.png")
    assert os.listdir(tmp_path) == []


def test_save_image_bad_destination(tmp_path):
    with pytest.raises(DeepCanvasError, match="does not exist"):
        save_image(_noise(), tmp_path / "missing" / "o.png")
    with pytest.raises(DeepCanvasError, match="cannot write '.txt'"):
        save_image(_noise(), tmp_path / "o.txt")


def test_saved_file_gets_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = save_image(_noise(), tmp_path / "perm.png")
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_save_keeps_existing_permissions(tmp_path):
    p = tmp_path / "keep.png"
    p.write_bytes(b"x")
    p.chmod(0o640)
    save_image(_noise(), p)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640


def test_save_through_symlink(tmp_path):
    real = tmp_path / "real.png"
    real.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(real)
    save_image(_noise(), link)
    assert link.is_symlink() and Image.open(real).size == (64, 48)


def test_save_bytes_atomic(tmp_path):
    p = tmp_path / "data.gif"
    assert save_bytes_atomic(b"GIF89a...", p) == p
    assert p.read_bytes() == b"GIF89a..."
    assert os.listdir(tmp_path) == ["data.gif"]


def test_atomic_path_success(tmp_path):
    p = tmp_path / "anim.gif"
    with atomic_path(p) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".gif" and tmp != p
        tmp.write_bytes(b"abc")
        assert not p.exists()
    assert p.read_bytes() == b"abc" and not tmp.exists()


def test_atomic_path_body_error_is_reraised_and_cleaned(tmp_path):
    p = tmp_path / "anim.gif"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(p) as tmp:
            tmp.write_bytes(b"new")
            raise RuntimeError("boom")
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["anim.gif"]


def test_atomic_path_nothing_written_is_an_error(tmp_path):
    p = tmp_path / "x.png"
    with pytest.raises(DeepCanvasError, match="nothing was written"):
        with atomic_path(p):
            pass
    assert os.listdir(tmp_path) == []


def test_atomic_path_missing_dir(tmp_path):
    with pytest.raises(DeepCanvasError, match="does not exist"):
        with atomic_path(tmp_path / "no" / "x.png"):
            pass  # pragma: no cover

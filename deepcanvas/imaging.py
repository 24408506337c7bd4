"""Conversions between the forms a picture takes: PIL images, uint8 arrays, float tensors and PNG bytes.

Tensors are (1, 3, H, W) float32 in [0, 1]; arrays are (H, W, 3) uint8. Every module that turns one
into another calls this one, so a picture is quantised the same way wherever it is written.
"""

from __future__ import annotations

import io as _io

import numpy as np
import torch
from PIL import Image, ImageCms

from .errors import DeepCanvasError

__all__ = ["to_rgb", "resize_longest", "image_to_tensor", "tensor_to_image", "array_to_tensor", "tensor_to_array",
           "image_png", "tensor_png", "image_from_bytes"]


def to_rgb(img: Image.Image) -> Image.Image:
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
        img = to_rgb(img)
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



def array_to_tensor(a) -> torch.Tensor:
    """(H, W, 3) uint8 array (or anything np.array takes, e.g. a PIL image) -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(a, dtype=np.uint8)).permute(2, 0, 1)[None].float() / 255


def tensor_to_array(t: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) uint8 array, clamped and rounded half up (video frames are stored so)."""
    return (t.detach().cpu()[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def image_png(img: Image.Image) -> bytes:
    """A PIL image as PNG bytes (to send to a Ray worker, or to write atomically)."""
    buf = _io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def tensor_png(t: torch.Tensor) -> bytes:
    """A (1, 3, H, W) tensor as PNG bytes, quantised by :func:`tensor_to_array`."""
    return image_png(Image.fromarray(tensor_to_array(t)))


def image_from_bytes(data: bytes) -> Image.Image:
    """Encoded image bytes (PNG, JPEG...) as a PIL image, as the file holds it (no mode conversion)."""
    return Image.open(_io.BytesIO(data))

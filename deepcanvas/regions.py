"""Region control: masks and colour-labelled maps, read and checked before any slow work.

- A **mask** (``--mask``): white gets the effect, black keeps the photo, grey is in between. Any size (it is
  stretched over the picture) and any mode: a greyscale or colour image is read by its luminance, an image
  with transparency by its alpha channel.
- **Style masks** (``--style-masks a.png,b.png``): one mask per style image, each style painting its own
  region (Gatys et al. 2017's guided Gram matrices).
- **Semantic maps** (``--content-map``, ``--style-map``): colour-labelled pictures of the content and of the
  painting (Champandard 2016); each colour of the content map takes its texture from the same colour's region
  of the painting. Colours are matched with a tolerance, so a map saved as JPEG still works.

The techniques turn these into :class:`deepcanvas.objectives.Mask` weights on their loss terms, feather the
edges (:func:`feather`) so regions blend without a seam, and composite the result with the photo outside the
mask (:func:`composite`). :func:`plan_regions` reads a style transfer's masks and maps into a
:class:`RegionPlan`: which style images paint where, before any size is chosen.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from . import io
from .errors import DeepCanvasError

#: Two label colours closer than this (Euclidean, 0..255 RGB) are the same label (JPEG noise, antialiasing).
COLOR_TOLERANCE = 60.0
#: A colour must cover at least this share of a map to be a label (smaller specks join the nearest label).
MIN_LABEL_SHARE = 0.002
#: Below this mean weight a mask paints nowhere (an all-black mask).
EMPTY = 1.0 / 255


def split_list(spec) -> list:
    """'a.png,b.png' | ['a.png', 'b.png'] | one image -> a list."""
    if spec is None:
        return []
    if isinstance(spec, (str, Path)):
        return [s.strip() for s in str(spec).split(",") if s.strip()]
    if isinstance(spec, (Image.Image, torch.Tensor, np.ndarray)):
        return [spec]
    return list(spec)


def _alpha(src) -> np.ndarray | None:
    """The alpha channel of an image with transparency (when it has any), else None."""
    if isinstance(src, Image.Image):
        img, opened = src, False
    else:
        try:
            img, opened = Image.open(Path(src).expanduser()), True
        except Exception:  # io.load_image has already said what is wrong with the file
            return None
    try:
        if img.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in img.info:
            return None
        a = np.asarray(ImageOps.exif_transpose(img).convert("RGBA").getchannel("A"))
    finally:
        if opened:
            img.close()
    return a if a.min() < 255 else None


def load_mask(src, what: str = "mask") -> torch.Tensor:
    """A mask as (1, 1, H, W) float weights in [0, 1]: luminance, or alpha where the image has transparency.

    ``src``: a path, a PIL image, or a tensor / array of weights in [0, 1] ((H, W), (1, H, W) or (1, 1, H, W)).
    """
    if isinstance(src, (torch.Tensor, np.ndarray)):
        t = torch.as_tensor(np.asarray(src) if isinstance(src, np.ndarray) else src).detach().float()
        if t.dim() == 3 and t.shape[0] in (1, 3):
            t = t.mean(0)
        elif t.dim() == 4 and t.shape[0] == 1:
            t = t[0].mean(0)
        if t.dim() != 2 or min(t.shape) < 1:
            raise DeepCanvasError(f"{what}: expected an (H, W) array of weights, got shape {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()) or float(t.min()) < 0 or float(t.max()) > 1:
            raise DeepCanvasError(f"{what}: weights must be finite numbers between 0 and 1")
        return t[None, None]
    rgb = io.load_image(src, what=what)  # every check of a bad file, one line each
    a = _alpha(src)
    if a is not None and a.shape == (rgb.height, rgb.width):
        m = a.astype(np.float32) / 255
    else:
        m = np.asarray(rgb.convert("L"), dtype=np.float32) / 255
    return torch.from_numpy(np.ascontiguousarray(m))[None, None]


def fit(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """A (1, C, h, w) mask stretched to ``hw``: area averages when shrinking, bilinear when enlarging."""
    if tuple(mask.shape[-2:]) == tuple(hw):
        return mask
    shrink = mask.shape[-2] >= hw[0] and mask.shape[-1] >= hw[1]
    out = F.interpolate(mask, size=hw, mode="area") if shrink else F.interpolate(mask, size=hw, mode="bilinear",
                                                                                 align_corners=False)
    return out.clamp(0, 1)


def feather(mask: torch.Tensor, share: float) -> torch.Tensor:
    """Soften a mask's edges: a Gaussian blur with sigma = ``share`` of its longest side (0: as it is)."""
    from .transforms import gaussian_blur

    sigma = share * max(mask.shape[-2:])
    if sigma < 0.3:
        return mask
    return gaussian_blur(mask, sigma).clamp(0, 1)


def check_not_empty(mask: torch.Tensor, what: str) -> None:
    if float(mask.mean()) < EMPTY / 10 or float(mask.max()) < EMPTY:
        raise DeepCanvasError(f"{what} is all black: nothing would be painted (white marks where the effect goes)")


def composite(effect: torch.Tensor, photo: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask`` * effect + (1 - ``mask``) * photo, the mask stretched to the picture's size."""
    m = fit(mask.to(effect.device), tuple(effect.shape[-2:]))
    return m * effect + (1 - m) * photo.to(effect.device)


# -- semantic maps ---------------------------------------------------------------------------------------------
def hex_color(c) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in c)


def label_map(rgb: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The labels of a colour-labelled map (H, W, 3) uint8: (palette (K, 3) uint8, labels (H, W) int).

    Colours are binned 8 levels a channel, counting only pixels whose 3 x 3 neighbourhood is in the same bin
    (so the blended colours along the edges of a JPEG or an antialiased drawing are not labels). A bin holding
    at least MIN_LABEL_SHARE of the map is a label, named by its most frequent exact colour; labels closer than
    COLOR_TOLERANCE merge. Every pixel then takes the nearest label (edges and JPEG noise included).
    """
    h, w = rgb.shape[:2]
    px = rgb.reshape(-1, 3).astype(np.int64)
    bins2d = ((rgb.astype(np.int64) // 32) @ np.array([64, 8, 1])).reshape(h, w)
    pad = np.pad(bins2d, 1, mode="edge")
    interior = np.ones((h, w), bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            interior &= pad[dy:dy + h, dx:dx + w] == bins2d
    bins = np.where(interior.reshape(-1), bins2d.reshape(-1), 512)  # 512: an edge pixel, not counted
    counts = np.bincount(bins, minlength=513)[:512]
    palette: list[np.ndarray] = []
    for b in np.argsort(-counts):
        if counts[b] == 0 or counts[b] < MIN_LABEL_SHARE * len(px):
            break
        codes = px[bins == b] @ np.array([65536, 256, 1])
        vals, cnt = np.unique(codes, return_counts=True)
        top = vals[cnt.argmax()]
        colour = np.array([top >> 16, (top >> 8) & 255, top & 255])
        if all(np.linalg.norm(colour - p) > COLOR_TOLERANCE for p in palette):
            palette.append(colour)
    if not palette:  # a map of noise: no flat region anywhere
        raise DeepCanvasError(f"{what} has no flat colour regions; paint each region in one plain colour")
    pal = np.stack(palette)
    labels = np.empty(len(px), dtype=np.int64)
    for i in range(0, len(px), 1 << 20):  # nearest label, in chunks (a 4k map has 16M pixels)
        d = ((px[i:i + (1 << 20), None, :] - pal[None]) ** 2).sum(-1)
        labels[i:i + (1 << 20)] = d.argmin(1)
    return pal.astype(np.uint8), labels.reshape(h, w)


@dataclass
class Label:
    """One colour of the semantic maps: its region on the content and on each style image."""

    color: str  # '#rrggbb' as painted on the content map
    content: torch.Tensor  # (1, 1, H, W) 0/1 at the content map's resolution
    styles: list[torch.Tensor | None]  # per style image: (1, 1, h, w) 0/1 at its map's resolution, None: absent


def load_semantic_maps(content_map, style_maps: list, n_styles: int) -> list[Label]:
    """Read and match the maps: one Label per colour of the content map; a clear error for a colour the
    style maps lack, a warning for a style colour the content map lacks."""
    if len(style_maps) not in (1, n_styles) or (len(style_maps) == 1 and n_styles > 1):
        raise DeepCanvasError(f"style_map: got {len(style_maps)} maps for {n_styles} style images; give one map "
                              "per style image, in the same order")
    c_pal, c_lab = label_map(np.asarray(io.load_image(content_map, what="content map")), "content map")
    s_read = []
    for i, sm in enumerate(style_maps):
        what = "style map" if n_styles == 1 else f"style map {i + 1}"
        s_read.append((what,) + label_map(np.asarray(io.load_image(sm, what=what)), what))
    labels = []
    used = [set() for _ in s_read]
    for k, col in enumerate(c_pal):
        per_style = []
        for j, (what, pal, lab) in enumerate(s_read):
            d = np.linalg.norm(pal.astype(float) - col.astype(float), axis=1)
            hit = int(d.argmin())
            if d[hit] <= COLOR_TOLERANCE:
                used[j].add(hit)
                per_style.append(torch.from_numpy((lab == hit).astype(np.float32))[None, None])
            else:
                per_style.append(None)
        if all(p is None for p in per_style):
            where = "the style map" if len(s_read) == 1 else "any style map"
            raise DeepCanvasError(f"content map colour {hex_color(col)} has no region in {where}: paint that "
                                  "colour on the painting's map too, or remove it from the content map")
        labels.append(Label(hex_color(col), torch.from_numpy((c_lab == k).astype(np.float32))[None, None],
                            per_style))
    for j, (what, pal, _) in enumerate(s_read):
        for k, col in enumerate(pal):
            if k not in used[j]:
                warnings.warn(f"{what} colour {hex_color(col)} is not in the content map; that part of the "
                              "painting is not used", stacklevel=3)
    return labels


# -- planning: the masks and maps of a run, before any size is chosen -------------------------------------------
@dataclass
class PlannedRegion:
    """Where some of the style images paint, as read from the files (masks at their own sizes).

    ``mask``: its region of the output, None for everywhere; ``styles``: indices of the style images that paint
    there; ``blend``: their weights (sum 1); ``style_masks``: per style image, its region on the painting
    (semantic maps), or None for the whole painting.
    """

    mask: torch.Tensor | None
    styles: list[int]
    blend: list[float]
    style_masks: list[torch.Tensor] | None = None


@dataclass
class RegionPlan:
    """The regions of a run. ``effect``: the ``mask`` (where anything paints; the result is the photo
    elsewhere), None for everywhere. ``union``: composite with the union of the region masks (style masks,
    which may not cover the picture)."""

    effect: torch.Tensor | None
    regions: list[PlannedRegion]
    union: bool = False

    def masks(self, hw: tuple[int, int], share: float) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """The feathered effect mask and region masks at ``hw`` (each region's mask times the effect mask)."""
        effect = feather(fit(self.effect, hw), share) if self.effect is not None else None
        out = []
        for region in self.regions:
            m = feather(fit(region.mask, hw), share) if region.mask is not None else None
            if effect is not None:
                m = effect if m is None else m * effect
            out.append(m)
        if self.union:
            u = torch.stack([m for m in out if m is not None]).sum(0).clamp(0, 1)
            effect = u if effect is None else effect * u
        return effect, out


def check_mask_count(n_masks: int, n_styles: int) -> None:
    """One mask per style image (the studio checks this before a job is queued, the API before any work)."""
    if n_masks != n_styles:
        raise DeepCanvasError(f"style_masks: got {n_masks} masks for {n_styles} style images; give one "
                              "mask per style image, in the same order")


def plan_regions(mask, style_masks, content_map, style_map, n_styles: int, blend: list[float],
                 blend_given: bool) -> RegionPlan | None:
    """Read and check the masks and maps (a one-line error for each kind of bad input); None if none given."""
    s_masks, s_maps = split_list(style_masks), split_list(style_map)
    if mask is None and not s_masks and content_map is None and not s_maps:
        return None
    effect = None
    if mask is not None:
        effect = load_mask(mask, "mask")
        check_not_empty(effect, "the mask")
    if s_masks and (content_map is not None or s_maps):
        raise DeepCanvasError("give either style_masks (a region per style) or content_map and style_map "
                              "(regions matched by colour), not both")
    if s_masks:
        check_mask_count(len(s_masks), n_styles)
        if blend_given:
            raise DeepCanvasError("style_blend_weights mixes styles in one place; with style_masks each style has "
                                  "its own region")
        regions = []
        for i, sm in enumerate(s_masks):
            what = f"style mask {i + 1}" + (f" ('{sm}')" if isinstance(sm, (str, Path)) else "")
            m = load_mask(sm, what)
            check_not_empty(m, what)
            regions.append(PlannedRegion(m, [i], [1.0]))
        return RegionPlan(effect, regions, union=True)
    if content_map is not None or s_maps:
        if content_map is None or not s_maps:
            raise DeepCanvasError("semantic maps come in pairs: give content_map and style_map together")
        regions = []
        for label in load_semantic_maps(content_map, s_maps, n_styles):
            idx = [i for i, sm in enumerate(label.styles) if sm is not None]
            total = sum(blend[i] for i in idx) or 1.0
            regions.append(PlannedRegion(label.content, idx, [blend[i] / total for i in idx],
                                         [label.styles[i] for i in idx]))
        return RegionPlan(effect, regions)
    return RegionPlan(effect, [PlannedRegion(None, list(range(n_styles)), list(blend))])

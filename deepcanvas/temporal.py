"""What ties the frames of a clip together in time (Ruder, Dosovitskiy & Brox 2016).

- the optical flow between consecutive *input* frames (flow.py: OpenCV's DIS flow, both ways) says
  where each pixel of frame t was in frame t-1; a forward-backward check marks the pixels that just
  appeared (disocclusions) and motion boundaries. :class:`Flows` computes each pair once.
- :func:`temporal_targets`: the earlier outputs warped to frame t, each with the mask of the pixels
  it may be trusted for, for the warm start and the temporal loss (objectives.Temporal).
- with Ray, a clip is cut into overlapping chunks (:func:`chunk_ranges`) styled in parallel and
  joined with a cross-fade (:func:`join_chunks`).
"""

from __future__ import annotations

import numpy as np
import torch

from . import flow
from .limits import check_number

#: How the previous output is moved along the flow (flow.warp): bicubic, so the blur does not compound.
WARP_MODE = "bicubic"


def parse_offsets(long_term) -> list[int]:
    """[1] plus the long-term offsets, e.g. '2,4' -> [1, 2, 4]."""
    if long_term in (None, "", 0):
        return [1]
    items = long_term.replace(" ", "").split(",") if isinstance(long_term, str) else list(long_term)
    out = sorted({1} | {int(check_number("long_term offset", x, integer=True, positive=True, maximum=100))
                        for x in items if str(x)})
    return out


class Flows:
    """Backward flows and consistency masks between input frames, computed once each."""

    def __init__(self, frames: list[np.ndarray], preset: str):
        self.frames, self.preset = frames, preset
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def get(self, t: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(flow t -> j, mask of frame t's pixels visible in frame j)."""
        if (t, j) not in self._cache:
            for key in [k for k in self._cache if k[0] < t]:  # frames are styled in order: earlier ones are done
                del self._cache[key]
            self._cache[(t, j)] = flow.flows_and_mask(self.frames[j], self.frames[t], self.preset)
        return self._cache[(t, j)]


def temporal_targets(t: int, offsets: list[int], flows: Flows, outputs: dict[int, torch.Tensor]):
    """[(warped earlier output, mask)] for frame t: each pixel tied to the nearest earlier frame it was seen in.

    Ruder et al.'s long-term weights: c_j minus everything already claimed by a nearer frame, floored at 0.
    """
    out, claimed = [], None
    for j in offsets:
        if t - j < 0 or (t - j) not in outputs:
            continue
        fl, m = flows.get(t, t - j)
        m = torch.from_numpy(m)[None, None]
        eff = m if claimed is None else (m - claimed).clamp_min(0)
        claimed = m if claimed is None else torch.maximum(claimed, m)
        out.append((flow.warp(outputs[t - j], fl, WARP_MODE), eff))
    return out


def warped_blend(t: int, flows: Flows, previous: torch.Tensor, current: torch.Tensor, blend: float) -> torch.Tensor:
    """Frame t's start for a dream video: ``blend`` of the previous dream warped to it, the rest the new frame
    (the new frame alone where the warp is not trusted)."""
    fl, m = flows.get(t, t - 1)
    m = torch.from_numpy(m)[None, None]
    warped = flow.warp(previous, fl, WARP_MODE)
    return (m * (blend * warped + (1 - blend) * current) + (1 - m) * current).clamp(0, 1)


def chunk_ranges(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """[(first, end)] per chunk: cores of ``chunk`` frames, each chunk starting ``overlap`` frames early."""
    chunk = max(1, chunk)
    out = []
    a = 0
    while a < n:
        b = min(n, a + chunk)
        out.append((max(0, a - overlap), b))
        a = b
    return out


def join_chunks(ranges: list[tuple[int, int]], outputs: list[list[np.ndarray]], n: int) -> list[np.ndarray]:
    """One frame per index from overlapping chunks: in an overlap, a cross-fade from the earlier chunk to the later.

    Frame ``a - overlap + j`` of an overlap of k frames takes (j + 1) / (k + 1) of the later chunk, so the
    change between the chunks' stylisations is spread over k + 1 frame pairs instead of landing on one.
    """
    joined: list[np.ndarray | None] = [None] * n
    for (a, b), outs in zip(ranges, outputs):
        for idx, img in zip(range(a, b), outs):
            if joined[idx] is None:
                joined[idx] = img.astype(np.float32)
                continue
            # the overlap: previous chunk's frame already there
            prev_end = max(e for (s, e) in ranges if s < a) if any(s < a for s, _ in ranges) else a
            k = prev_end - a
            w = (idx - a + 1) / (k + 1)
            joined[idx] = (1 - w) * joined[idx] + w * img.astype(np.float32)
    return [np.clip(j + 0.5, 0, 255).astype(np.uint8) for j in joined]

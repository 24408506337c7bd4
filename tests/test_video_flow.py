"""Optical flow, warping, occlusion masks and the temporal loss, on synthetic motion with known truth."""

import numpy as np
import pytest
import torch
from PIL import Image

from deepcanvas import flow
from deepcanvas.objectives import Temporal
from deepcanvas.tiling import Tile

from doubles import DATA, check_gradient


def _photo(w=200, h=150):
    return np.asarray(Image.open(DATA / "chelsea.jpg").convert("RGB").resize((w, h), Image.BICUBIC))


def _shifted_pair(dx, dy, w=160, h=120):
    """(a, b) where b's content is a's moved by (-dx, -dy): b[y, x] = a[y + dy, x + dx]."""
    big = _photo()
    a = big[10:10 + h, 10:10 + w]
    b = big[10 + dy:10 + dy + h, 10 + dx:10 + dx + w]
    return a, b


def _t(a):
    return torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("dx,dy", [(3, 2), (-4, 1), (0, -5)])
def test_dis_flow_recovers_a_known_shift_within_half_a_pixel(dx, dy):
    a, b = _shifted_pair(max(dx, 0), max(dy, 0)) if dx >= 0 and dy >= 0 else (None, None)
    if a is None:  # negative shifts: swap the roles of the two crops
        big = _photo()
        a = big[20:140, 20:180]
        b = big[20 + dy:140 + dy, 20 + dx:180 + dx]
    f = flow.flow(b, a)  # b[y, x] ~ a[y + f_y, x + f_x], so f = (dx, dy)
    interior = f[16:-16, 16:-16]
    err = np.abs(interior - np.array([dx, dy], np.float32))
    assert err.mean() < 0.5 and np.median(err) < 0.25, err.mean(0).mean(0)
    # and it is not simply zero: the other direction gives the opposite shift
    assert np.median(flow.flow(a, b)[16:-16, 16:-16, 0]) == pytest.approx(-dx, abs=0.5)


def test_warp_along_a_shift_equals_the_shifted_image():
    a, b = _shifted_pair(3, 2)
    truth = np.zeros(a.shape[:2] + (2,), np.float32)
    truth[..., 0], truth[..., 1] = 3, 2
    w = flow.warp(_t(a), truth)  # a sampled at x + (3, 2) is b
    assert torch.allclose(w[..., :-2, :-3], _t(b)[..., :-2, :-3], atol=1e-5)
    # a sub-pixel shift is bilinear interpolation between the neighbours
    half = np.full(a.shape[:2] + (2,), 0.5, np.float32)
    half[..., 1] = 0
    w = flow.warp(_t(a), half)
    assert torch.allclose(w[..., :-1], (_t(a)[..., :-1] + _t(a)[..., 1:]) / 2, atol=1e-5)
    # the flow estimated by DIS warps the first frame onto the second almost exactly in the interior
    back, _ = flow.flows_and_mask(a, b)
    d = (flow.warp(_t(a), back) - _t(b)).abs()[..., 8:-8, 8:-8].mean()
    assert d < 0.01 < (_t(a) - _t(b)).abs().mean()


def test_occlusion_mask_marks_the_strip_that_comes_into_view():
    a, b = _shifted_pair(4, 0)  # the picture moves left: a 4-px strip on the right of b is new
    _, mask = flow.flows_and_mask(a, b)
    assert mask[:, -4:].mean() < 0.2  # the disoccluded strip
    assert mask[10:-10, 10:-10].mean() > 0.97  # everything else stays visible
    # consistency() on exact flows: the strip x + 4 > W - 1 is out, nothing else
    h, w = a.shape[:2]
    fwd = np.zeros((h, w, 2), np.float32)
    fwd[..., 0] = -4
    bwd = -fwd
    m = flow.consistency(fwd, bwd)
    assert m[:, : w - 4].min() == 1 and m[:, w - 4:].max() == 0


def test_occlusion_mask_marks_what_a_moving_object_uncovers():
    h, w = 60, 80
    # exact flows for a 10x10 block moving right by 5 px over a still background
    fwd = np.zeros((h, w, 2), np.float32)
    fwd[20:30, 20:30, 0] = 5  # block at x 20..29 in frame t-1 -> 25..34 in frame t
    bwd = np.zeros((h, w, 2), np.float32)
    bwd[20:30, 25:35, 0] = -5
    m = flow.consistency(fwd, bwd)
    # frame t's background at x 20..24 was under the block in t-1: disoccluded
    assert m[21:29, 20:24].max() == 0
    # far from the block everything is visible; so is the block's inside
    assert m[:, 50:].min() == 1 and m[:10].min() == 1
    assert m[22:28, 28:32].min() == 1


def test_warping_error_is_zero_for_a_perfectly_consistent_sequence():
    a, b = _shifted_pair(3, 2)
    fl = np.zeros(a.shape[:2] + (2,), np.float32)
    fl[..., 0], fl[..., 1] = 3, 2
    mask = np.ones(a.shape[:2], np.float32)
    mask[-2:], mask[:, -3:] = 0, 0
    assert flow.warping_error([_t(a), _t(b)], [fl], [mask])[0] < 1e-5
    noisy = _t(b) + 0.1 * torch.randn_like(_t(b))
    assert flow.warping_error([_t(a), noisy], [fl], [mask])[0] > 0.05


@pytest.mark.parametrize("mode", ["scaled", "mse"])
def test_temporal_loss_gradient_is_right_and_zero_where_occluded(mode):
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 12, 16, generator=g)
    mask = torch.ones(1, 1, 12, 16)
    mask[..., :, 10:] = 0  # occluded columns
    mask[..., 3, 2] = 0
    obj = Temporal(target, mask, mode)
    # differences bounded away from 0, where the scaled loss's |d| has its kink
    sign = torch.where(torch.rand(1, 3, 12, 16, generator=g) > 0.5, 1.0, -1.0)
    x = (target + sign * (0.2 + 0.3 * torch.rand(1, 3, 12, 16, generator=g))).double()
    check_gradient(lambda img: obj.loss({}, img), x)
    x = x.clone().requires_grad_(True)
    obj.loss({}, x).backward()
    assert x.grad[..., 10:].abs().max() == 0 and x.grad[..., 3, 2].abs().max() == 0
    visible = mask.expand_as(x.grad) > 0
    assert x.grad[visible].abs().min() > 0
    # the occluded pixels' values do not change the loss at all
    y = x.detach().clone()
    y[..., 10:] = torch.rand(1, 3, 12, 6, generator=g, dtype=torch.float64)
    assert float(obj.loss({}, y)) == pytest.approx(float(obj.loss({}, x.detach())), abs=1e-7)
    # zero where the image equals the target on the visible pixels
    assert float(obj.loss({}, target.double())) < 1e-8


def test_temporal_loss_in_tiles_sums_to_the_whole():
    g = torch.Generator().manual_seed(1)
    target, x = torch.rand(1, 3, 20, 24, generator=g), torch.rand(1, 3, 20, 24, generator=g)
    mask = (torch.rand(1, 1, 20, 24, generator=g) > 0.3).float()
    for mode in ("scaled", "mse"):
        obj = Temporal(target, mask, mode)
        # two tiles: rows 0..11 (core 0..9) and rows 6..19 (core 4..13 of the tile = rows 10..19)
        t1 = obj.partial({}, x[..., 0:12, :], Tile(0, 10, 0, 24, 0, 0))
        t2 = obj.partial({}, x[..., 6:20, :], Tile(4, 14, 0, 24, 6, 0))
        tot = [a + b for a, b in zip(t1, t2)]
        assert float(obj.from_totals(tot)) == pytest.approx(float(obj.loss({}, x)), rel=1e-5)


def test_long_term_targets_tie_each_pixel_to_the_nearest_frame_it_was_seen_in():
    from deepcanvas.temporal import parse_offsets, temporal_targets

    h, w = 6, 8
    m1 = np.ones((h, w), np.float32)
    m1[:, :3] = 0  # hidden in t-1 (say, behind an object) ...
    m2 = np.ones((h, w), np.float32)
    m2[:, :1] = 0  # ... but columns 1, 2 were visible in t-2

    class Flows:  # still camera: zero flow, the masks above
        def get(self, t, j):
            return np.zeros((h, w, 2), np.float32), {1: m1, 2: m2}[t - j]

    outputs = {3: torch.full((1, 3, h, w), 0.3), 2: torch.full((1, 3, h, w), 0.6)}
    (w1, c1), (w2, c2) = temporal_targets(4, parse_offsets("2"), Flows(), outputs)
    assert torch.allclose(w1, outputs[3]) and torch.allclose(w2, outputs[2])
    assert c1[0, 0].tolist() == m1.tolist()
    expected = np.zeros((h, w), np.float32)
    expected[:, 1:3] = 1  # only what t-1 could not give
    assert c2[0, 0].tolist() == expected.tolist()
    assert parse_offsets(None) == [1] and parse_offsets("4,2") == [1, 2, 4]

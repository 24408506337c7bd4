"""Tiled gradients equal whole-image gradients where the tile margin covers the receptive field."""

import random

import pytest
import torch
from torch import nn

from deepcanvas.models.layered import LayeredNet, Preprocess
from deepcanvas.objectives import (AlphaNorm, Content, FeatureDistance, GuideMatch, L2, LayerEnergy, OutOfRange,
                                   Style, TotalVariation, gram, tiled_grams)
from deepcanvas.tiling import Tile, grid, tiled_features, tiled_samples

from doubles import tiny_relu_net as tiny_net, whole_and_tiled





def objectives(net, img):
    with torch.no_grad():
        t = net(torch.rand_like(img), ["r1", "r2", "r3"])
    return [
        Style("r1", gram(t["r1"])) + 0.5 * Style("r3", gram(t["r3"])),
        Style("r2", gram(t["r2"], "chw"), "mse"),
        Content("r2", t["r2"]) + Content("r3", t["r3"], "mse"),
        TotalVariation("l2") + TotalVariation("l1", scale=255, reduction="sum") + TotalVariation("beta", beta=1.5),
        LayerEnergy("r2") + LayerEnergy("r3", channels=[1, 5]),
        GuideMatch("r2", t["r2"][..., :4, :4]),
        FeatureDistance("r3", t["r3"]) + L2() + AlphaNorm(4.0),
        1e-3 * OutOfRange() + Content("r3", t["r3"]),
    ]


@pytest.mark.parametrize("k", range(8))
def test_tiled_gradient_equals_whole(k):
    net = tiny_net()
    img = torch.rand(1, 3, 80, 112) * 1.4 - 0.2  # some pixels out of range, for OutOfRange
    (g_whole, l_whole), (g_tiled, l_tiled) = whole_and_tiled(net, objectives(net, img)[k], img)
    assert l_tiled == pytest.approx(l_whole, rel=1e-4, abs=1e-6)
    # Receptive field of r3 is 18 px; a 16 px margin leaves a faint difference at core borders only.
    assert torch.allclose(g_tiled, g_whole, rtol=1e-3, atol=1e-3 * g_whole.abs().max().item())


def test_grid_partitions_and_moves():
    rng = random.Random(0)
    boxes = grid(100, 70, 32, rng)
    cover = torch.zeros(100, 70, dtype=torch.int)
    for y0, y1, x0, x1 in boxes:
        cover[y0:y1, x0:x1] += 1
        assert y0 % 16 == 0 and x0 % 16 == 0
    assert (cover == 1).all()
    assert {tuple(grid(100, 70, 32, random.Random(s))[0]) for s in range(10)} != {tuple(boxes[0])}


def test_tile_crops_align_with_whole_image_features():
    net = tiny_net()
    img = torch.rand(1, 3, 64, 96)
    whole = net(img, ["r3"])["r3"]
    tile = img[..., 16:64, 32:96]
    r = Tile(16, 32, 16, 48, 16, 32)  # core 32..48 x 48..80 of the image
    part = r.crop(net(tile, ["r3"])["r3"], tile)
    target = r.crop_target(whole, part.new_zeros(1, 16, 12, 16), tile)
    assert part.shape == target.shape == (1, 16, 4, 8)


def test_tiled_targets_equal_whole():
    """Content targets and Gram matrices of an image larger than a tile, computed tile by tile."""
    net = tiny_net()
    img = torch.rand(1, 3, 80, 112)
    layers = ["r1", "r2", "r3"]
    with torch.no_grad():
        whole = net(img, layers)
    feats = tiled_features(img, lambda p: net(p, layers), layers, tile=64, margin=16)
    for l in layers:
        assert feats[l].shape == whole[l].shape
        assert torch.allclose(feats[l], whole[l], atol=1e-3 * whole[l].abs().max().item())
    for norm in ("hw", "chw", "none"):
        grams = tiled_grams(img, lambda p: net(p, layers), layers, norm, tile=64, margin=16)
        for l in layers:
            assert torch.allclose(grams[l], gram(whole[l], norm), rtol=1e-3, atol=1e-6)
    # An image that fits in one tile is computed in one piece.
    one = tiled_features(img, lambda p: net(p, layers), layers, tile=112, margin=16)
    grams = tiled_grams(img, lambda p: net(p, layers), layers, "hw", tile=112, margin=16)
    for l in layers:
        assert torch.equal(one[l], whole[l])
        assert torch.allclose(grams[l], gram(whole[l], "hw"), rtol=1e-6)


def test_tiled_samples_are_the_whole_maps_values():
    """A random subset of each layer's positions, gathered tile by tile, holds the whole map's values there:
    every position drawn once, spread over the grid, the same subset for the same seed."""
    torch.manual_seed(0)
    net = tiny_net()
    img = torch.rand(1, 3, 80, 112)
    layers = ["r1", "r2", "r3"]
    with torch.no_grad():
        whole = net(img, layers)
        got = tiled_samples(img, lambda p: net(p, layers), layers, tile=64, margin=16, count=200)
        again = tiled_samples(img, lambda p: net(p, layers), layers, tile=64, margin=16, count=200)
    for l in layers:
        c, h, w = whole[l].shape[1:]
        flat = whole[l].reshape(c, -1)
        n = min(200, h * w)
        assert got[l].shape == (1, c, 1, n)
        assert torch.equal(got[l], again[l])
        # Each sample is one of the map's columns (a position), and no two are the same position.
        d = torch.cdist(got[l][0, :, 0].T, flat.T)
        nearest = d.argmin(1)
        assert d.min(1).values.max() <= 1e-3 * flat.abs().max()
        assert nearest.unique().numel() == n
        if h * w > 200:  # spread over the grid: both halves of the image are drawn from
            cols = nearest % w
            assert (cols < w // 2).any() and (cols >= w // 2).any()

"""The sliced-Wasserstein loss computed in tiles (gathered projections) equals the whole-image loss."""

import random

import pytest
import torch

from deepcanvas.objectives import Mask, SlicedWasserstein, Sum
from deepcanvas.param import PixelParam
from deepcanvas.render import Renderer

from doubles import tiny_relu_net


def swd_terms(net, kind: str, seed: int):
    """Sliced-Wasserstein terms on every layer of the tiny net (and the pixels), as style transfer builds them."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(1)
    style_img = torch.rand(1, 3, 48, 64)
    with torch.no_grad():
        t = net(style_img, ["r1", "r2", "r3"])
    out_mask = torch.zeros(1, 1, 80, 112)
    out_mask[..., 8:60, 20:100] = 1.0
    out_mask[..., 60:70, :] = 0.4  # a soft edge
    terms = []
    for layer, positions in (("r1", 1000), ("r2", 300), ("r3", None)):
        feats = [(t[layer], 1.0)]
        mask = None
        if kind == "semantic":  # the painting's region on the style side, and the picture's region
            sm = torch.zeros(1, 1, *t[layer].shape[-2:])
            sm[..., :, : t[layer].shape[-1] // 2] = 1.0
            feats = [(t[layer], 1.0, sm)]
        if kind in ("mask", "semantic"):
            mask = Mask(out_mask)
        terms.append(SlicedWasserstein(layer, feats, projections=8, quantiles=64, generator=g, positions=positions,
                                       mask=mask))
    pix = [(style_img, 1.0)]
    terms.append(0.2 * SlicedWasserstein(SlicedWasserstein.PIXELS, pix, projections=4, generator=g,
                                         positions=2000, mask=Mask(out_mask) if kind != "plain" else None))
    return Sum([tw for o in terms for tw in o.terms()])


@pytest.mark.parametrize("kind", ["plain", "mask", "semantic"])
def test_tiled_swd_gradient_equals_whole(kind):
    net = tiny_relu_net()
    torch.manual_seed(0)
    img = torch.rand(1, 3, 80, 112)
    results = []
    for tile in (None, 96):  # 96 px tiles with a 32 px margin (r3's receptive field is 18 px): many tiles
        p = PixelParam(img)
        r = Renderer(net, swd_terms(net, kind, seed=5), p, tile=tile, tile_margin=32, rng=random.Random(3),
                     optimizer="sgd")
        for _ in range(2):  # two steps: the second draws new projections and positions, the same in both
            p.pixels.grad = None
            r.closure()
        results.append((p.pixels.grad.clone(), r.last_loss, r.last_parts))
    (g_whole, l_whole, _), (g_tiled, l_tiled, _) = results
    assert g_whole.abs().max() > 0
    assert l_tiled == pytest.approx(l_whole, rel=1e-5)
    # Float tolerance: the tiles' projections differ from the whole image's in the last bits (another summation
    # order), which can swap two near-equal values in the sort and so the targets their positions are pulled to.
    # That moves a few pixels' gradients (0.3% of them on an AMD EPYC; earlier machines kept them all within
    # 1e-3); a tile's missing or doubled share would move a whole tile's.
    close = torch.isclose(g_tiled, g_whole, rtol=1e-3, atol=1e-3 * g_whole.abs().max().item())
    assert close.float().mean() > 0.99
    assert (g_tiled - g_whole).norm() < 1e-2 * g_whole.norm()
    if kind != "plain":  # the mask's zero region gets no gradient from the picture's own positions
        assert g_tiled[..., 72:, :].abs().max() < g_tiled.abs().max()


def test_tiled_swd_draws_differ_between_steps_and_cover_the_sample():
    """Each tiled step gathers exactly ``positions`` values from the tiles, a new subset each step."""
    net = tiny_relu_net()
    obj = swd_terms(net, "plain", seed=1).terms()[0][1]
    img = torch.rand(1, 3, 80, 112)
    counts = []
    from deepcanvas.tiling import tile_boxes
    for _ in range(2):
        obj.start_step(img)
        n = 0
        for (ty0, ty1, tx0, tx1), core in tile_boxes(80, 112, 96, 32, random.Random(0)):
            pix = img[..., ty0:ty1, tx0:tx1]
            n += obj.partial(net(pix, ["r1"]), pix, core)[0].shape[-1]
        counts.append((n, obj._step[2].clone()))
    assert counts[0][0] == counts[1][0] == 1000
    assert not torch.equal(counts[0][1], counts[1][1])


def test_a_picture_of_tile_size_is_one_piece():
    """The mirrored margins do not count against the tile: --size 1024 with the 1024 px tile is not cut up."""
    from deepcanvas.techniques.style_objective import border_pad
    from deepcanvas.techniques.style_plan import work_tile

    for hw in ((1024, 768), (1024, 1024), (1000, 7)):
        box = border_pad(hw)
        padded = (hw[0] + box[0] + box[1], hw[1] + box[2] + box[3])
        assert max(padded) <= work_tile(1024, box)
    box = border_pad((1040, 800))
    assert 1040 + box[0] + box[1] > work_tile(1024, box)  # a larger picture is tiled


@pytest.mark.slow  # VGG-16 at 400 px, in tiles
def test_cli_style_swd_runs_in_tiles(tmp_path, capsys, monkeypatch):
    """The default method (swd) above the tile size: computed tile by tile, no refusal."""
    from PIL import Image

    import deepcanvas.render as render
    from deepcanvas.cli import main
    from doubles import DATA

    calls = []
    original = render.tiled_backward
    monkeypatch.setattr(render, "tiled_backward", lambda *a, **k: calls.append(1) or original(*a, **k))
    out = tmp_path / "big.png"
    code = main(["style", str(DATA / "chelsea.jpg"), str(DATA / "swirls.jpg"), "-o", str(out), "--size", "400",
                 "--tile", "384", "--iterations", "2", "--no-multiscale", "--quiet", "--seed", "0"])
    assert code == 0, capsys.readouterr().err
    assert len(calls) == 2  # every step tiled
    with Image.open(out) as im:
        assert max(im.size) == 400

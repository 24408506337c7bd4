"""The content loss at a coarse scale (content_scale): blind to fine detail, exact in tiles, refused when odd."""

import pytest
import torch

import deepcanvas
from deepcanvas.errors import DeepCanvasError
from deepcanvas.objectives import CoarseContent, Content

from doubles import DATA, tiny_relu_net, whole_and_tiled


def fine_noise(h, w, amount=0.2):
    """A checker of +/- amount whose every 2x2 block averages to zero: detail only a full-size view sees."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return (amount * (1 - 2 * ((yy + xx) % 2))).float().expand(1, 3, h, w)


@pytest.mark.parametrize("factor", [2, 4])
def test_coarse_content_ignores_fine_noise_that_full_size_sees(factor):
    net = tiny_relu_net()
    torch.manual_seed(0)
    photo = torch.rand(1, 3, 32, 48) * 0.6 + 0.2
    noisy = photo + fine_noise(32, 48)
    with torch.no_grad():
        full = Content("r2", net(photo, ["r2"])["r2"])
        coarse = CoarseContent(net, "r2", net(CoarseContent.downsample(photo, factor), ["r2"])["r2"], factor)
        # The same picture scores the same (a tiny offset: scaled_mse's 0/0 guard); the checker moves the
        # full-size loss, not the coarse one.
        for x in (photo, noisy):
            assert float(coarse.loss(net(x, ["r2"]), x)) < 1e-4
        assert float(full.loss(net(noisy, ["r2"]), noisy)) > 0.05
    # A coarse change (a brighter left half) is seen at the coarse scale too.
    moved = photo.clone()
    moved[..., :24] += 0.2
    with torch.no_grad():
        assert float(coarse.loss({}, moved)) > 0.05


def test_coarse_content_tiled_gradient_equals_whole():
    net = tiny_relu_net()
    torch.manual_seed(1)
    img = torch.rand(1, 3, 80, 112)
    with torch.no_grad():
        target = net(CoarseContent.downsample(torch.rand_like(img), 2), ["r2"])["r2"]
    (g_whole, l_whole), (g_tiled, l_tiled) = whole_and_tiled(net, CoarseContent(net, "r2", target, 2), img)
    assert g_whole.abs().max() > 0
    assert l_tiled == pytest.approx(l_whole, rel=1e-4)
    assert torch.allclose(g_tiled, g_whole, rtol=1e-3, atol=1e-3 * g_whole.abs().max().item())


def test_content_scale_refused_in_one_line():
    with pytest.raises(DeepCanvasError, match="content_scale must be 1, 2 or 4, got 3"):
        deepcanvas.style_transfer(DATA / "chelsea.jpg", DATA / "swirls.jpg", size=32, iterations=1, content_scale=3)
    with pytest.raises(DeepCanvasError, match="factor must be 2 or 4"):
        CoarseContent(tiny_relu_net(), "r2", torch.zeros(1, 16, 4, 4), 8)


def test_content_scale_reaches_the_picture():
    kw = dict(model=tiny_relu_net(), content_layers="r2", style_layers="r1,r2", size=48, iterations=3, seed=0,
              device="cpu")
    full = deepcanvas.style_transfer(DATA / "chelsea.jpg", DATA / "swirls.jpg", **kw)
    coarse = deepcanvas.style_transfer(DATA / "chelsea.jpg", DATA / "swirls.jpg", content_scale=2, **kw)
    assert coarse.size == full.size and coarse.tobytes() != full.tobytes()

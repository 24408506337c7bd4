"""Losses against values computed by hand."""

import math

import pytest
import torch

from deepcanvas.errors import DeepCanvasError
from deepcanvas.objectives import (AlphaNorm, Content, FeatureDistance, L2, LayerEnergy, OutOfRange, SlicedWasserstein,
                                   Style, Sum, Temporal, TotalVariation, gram, masked_gram)


def feats():
    # (1, 2, 2, 2): channel 0 = [[1, 2], [3, 4]], channel 1 = [[0, 1], [0, 1]]
    return torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])


def test_gram_by_hand():
    f = feats()
    # <c0, c0> = 1+4+9+16 = 30, <c0, c1> = 2+4 = 6, <c1, c1> = 2
    raw = torch.tensor([[[30.0, 6.0], [6.0, 2.0]]])
    assert torch.allclose(gram(f, "none"), raw)
    assert torch.allclose(gram(f, "hw"), raw / 4)
    assert torch.allclose(gram(f, "chw"), raw / 8)


def test_content_mse_and_scaled_by_hand():
    f = feats()
    t = torch.zeros_like(f)
    acts = {"l": f}
    # squares: 1+4+9+16+0+1+0+1 = 32 over 8 elements
    assert Content("l", t, "mse").loss(acts, None).item() == pytest.approx(4.0)
    t2 = f + torch.tensor([1.0, -1, 2, 0, 0, 0, 0, 0]).view(1, 2, 2, 2)
    d2, d1 = 1 + 1 + 4, 1 + 1 + 2  # sum d^2, sum |d|
    rms = math.sqrt((t2 ** 2).mean().item())
    assert Content("l", t2, "scaled").loss(acts, None).item() == pytest.approx(d2 / d1 / rms, rel=1e-5)


def test_style_mse_matches_neural_style_pt_formula():
    f = feats()
    target = torch.zeros(1, 2, 2)
    g = torch.tensor([[30.0, 6.0], [6.0, 2.0]]) / 8
    expected = (g ** 2).mean().item()
    assert Style("l", target, "mse").loss({"l": f}, None).item() == pytest.approx(expected)


def test_style_scaled_is_invariant_to_activation_scale():
    f = feats()
    target = gram(f * 0.5 + 0.1, "hw")
    a = Style("l", target).loss({"l": f}, None)
    b = Style("l", gram(10 * (f * 0.5 + 0.1), "hw")).loss({"l": 10 * f}, None)
    assert a.item() > 0
    assert b.item() == pytest.approx(a.item(), rel=1e-4)


def test_total_variation_by_hand():
    img = torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]])  # dx: 1, 2 ; dy: 1, 2
    assert TotalVariation("l1").loss(None, img).item() == pytest.approx(1.5 + 1.5)
    assert TotalVariation("l2").loss(None, img).item() == pytest.approx(2.5 + 2.5)
    assert TotalVariation("l1", scale=255, reduction="sum").loss(None, img).item() == pytest.approx(255 * 6)
    # beta: only the top-left pixel has both neighbours: (1^2 + 1^2)^(1/2)
    assert TotalVariation("beta", beta=1.0).loss(None, img).item() == pytest.approx(math.sqrt(2), rel=1e-4)


def test_layer_energy_gradient_is_the_activation():
    a = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = LayerEnergy("l").loss({"l": a}, None)
    (g,) = torch.autograd.grad(loss, a)
    assert torch.allclose(-g * a.numel(), a.detach(), atol=1e-6)


def test_feature_distance_and_priors():
    t = torch.tensor([[[[3.0, 4.0]]]])
    x = torch.tensor([[[[0.0, 4.0]]]])
    assert FeatureDistance("l", t).loss({"l": x}, None).item() == pytest.approx(9 / 25)
    assert FeatureDistance("l", t, "l2").loss({"l": x}, None).item() == pytest.approx(9 / 2)
    img = torch.full((1, 3, 2, 2), 1.0)
    assert L2().loss(None, img).item() == pytest.approx(0.25)
    assert AlphaNorm(2.0).loss(None, img).item() == pytest.approx(1.0, rel=1e-4)


def test_out_of_range_by_hand():
    img = torch.tensor([[[[-0.1, 0.5], [1.0, 1.2]]]], requires_grad=True)
    loss = OutOfRange().loss(None, img)
    assert loss.item() == pytest.approx((0.01 + 0.04) * 255**2, rel=1e-5)
    (g,) = torch.autograd.grad(loss, img)
    assert g[0, 0, 0, 1] == 0 and g[0, 0, 1, 0] == 0  # nothing inside the range
    assert g[0, 0, 0, 0] < 0 < g[0, 0, 1, 1]  # pulls both ends back in


def test_sums_and_weights():
    img = torch.tensor([[[[0.0, 1.0], [1.0, 3.0]]]])
    obj = 2 * TotalVariation("l1") + 0.5 * L2()
    assert isinstance(obj, Sum)
    parts = obj.parts({}, img)
    assert set(parts) == {"tv", "l2"}
    assert obj({}, img).item() == pytest.approx(2 * 3.0 + 0.5 * ((img - 0.5) ** 2).mean().item())


@pytest.mark.parametrize("weight", [0.0, 1e-3])
def test_out_of_range_holds_lbfgs_pixels_in(weight):
    """L-BFGS's pixels are never clipped; the penalty is what keeps them near [0, 1]."""
    import random

    from deepcanvas.param import PixelParam
    from deepcanvas.render import Renderer
    from doubles import tiny_relu_net as tiny_net

    from deepcanvas.objectives import Objective

    class PullTo(Objective):  # pulls every pixel to 1.5, out of range
        name = "pull"

        def loss(self, acts, image):
            return (image - 1.5).pow(2).mean()

    push_out = PullTo()
    obj = push_out if weight == 0 else push_out + weight * OutOfRange()
    p = PixelParam(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)), clip=False)
    r = Renderer(tiny_net(), obj, p, optimizer="lbfgs", lr=1.0, rng=random.Random(0))
    for _ in r.run(30):
        pass
    excess = (p.pixels - p.pixels.clamp(0, 1)).abs().max().item()
    if weight == 0:
        assert excess > 0.45
    else:
        assert excess < 0.01


@pytest.mark.parametrize("make, valid", [
    (lambda: Content("l", torch.ones(1, 2, 2, 2), mode="scald"), "scaled, mse"),
    (lambda: Style("l", torch.eye(2)[None], "MSE"), "scaled, mse"),
    (lambda: TotalVariation("l3"), "l2, l1, beta"),
    (lambda: TotalVariation(reduction="avg"), "mean, sum"),
    (lambda: FeatureDistance("l", torch.ones(1, 2, 2, 2), mode="normalised"), "normalized, l2"),
    (lambda: Temporal(torch.ones(1, 3, 4, 4), torch.ones(4, 4), mode="l2"), "scaled, mse"),
    (lambda: SlicedWasserstein("l", [(torch.rand(1, 2, 3, 3), 1.0)], mode="sacled"), "scaled, mse"),
    (lambda: gram(feats(), "cwh"), "hw, chw, none"),
    (lambda: masked_gram(feats(), torch.ones(1, 1, 2, 2), "HW"), "hw, chw, none"),
])
def test_a_misspelt_mode_is_refused_with_the_valid_ones(make, valid):
    """A typo used to fall through to another formula (Content(mode='scald') was plain MSE)."""
    with pytest.raises(DeepCanvasError, match=f"valid: {valid}$"):
        make()

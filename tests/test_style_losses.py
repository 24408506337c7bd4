"""The sliced-Wasserstein style loss, the style-strength knob, RelativeEpsAdam and the keep-best rule."""

import random

import pytest
import torch

import deepcanvas
from deepcanvas import imaging, io, models
from deepcanvas.errors import DeepCanvasError
from deepcanvas.objectives import (Objective, SlicedWasserstein, Style, gram, interpolate_table,
                                   weighted_quantiles)
from deepcanvas.objectives import swd
from deepcanvas.param import PixelParam, resize
from deepcanvas.optimizers import RelativeEpsAdam
from deepcanvas.render import Renderer
from deepcanvas.options import StyleOptions
from deepcanvas.techniques.style import loss_setup, solver_of, strength_weights
from deepcanvas.techniques.style_presets import loudness_step, strength_reach

from doubles import DATA, check_gradient
from test_tiling import tiny_net

CONTENT, STYLE = DATA / "chelsea.jpg", DATA / "swirls.jpg"


def test_weighted_quantiles_and_table_by_hand():
    v = torch.tensor([[3.0, 1.0, 2.0], [0.0, -1.0, 5.0]])
    w = torch.full((3,), 1 / 3)
    levels = (torch.arange(3) + 0.5) / 3
    assert torch.allclose(weighted_quantiles(v, w, levels), torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]]))
    # Unequal weights: the sample 3 holds half the mass; each sample sits at the middle of its mass
    # (1 at 1/8, 2 at 3/8, 3 at 3/4), linear in between.
    w2 = torch.tensor([0.5, 0.25, 0.25])
    q = weighted_quantiles(v[:1], w2, torch.tensor([0.125, 0.375, 0.5, 0.75]))
    assert torch.allclose(q, torch.tensor([[1.0, 2.0, 2.0 + 1 / 3, 3.0]]))
    # A table at levels 0.25, 0.75 read at 4 levels 0.125 ... 0.875: linear in between, flat beyond.
    assert torch.allclose(interpolate_table(torch.tensor([[0.0, 1.0]]), 4), torch.tensor([[0.0, 0.25, 0.75, 1.0]]))
    assert torch.equal(interpolate_table(torch.tensor([[4.0, 5.0, 6.0]]), 3), torch.tensor([[4.0, 5.0, 6.0]]))


def test_rank_levels_sorted_for_short_rows_counted_for_long_ones():
    torch.manual_seed(0)
    short = torch.randn(3, 50)
    ranks = short.argsort(1).argsort(1).float()
    assert torch.equal(swd.rank_levels(short), (ranks + 0.5) / 50)
    # A long row (relu-like features projected on a direction: a peak and a long tail) is counted in bins; its
    # levels stay within a few values in 65k of the sorted ones, far finer than the style tables' 1/1024.
    n = swd.EXACT_RANKS * 16
    long = torch.relu(torch.randn(4, 64, n) + 0.3).mul(torch.randn(4, 64, 1)).sum(1)
    exact = (long.argsort(1).argsort(1).float() + 0.5) / n
    err = (swd.rank_levels(long) - exact).abs()
    assert float(err.max()) < 1e-3 and float(err.mean()) < 1e-4
    # Equal values share one level inside their group's; a group at the row's minimum or maximum (a clipped sky)
    # takes its middle, and a constant row 0.5.
    tied = torch.cat([torch.zeros(1, n // 2), torch.linspace(1, 2, n // 2).unsqueeze(0)], 1)
    lv = swd.rank_levels(tied)[0, : n // 2]
    assert torch.all(lv == lv[0]) and float(lv[0]) == pytest.approx(0.25, abs=1e-3)
    assert torch.allclose(swd.rank_levels(torch.full((2, n), 3.0)), torch.full((2, n), 0.5))
    # The levels depend on the values alone, not on their order in the row (tiles gather in another order).
    perm = torch.randperm(n)
    assert torch.equal(swd.rank_levels(long[:, perm]), swd.rank_levels(long)[:, perm])
    # Weighted (a mask's positions): the weight below a value plus half its own, sorted or counted.
    w = torch.rand(n) + 0.1
    w = w / w.sum()
    order = long.argsort(1)
    ws = w[order]
    exact_w = torch.empty_like(long).scatter_(1, order, ws.cumsum(1) - ws / 2)
    assert float((swd.rank_levels(long, w) - exact_w).abs().max()) < 1e-3
    short_w = w[:50] / w[:50].sum()
    o = short.argsort(1)
    assert torch.allclose(swd.rank_levels(short, short_w),
                          torch.empty_like(short).scatter_(1, o, short_w[o].cumsum(1) - short_w[o] / 2))
    # A fifth of the row tied in its middle: one level, inside the group's.
    mid = torch.linspace(0, 1, n)
    group = (mid > 0.3) & (mid <= 0.5)
    mid[group] = 0.4
    lv = swd.rank_levels(mid[None])[0][group]
    assert torch.all(lv == lv[0]) and 0.3 <= float(lv[0]) <= 0.5


def test_sliced_wasserstein_without_a_sort_is_the_sorted_loss():
    """The loss pairs each projection with the style's quantile at its own rank: the sorted loss's value and
    gradient, to the histogram's precision."""
    torch.manual_seed(0)
    n = swd.EXACT_RANKS * 4
    x = torch.relu(torch.randn(1, 32, 64, n // 64) + 0.2).requires_grad_(True)
    s = torch.relu(torch.randn(1, 32, 64, 128) * 1.5 - 0.1)
    loss = SlicedWasserstein("l", [(s, 1.0)], projections=16, bank=1, generator=torch.Generator().manual_seed(1))
    got = loss.loss({"l": x}, None)
    (g,) = torch.autograd.grad(got, x)
    dirs, table = loss._table(0)
    y = x.detach().clone().requires_grad_(True)
    proj = dirs.T @ y.reshape(32, n)
    want = swd.scaled_mse(proj.sort(1).values, interpolate_table(table, n)) / loss.rms
    (g2,) = torch.autograd.grad(want, y)
    assert got.item() == pytest.approx(want.item(), rel=1e-3)
    assert float(torch.nn.functional.cosine_similarity(g.flatten(), g2.flatten(), dim=0)) > 0.999


def test_sliced_wasserstein_by_hand():
    """One channel: every direction is +-1, so the loss compares the sorted values themselves."""
    x = torch.tensor([3.0, 0.0, 1.0, 2.0]).view(1, 1, 2, 2)
    s = torch.tensor([13.0, 10.0, 12.0, 11.0]).view(1, 1, 2, 2)
    mse = SlicedWasserstein("l", [(s, 1.0)], projections=3, mode="mse")
    assert mse.loss({"l": x}, None).item() == pytest.approx(100.0)  # every sorted difference is -10
    scaled = SlicedWasserstein("l", [(s, 1.0)], projections=3)
    rms = ((100 + 121 + 144 + 169) / 4) ** 0.5
    assert scaled.loss({"l": x}, None).item() == pytest.approx(400 / 40 / rms, rel=1e-5)
    # The order of the positions does not matter; the style's own values give zero.
    assert mse.loss({"l": x.flip(-1)}, None).item() == pytest.approx(100.0)
    assert mse.loss({"l": s}, None).item() == pytest.approx(0.0, abs=1e-5)
    # A style of another size: 2 positions 10, 12 make the quantile function 10 -> 12, read at 4 levels.
    s2 = torch.tensor([12.0, 10.0]).view(1, 1, 1, 2)
    two = SlicedWasserstein("l", [(s2, 1.0)], projections=1, mode="mse")
    target = torch.tensor([10.0, 10.5, 11.5, 12.0])
    assert two.loss({"l": x}, None).item() == pytest.approx((torch.arange(4.0) - target).pow(2).mean().item())
    # Two style images blended 3:1 form a mixture: all 10s with weight 3 against all 20s.
    mix = SlicedWasserstein("l", [(torch.full((1, 1, 2, 2), 10.0), 0.75), (torch.full((1, 1, 1, 1), 20.0), 0.25)],
                            projections=1, mode="mse")
    y = torch.tensor([10.0, 10.0, 10.0, 20.0]).view(1, 1, 2, 2)
    assert mix.loss({"l": y}, None).item() == pytest.approx(0.0, abs=1e-4)


def test_sliced_wasserstein_matches_what_gram_misses():
    """Same second moments, different distributions: Gram loss ~0, sliced-Wasserstein loss not."""
    g = torch.Generator().manual_seed(0)
    signs = torch.randint(0, 2, (1, 2, 8, 8), generator=g).float() * 2 - 1  # +-1 values
    normal = torch.randn(1, 2, 64, 64, generator=g)
    normal = normal / normal.pow(2).mean((2, 3), keepdim=True).sqrt()  # unit power, like the signs
    swd = SlicedWasserstein("l", [(signs, 1.0)], mode="mse", generator=g)
    assert swd.loss({"l": signs}, None).item() < 1e-3
    assert swd.loss({"l": normal}, None).item() > 0.05
    gram_loss = Style("l", gram(signs)).loss({"l": normal}, None).item()
    assert gram_loss < 0.2 * Style("l", gram(signs)).loss({"l": 0.5 * signs}, None).item()


def test_sliced_wasserstein_gradient_and_scale_invariance():
    g = torch.Generator().manual_seed(3)
    # One channel with well-separated values (gaps over 0.6 against a step of 0.25), the style far above them:
    # no two projections swap order and no difference crosses zero within the finite differences' step.
    x1 = (torch.randperm(12, generator=g).double() + 0.2 * torch.rand(12, generator=g, dtype=torch.float64))
    x1 = x1.view(1, 1, 3, 4)
    style1 = 40 + 5 * torch.randn(1, 1, 5, 6, generator=g)
    for mode in ("scaled", "mse"):
        o = SlicedWasserstein("l", [(style1, 1.0)], quantiles=7, mode=mode, generator=g)  # 30 positions vs 12
        check_gradient(lambda t: o.loss({"l": t}, None, index=0), x1, eps=0.25)  # float32 losses: a long step
    # Several channels, random directions: spread out (x10) with a step of 0.1.
    style = 10 * torch.randn(1, 4, 5, 6, generator=g).abs()
    x = 10 * torch.randn(1, 4, 3, 4, generator=g, dtype=torch.float64)
    obj = SlicedWasserstein("l", [(style, 1.0)], projections=3, quantiles=7, generator=g)
    check_gradient(lambda t: obj.loss({"l": t}, None, index=0), x, eps=0.1)  # one fixed projection set
    # Scaled mode: k times larger activations (another network's scale) give the same loss.
    o1 = SlicedWasserstein("l", [(style, 1.0)], generator=torch.Generator().manual_seed(0))
    o2 = SlicedWasserstein("l", [(7 * style, 1.0)], generator=torch.Generator().manual_seed(0))
    assert o1.loss({"l": x}, None, index=2).item() == pytest.approx(o2.loss({"l": 7 * x}, None, index=2).item(),
                                                                     rel=1e-5)
    # New projections each evaluation: the loss is noisy, the bank holds at most `bank` sets.
    o3 = SlicedWasserstein("l", [(style, 1.0)], bank=4, generator=g)
    vals = {round(o3.loss({"l": x}, None).item(), 6) for _ in range(12)}
    assert 1 < len(vals) <= 4 and len(o3._bank) <= 4


def test_sliced_wasserstein_on_a_subset_of_positions():
    """positions=P sorts a fresh random P of the output's positions: the same loss in expectation, P times cheaper."""
    g = torch.Generator().manual_seed(0)
    style = torch.randn(1, 8, 40, 40, generator=g) * 2 + 1
    out = torch.randn(1, 8, 64, 64, generator=g)
    full = SlicedWasserstein("x", [(style, 1.0)], generator=torch.Generator().manual_seed(1))
    whole = float(full.loss({"x": out}, None, index=0))
    # at least as many positions as the picture has: exactly the full loss
    same = SlicedWasserstein("x", [(style, 1.0)], generator=torch.Generator().manual_seed(1), positions=64 * 64)
    assert float(same.loss({"x": out}, None, index=0)) == pytest.approx(whole, rel=1e-6)
    sub = SlicedWasserstein("x", [(style, 1.0)], generator=torch.Generator().manual_seed(1), positions=512)
    draws = [float(sub.loss({"x": out}, None, index=0)) for _ in range(8)]
    assert sum(draws) / len(draws) == pytest.approx(whole, rel=0.1)
    assert len(set(draws)) > 1  # a new subset every step
    # the gradient reaches exactly the drawn positions
    x = out.clone().requires_grad_(True)
    sub.loss({"x": x}, None, index=0).backward()
    touched = (x.grad.abs().sum(1) > 0).sum()
    assert int(touched) == 512


def test_sliced_wasserstein_refusals():
    with pytest.raises(DeepCanvasError, match="adam"):
        deepcanvas.style_transfer(CONTENT, STYLE, size=32, iterations=1, method="swd", optimizer="lbfgs")
    with pytest.raises(DeepCanvasError, match="method"):
        deepcanvas.style_transfer(CONTENT, STYLE, size=32, iterations=1, method="strotss")
    with pytest.raises(DeepCanvasError, match="style_strength"):
        deepcanvas.style_transfer(CONTENT, STYLE, size=32, iterations=1, style_strength=1.5)


@pytest.mark.slow
def test_swd_style_transfer_runs_and_is_reproducible():
    kw = dict(size=48, iterations=6, seed=3)
    a = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, **kw))
    b = deepcanvas.style_transfer(CONTENT, STYLE, **kw)
    assert a[-1].done and set(a[-1].parts) == {"content", "style", "tv"}
    assert a[-1].image.tobytes() == b.tobytes()
    # The kept image is the last iterate (a noisy loss would keep a lucky sample otherwise).
    assert torch.equal(a[-1].tensor, a[-2].tensor)


def test_strength_weights():
    assert strength_weights(0.5, 0.3, 1.0, 2.0) == (0.3, 1.0, 2.0)
    assert strength_weights(0.0, 0.3, 1.0, 2.0) == (0.3, 0.0, 0.0)
    assert strength_weights(1.0, 0.3, 1.0, 2.0) == (0.0, 1.0, 2.0)
    cw, sw, tw = strength_weights(0.75, 0.3, 1.0, 2.0)
    assert sw == 1.0 and tw == 2.0 and cw == pytest.approx(0.3 / 9)
    cw, sw, tw = strength_weights(0.25, 0.3, 1.0, 2.0)
    assert cw == 0.3 and sw == pytest.approx(1 / 9) and tw == pytest.approx(2 / 9)
    ratios = [(lambda c, s, t: s / c)(*strength_weights(s, 0.3, 1.0, 2.0)) for s in (0.1, 0.3, 0.5, 0.7, 0.9)]
    assert ratios == sorted(ratios)
    # Under Adam the step does the work below 0.5 (strength_reach): the weights stay.
    assert strength_weights(0.25, 0.3, 1.0, 2.0, stepped=True) == (0.3, 1.0, 2.0)
    assert strength_weights(0.75, 0.3, 1.0, 2.0, stepped=True) == strength_weights(0.75, 0.3, 1.0, 2.0)


def test_strength_reach_sets_the_step_and_the_iterations():
    assert [strength_reach(s) for s in (0.0, 0.25, 0.5, 0.75, 1.0)] == [(0, 1), (0.5, 1), (1, 1), (1, 1.5), (1, 2)]
    adam = solver_of(StyleOptions(style_strength=0.75), loss_setup("deepcanvas"))
    assert (adam.lr, adam.iterations) == (0.05, 78)
    adam = solver_of(StyleOptions(style_strength=0.25, lr=0.1, iterations=10), loss_setup("deepcanvas"))
    assert (adam.lr, adam.iterations) == (0.05, 10)
    lbfgs = solver_of(StyleOptions(style_strength=0.75, preset="neural-style-pt"), loss_setup("neural-style-pt"))
    assert (lbfgs.lr, lbfgs.iterations) == (1.0, loss_setup("neural-style-pt").iterations)


def test_loudness_step():
    assert [loudness_step(r) for r in (0.0, 1.0, 1.5, 3.0, 6.0)] == pytest.approx([1.0, 1.0, 1.0, 0.5 ** 0.5, 0.5])


def test_a_loud_painting_shortens_the_step(tmp_path):
    """A painting far louder than its photo (mid-level features) gets a shorter Adam step; a quiet one, an
    explicit lr, L-BFGS or adaptive_step=False keep the step as it was."""
    from deepcanvas.techniques.style import prepare_style

    g = torch.Generator().manual_seed(0)
    flat = tmp_path / "flat.png"  # a soft grey ramp: almost nothing at relu3_1
    ramp = torch.linspace(0.4, 0.6, 64).view(1, 1, 64).expand(3, 64, 64)
    imaging.tensor_to_image(ramp[None]).save(flat)
    loud = tmp_path / "loud.png"  # saturated noise in 4 px cells
    cells = torch.nn.functional.interpolate(torch.rand(1, 3, 16, 16, generator=g).round(), scale_factor=4.0)
    imaging.tensor_to_image(cells).save(loud)
    plan = prepare_style(flat, loud, size=32)
    assert plan.solver.loudness > 3 and plan.solver.lr == pytest.approx(0.05 * loudness_step(plan.solver.loudness))
    quiet = prepare_style(loud, flat, size=32)
    assert quiet.solver.loudness < 1 and quiet.solver.lr == 0.05
    assert prepare_style(flat, loud, size=32, adaptive_step=False).solver.lr == 0.05
    assert prepare_style(flat, loud, size=32, lr=0.07).solver.lr == 0.07
    assert prepare_style(flat, loud, size=32, method="gram", optimizer="lbfgs").solver.lr == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["swd", "gram"])
def test_style_strength_moves_from_content_to_style(method):
    """Higher strength: nearer the painting's texture statistics, farther from the photo, by measures no run
    optimises here (Gram distance at relu2_2 and relu3_3; pixel distance to the photo)."""
    net = models.load_model("vgg16", device="cpu")
    content = imaging.image_to_tensor(io.load_image(CONTENT))
    style = imaging.image_to_tensor(io.load_image(STYLE))
    layers = ["relu2_2", "relu3_3"]
    with torch.no_grad():
        sg = {l: gram(a) for l, a in net(resize(style, (48, 64)), layers).items()}

    def measure(img):
        x = imaging.image_to_tensor(img)
        with torch.no_grad():
            acts = net(x, layers)
        style_d = sum(float((gram(acts[l]) - sg[l]).pow(2).sum() / sg[l].pow(2).sum()) for l in layers)
        return style_d, float((x - resize(content, x.shape[-2:])).pow(2).mean())

    results = [measure(deepcanvas.style_transfer(CONTENT, STYLE, size=64, iterations=12, seed=0, method=method,
                                                 style_strength=s)) for s in (0.0, 0.25, 0.5, 0.75)]
    style_d = [r[0] for r in results]
    content_d = [r[1] for r in results]
    assert style_d == sorted(style_d, reverse=True), style_d
    assert content_d == sorted(content_d), content_d
    assert content_d[0] < 1e-4  # strength 0: the content loss alone, from the photo: the photo


def test_keep_best_does_not_keep_the_start():
    """A run whose first image has the lowest loss returns an iterate, not the untouched start."""

    class Quadratic(Objective):
        name = "q"

        def loss(self, acts, image):
            return (image - 0.5).pow(2).mean()

    start = torch.full((1, 3, 2, 2), 0.6)
    p = PixelParam(start, clip=True)
    r = Renderer(tiny_net(), Quadratic(), p, optimizer="sgd", lr=100.0, keep_best=True, rng=random.Random(0))
    steps = list(r.run(3))
    assert not torch.equal(r.current(), start)  # the start had loss 0.01, every later iterate 0.25
    assert r.best_loss == pytest.approx(0.25)
    assert steps[0].loss == pytest.approx(0.01)


def test_relative_eps_adam_steps_scale_with_the_gradient():
    """Plain Adam moves a pixel with a 1e-6 gradient as far as one with 1; RelativeEpsAdam ~2e-5 times as far."""
    for opt_cls, kw in ((torch.optim.Adam, {"eps": 1e-8}), (RelativeEpsAdam, {"eps_rel": 0.1})):
        x = torch.zeros(2, requires_grad=True)
        opt = opt_cls([x], lr=0.1, **kw)
        for _ in range(3):
            x.grad = torch.tensor([1.0, 1e-6])
            opt.step()
        big, small = x.detach().abs().tolist()
        if opt_cls is RelativeEpsAdam:
            assert big == pytest.approx(0.3 / (1 + 0.1 * 0.5), rel=1e-3) and small < 1e-4 * big
        else:
            assert small > 0.9 * big
    # Invariant to the loss's scale.
    moves = []
    for k in (1.0, 1e-4):
        x = torch.zeros(3, requires_grad=True)
        opt = RelativeEpsAdam([x], lr=0.1, eps_rel=0.1)
        for _ in range(2):
            x.grad = k * torch.tensor([1.0, 0.1, 0.01])
            opt.step()
        moves.append(x.detach().clone())
    assert torch.allclose(moves[0], moves[1], rtol=1e-4)


def test_border_margin_is_mirrored_and_cropped():
    from deepcanvas.techniques.style import BORDER, border_pad, crop_image, pad_image

    for hw in [(341, 512), (32, 48), (100, 7)]:
        t, b, l, r = border_pad(hw)
        assert min(t, b, l, r) >= BORDER
        assert (hw[0] + t + b) % 16 == 0 and (hw[1] + l + r) % 16 == 0
        assert t + b < BORDER * 2 + 16 and l + r < BORDER * 2 + 16
        x = torch.rand(1, 3, *hw)
        p = pad_image(x, (t, b, l, r))
        assert torch.equal(crop_image(p, (t, b, l, r)), x)
        if min(hw) > max(t, b, l, r):  # mirrored: the row above the top one is the second row
            assert torch.equal(p[..., t - 1, l:l + hw[1]], x[..., 1, :])
    # The result and every progress image have the content's own size.
    steps = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, size=40, iterations=2, seed=0))
    assert {tuple(s.tensor.shape[-2:]) for s in steps} == {(27, 40)}


def test_default_style_layers_weigh_the_shallow_ones_twice():
    """With no style_layers given, the swd default weighs relu1_1 and relu2_1 twice; given layers count as given."""
    from deepcanvas.techniques.style import prepare_style
    plan = prepare_style(CONTENT, STYLE, size=32)
    assert list(plan.style_layers.values()) == pytest.approx([2 / 7, 2 / 7, 1 / 7, 1 / 7, 1 / 7])
    given = prepare_style(CONTENT, STYLE, size=32, style_layers="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")
    assert list(given.style_layers.values()) == pytest.approx([0.2] * 5)
    assert list(prepare_style(CONTENT, STYLE, size=32, method="gram").style_layers.values()) == pytest.approx([0.2] * 5)
    kw = dict(size=40, iterations=3, seed=1)
    same = deepcanvas.style_transfer(CONTENT, STYLE, style_layers="relu1_1:2,relu2_1:2,relu3_1,relu4_1,relu5_1", **kw)
    assert deepcanvas.style_transfer(CONTENT, STYLE, **kw).tobytes() == same.tobytes()

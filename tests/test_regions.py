"""Region control (issue 11): masks, style masks, semantic maps.

The arithmetic by hand on tiny tensors (guided Gram, weighted sorted projections, masked energy), the style
term's gradient exactly zero outside a hard mask, tiled equals whole with masks, masks of any size and mode,
short end-to-end runs of style transfer and DeepDream with masks, and every bad input's one-line error.
"""

import random
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import deepcanvas
from deepcanvas import regions as R
from deepcanvas.cli import main
from deepcanvas.errors import DeepCanvasError
from deepcanvas.imaging import image_to_tensor
from deepcanvas.io import load_image
from deepcanvas.objectives import GuideMatch, LayerEnergy, Mask, SlicedWasserstein, Style, gram, masked_gram
from deepcanvas.param import PixelParam, resize
from deepcanvas.render import Renderer
from deepcanvas.techniques.common import fit_size

from doubles import DATA, one_conv_net, tiny_relu_net

CONTENT, STYLE, OTHER = str(DATA / "chelsea.jpg"), str(DATA / "swirls.jpg"), str(DATA / "coffee.jpg")


def photo(size):
    img = image_to_tensor(load_image(CONTENT))
    return resize(img, fit_size(*img.shape[-2:], size))


def save_mask(path, array, mode="L"):
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)
    return str(path)


# -- the arithmetic, by hand ---------------------------------------------------------------------------------
def test_masked_gram_by_hand():
    torch.manual_seed(0)
    f = torch.randn(1, 3, 2, 3)
    m = torch.tensor([[1.0, 0.5, 0.0], [0.25, 1.0, 0.0]])[None, None]
    want = torch.zeros(3, 3)
    for y in range(2):
        for x in range(3):
            v = f[0, :, y, x]
            want += m[0, 0, y, x] * torch.outer(v, v)
    want /= m.sum()
    assert torch.allclose(masked_gram(f, m)[0], want, atol=1e-6)
    assert torch.allclose(masked_gram(f, m, "chw")[0], want / 3, atol=1e-6)
    # A hard mask: the Gram of the selected positions alone; all ones: the plain Gram.
    hard = (m > 0.4).float()
    sel = f[0].reshape(3, -1)[:, hard.reshape(-1) > 0]
    assert torch.allclose(masked_gram(f, hard)[0], sel @ sel.T / sel.shape[1], atol=1e-6)
    assert torch.allclose(masked_gram(f, torch.ones_like(m)), gram(f), atol=1e-6)


def test_mask_at_each_layer_is_the_area_average():
    m = torch.rand(1, 1, 32, 48)
    mask = Mask(m)
    img = torch.zeros(1, 3, 32, 48)
    for s in (1, 2, 4, 8):
        act = torch.zeros(1, 5, 32 // s, 48 // s)
        assert torch.allclose(mask.at(act, img), F.avg_pool2d(m, s) if s > 1 else m)
    # A strided convolution's ceil(H / s) rows are covered too (the last, partial window averages what it has).
    assert mask.at(torch.zeros(1, 5, 4, 6), torch.zeros(1, 3, 31, 47)).shape[-2:] == (4, 6)
    assert mask.area() == pytest.approx(float(m.mean()))
    # A mask rolled with the picture (DeepDream's jitter).
    rolled = Mask(m, shift=lambda: (3, -5))
    assert torch.equal(rolled.at(img, img), torch.roll(m, (3, -5), (-2, -1)))


def test_style_with_an_all_ones_mask_is_the_plain_style():
    net = tiny_relu_net()
    img = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        acts = net(img, ["r2"])
        target = gram(net(torch.rand(1, 3, 32, 40), ["r2"])["r2"])
    for mode in ("scaled", "mse"):
        tgt = target if mode == "scaled" else target / target.shape[-1]
        plain = Style("r2", tgt, mode)(acts, img)
        ones = Style("r2", tgt, mode, mask=Mask(torch.ones(1, 1, 32, 40)))(acts, img)
        assert float(ones) == pytest.approx(float(plain), rel=1e-5)


def test_weighted_sliced_wasserstein_with_a_hard_mask_is_the_loss_of_the_selected_positions():
    torch.manual_seed(0)
    style = torch.randn(1, 6, 10, 10)
    f = torch.randn(1, 6, 8, 12)
    m = torch.zeros(1, 1, 8, 12)
    m[..., :, :5] = 1  # the left 5 columns
    for mode in ("scaled", "mse"):
        a = SlicedWasserstein("x", [(style, 1.0)], mode=mode, generator=torch.Generator().manual_seed(1),
                              mask=Mask(m))
        b = SlicedWasserstein("x", [(style, 1.0)], mode=mode, generator=torch.Generator().manual_seed(1))
        la = a.loss({"x": f}, torch.zeros(1, 3, 8, 12), index=0)
        lb = b.loss({"x": f[..., :5].contiguous()}, torch.zeros(1, 3, 8, 5), index=0)
        assert float(la) == pytest.approx(float(lb), rel=1e-4)
    # On the style side: a (features, weight, mask) entry is the statistics of the masked region only.
    sm = torch.zeros(1, 1, 10, 10)
    sm[..., 2:7, :] = 1
    a = SlicedWasserstein("x", [(style, 1.0, sm)], generator=torch.Generator().manual_seed(2))
    b = SlicedWasserstein("x", [(style[..., 2:7, :].contiguous(), 1.0)], generator=torch.Generator().manual_seed(2))
    assert float(a.loss({"x": f}, None, index=0)) == pytest.approx(float(b.loss({"x": f}, None, index=0)), rel=1e-4)


@pytest.mark.parametrize("kind", ["gram", "gram-mse", "swd", "swd-pixels", "energy", "guide"])
def test_the_gradient_is_zero_outside_a_hard_mask(kind):
    """A 1x1 convolution sees one pixel: any gradient outside the mask would be the mask's fault."""
    net, _ = one_conv_net()
    torch.manual_seed(1)
    img = torch.rand(1, 3, 12, 16)
    m = torch.zeros(1, 1, 12, 16)
    m[..., 3:9, 4:11] = 1
    m[..., 5, 6] = 0.5  # a soft position inside: weighted, not cut
    mask = Mask(m)
    with torch.no_grad():
        s_acts = net(torch.rand(1, 3, 12, 16), ["conv"])["conv"]
    obj = {
        "gram": lambda: Style("conv", gram(s_acts), mask=mask),
        "gram-mse": lambda: Style("conv", gram(s_acts, "chw"), "mse", mask=mask),
        "swd": lambda: SlicedWasserstein("conv", [(s_acts, 1.0)], generator=torch.Generator().manual_seed(0),
                                         mask=mask),
        "swd-pixels": lambda: SlicedWasserstein(SlicedWasserstein.PIXELS, [(torch.rand(1, 3, 9, 9), 1.0)],
                                                generator=torch.Generator().manual_seed(0), mask=mask),
        "energy": lambda: LayerEnergy("conv", mask=mask),
        "guide": lambda: GuideMatch("conv", s_acts, mask=mask),
    }[kind]()
    x = img.clone().requires_grad_(True)
    obj(net(x, ["conv"]), x).backward()
    g = x.grad.abs().sum(1, keepdim=True)
    assert float(g[m == 0].max()) == 0.0
    assert float(g[m == 1].min()) > 0 and float(g[m == 0.5].min()) > 0


def _tiled_and_whole(net, obj, img):
    out = []
    for tile in (None, 64):
        p = PixelParam(img)
        r = Renderer(net, obj, p, tile=tile, tile_margin=16, rng=random.Random(3), optimizer="sgd")
        r.closure()
        out.append((p.pixels.grad.clone(), r.last_loss))
    return out


@pytest.mark.parametrize("which", ["style", "energy", "guide"])
def test_tiled_equals_whole_with_a_mask(which):
    net = tiny_relu_net()
    torch.manual_seed(2)
    img = torch.rand(1, 3, 80, 112)
    m = torch.zeros(1, 1, 80, 112)
    m[..., 10:70, 30:100] = 1
    m = R.feather(m, 0.03)  # soft edges, across the tiles' borders
    with torch.no_grad():
        t = net(torch.rand_like(img), ["r1", "r2", "r3"])
    mask = Mask(m)
    obj = {"style": lambda: Style("r1", gram(t["r1"]), mask=mask) + 0.5 * Style("r3", gram(t["r3"]), mask=mask),
           "energy": lambda: LayerEnergy("r2", mask=mask) + LayerEnergy("r3", channels=[1, 5], mask=mask),
           "guide": lambda: GuideMatch("r2", t["r2"][..., :4, :4], mask=mask)}[which]()
    (g_whole, l_whole), (g_tiled, l_tiled) = _tiled_and_whole(net, obj, img)
    assert l_tiled == pytest.approx(l_whole, rel=1e-4, abs=1e-6)
    assert torch.allclose(g_tiled, g_whole, rtol=1e-3, atol=1e-3 * g_whole.abs().max().item())


def test_an_empty_region_is_a_constant_not_a_nan():
    net = tiny_relu_net()
    img = torch.rand(1, 3, 32, 32, requires_grad=True)
    zero = Mask(torch.zeros(1, 1, 32, 32))
    with torch.no_grad():
        t = gram(net(torch.rand(1, 3, 32, 32), ["r2"])["r2"])
    acts = net(img, ["r2"])
    loss = Style("r2", t, mask=zero)(acts, img) + LayerEnergy("r2", mask=zero)(acts, img)
    loss.backward()
    assert torch.isfinite(loss) and float(img.grad.abs().max()) == 0.0


# -- masks from files ------------------------------------------------------------------------------------------
def test_masks_of_any_mode_and_size(tmp_path):
    grad = np.tile(np.linspace(0, 255, 40), (30, 1))
    m_l = R.load_mask(save_mask(tmp_path / "l.png", grad))
    rgb = np.stack([grad] * 3, -1)
    m_rgb = R.load_mask(save_mask(tmp_path / "rgb.jpg", rgb, "RGB"))
    rgba = np.zeros((30, 40, 4))
    rgba[..., 3] = grad  # black everywhere: the alpha channel is the mask
    m_rgba = R.load_mask(save_mask(tmp_path / "rgba.png", rgba, "RGBA"))
    for m in (m_l, m_rgb, m_rgba):
        assert m.shape == (1, 1, 30, 40)
        assert float(m[..., 0].mean()) < 0.02 and float(m[..., -1].mean()) > 0.98
    assert torch.allclose(m_l, m_rgba, atol=1 / 255)
    # An opaque RGBA image is read by its luminance; a PIL image and an array work too.
    opaque = np.concatenate([rgb, np.full((30, 40, 1), 255)], -1)
    assert torch.allclose(R.load_mask(save_mask(tmp_path / "o.png", opaque, "RGBA")), m_l, atol=1 / 255)
    assert torch.allclose(R.load_mask(Image.open(tmp_path / "rgba.png")), m_l, atol=1 / 255)
    assert torch.allclose(R.load_mask(grad / 255), m_l, atol=1 / 255)
    # Any size: stretched over the picture; feathering keeps the weights in [0, 1] and blurs the edge.
    big = R.fit(m_l, (300, 200))
    assert big.shape == (1, 1, 300, 200) and 0 <= float(big.min()) and float(big.max()) <= 1
    step = torch.zeros(1, 1, 64, 64)
    step[..., 32:] = 1
    soft = R.feather(step, 0.05)
    assert 0.3 < float(soft[0, 0, 0, 32]) < 0.7 and float(soft[0, 0, 0, 0]) < 0.01
    assert torch.equal(R.feather(step, 0), step)


def test_label_maps_tolerate_jpeg_noise(tmp_path):
    a = np.zeros((60, 80, 3), np.uint8)
    a[:30] = (255, 0, 0)
    a[30:] = (0, 0, 255)
    a[30:, 40:] = (0, 200, 0)
    Image.fromarray(a).save(tmp_path / "m.jpg", quality=70)
    pal, lab = R.label_map(np.asarray(Image.open(tmp_path / "m.jpg").convert("RGB")), "map")
    assert len(pal) == 3
    names = {R.hex_color(p) for p in pal}
    assert len(names) == 3
    # Every block is one label (the JPEG's noise and ringing are absorbed).
    for ys, xs in ((slice(2, 28), slice(2, 78)), (slice(32, 58), slice(2, 38)), (slice(32, 58), slice(42, 78))):
        assert len(np.unique(lab[ys, xs])) == 1


# -- end to end (VGG16 at a few dozen pixels) -------------------------------------------------------------------
@pytest.mark.parametrize("method", ["swd", "gram"])
def test_style_transfer_with_a_hard_mask_keeps_the_photo_outside(method):
    m = torch.zeros(40, 60)
    m[:, 30:] = 1
    out = image_to_tensor(deepcanvas.style_transfer(CONTENT, STYLE, size=48, iterations=4, seed=0, mask=m,
                                                    method=method, feather=0))
    c = photo(48)
    w = out.shape[-1]
    assert (out - c)[..., : w // 2].abs().mean() < 0.03  # outside: the photo
    inside = (out - c)[..., w // 2:].abs().mean()
    plain = image_to_tensor(deepcanvas.style_transfer(CONTENT, STYLE, size=48, iterations=4, seed=0,
                                                      method=method))
    assert inside > 0.5 * (plain - c)[..., w // 2:].abs().mean()  # inside: painted about as much


def test_two_styles_in_two_halves_multiscale(tmp_path):
    left = np.zeros((20, 20), np.uint8)
    left[:, :10] = 255
    a, b = save_mask(tmp_path / "a.png", left), save_mask(tmp_path / "b.png", 255 - left)
    steps = list(deepcanvas.style_transfer_steps(CONTENT, [STYLE, OTHER], size=64, min_size=40, multiscale=True,
                                                 iterations=2, seed=0, style_masks=f"{a},{b}", method="gram"))
    assert len({p.stage for p in steps}) >= 3 and steps[-1].done and steps[-1].tensor.shape[-1] == 64


def test_semantic_maps_run_and_use_each_colours_region(tmp_path):
    cmap = np.zeros((40, 60, 3), np.uint8)
    cmap[:20] = (255, 0, 0)
    cmap[20:] = (0, 0, 255)
    smap = np.zeros((50, 50, 3), np.uint8)
    smap[:, :25] = (0, 0, 255)
    smap[:, 25:] = (250, 5, 0)  # near enough to the content's red
    smap[:5, :5] = (0, 255, 0)  # a colour the content lacks: a warning, not an error
    cm, sm = save_mask(tmp_path / "c.png", cmap, "RGB"), save_mask(tmp_path / "s.png", smap, "RGB")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        img = deepcanvas.style_transfer(CONTENT, STYLE, size=48, iterations=2, seed=0, content_map=cm,
                                        style_map=sm)
    assert img.size == (48, 32)
    assert any("#00ff00" in str(w.message) and "not in the content map" in str(w.message) for w in caught)
    with pytest.warns(UserWarning, match="#00ff00"):
        labels = R.load_semantic_maps(cm, [sm], 1)
    assert [lab.color for lab in labels] in (["#ff0000", "#0000ff"], ["#0000ff", "#ff0000"])
    red = next(lab for lab in labels if lab.color == "#ff0000")
    assert float(red.content[..., :20, :].mean()) == 1 and float(red.content[..., 20:, :].mean()) == 0
    assert float(red.styles[0][..., 5:, 25:].mean()) == 1 and float(red.styles[0][..., :, :25].mean()) == 0


def test_dream_with_a_mask(tmp_path):
    m = np.zeros((30, 30), np.uint8)
    m[:, 15:] = 255
    kw = dict(size=64, octaves=1, iterations=3, seed=0, jitter=4, model="vgg16", layers="relu3_3")
    out = image_to_tensor(deepcanvas.dream(CONTENT, mask=save_mask(tmp_path / "m.png", m), feather=0, **kw))
    c = photo(64)
    w = out.shape[-1]
    assert (out - c)[..., : w // 2].abs().mean() < 0.005
    assert (out - c)[..., w // 2:].abs().mean() > 0.005


def test_batch_with_a_mask(tmp_path):
    from deepcanvas.batch import style_batch

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.open(CONTENT).resize((48 + 8 * i, 40)).save(frames / f"f{i}.png")
    m = np.zeros((16, 16), np.uint8)
    m[:8] = 255
    paths = style_batch(str(frames), [STYLE], tmp_path / "out", size=32, iterations=2, seed=0,
                        mask=save_mask(tmp_path / "m.png", m))
    assert [p.name for p in paths] == ["f0.png", "f1.png"] and all(p.is_file() for p in paths)
    # each frame painted in the mask's top half, the photo kept in the bottom half (~0.05 against ~0.003)
    for i, p in enumerate(paths):
        out = image_to_tensor(load_image(p))
        c = resize(image_to_tensor(load_image(frames / f"f{i}.png")), out.shape[-2:])
        h = out.shape[-2]
        inside, outside = ((out - c)[..., rows, :].abs().mean() for rows in (slice(0, h // 2), slice(h // 2, h)))
        assert outside < 0.01 and inside > 5 * outside, (p.name, inside, outside)


# -- bad input: one line, non-zero, before any slow work ---------------------------------------------------------
@pytest.fixture
def bad(tmp_path):
    f = {}
    (tmp_path / "notes.png").write_text("not an image")
    f["text"] = str(tmp_path / "notes.png")
    f["black"] = save_mask(tmp_path / "black.png", np.zeros((20, 20)))
    f["white"] = save_mask(tmp_path / "white.png", np.full((20, 20), 255))
    red_blue = np.zeros((20, 20, 3), np.uint8)
    red_blue[:10] = (255, 0, 0)
    red_blue[10:] = (0, 0, 255)
    blue = np.zeros((20, 20, 3), np.uint8)
    blue[:] = (0, 0, 255)
    f["red_blue"] = save_mask(tmp_path / "rb.png", red_blue, "RGB")
    f["blue"] = save_mask(tmp_path / "b.png", blue, "RGB")
    return f


@pytest.mark.parametrize("flags, words", [
    (["--mask", "{text}"], "cannot read mask .*notes.png.*not an image"),
    (["--mask", "{black}"], "the mask is all black"),
    ([OTHER, "--style-masks", "{white}"], "style_masks: got 1 masks for 2 style images"),
    ([OTHER, "--style-masks", "{white},{black}"], "style mask 2 .*black.png.* is all black"),
    (["--content-map", "{red_blue}", "--style-map", "{blue}"], "content map colour #ff0000 has no region in the "
                                                                 "style map"),
    ([OTHER, "--content-map", "{red_blue}", "--style-map", "{red_blue}"], "style_map: got 1 maps for 2 style"),
    (["--content-map", "{red_blue}"], "give content_map and style_map together"),
    ([OTHER, "--style-masks", "{white},{white}", "--style-blend-weights", "1,2"], "with style_masks each style"),
    (["--feather", "0.5"], "feather must be at most 0.25"),
])
def test_bad_region_inputs_are_one_line_errors(bad, flags, words, tmp_path, capsys, monkeypatch):
    import deepcanvas.models

    def no_network(*a, **k):
        raise AssertionError("the network was loaded before the error")

    monkeypatch.setattr(deepcanvas.models, "load_model", no_network)
    styles = [STYLE] + [f for f in flags if f == OTHER]
    argv = ["style", CONTENT, *styles, "-o", str(tmp_path / "o.png"), "--size", "32", "--quiet"]
    code = main(argv + [x.format(**bad) for x in flags if x != OTHER])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("deepcanvas: error: ") and "Traceback" not in err
    assert re.search(words, err), err


def test_bad_dream_mask(bad, tmp_path, capsys):
    code = main(["dream", CONTENT, "--mask", bad["black"], "-o", str(tmp_path / "d.png"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "the mask is all black" in err and err.count("\n") == 1


def test_a_style_colour_missing_from_the_content_map_is_a_one_line_warning(bad, tmp_path, capsys, monkeypatch):
    import deepcanvas.models

    def stop(*a, **k):  # the warning comes before the network; stop there
        raise DeepCanvasError("stopped")

    monkeypatch.setattr(deepcanvas.models, "load_model", stop)
    code = main(["style", CONTENT, STYLE, "--content-map", bad["blue"], "--style-map", bad["red_blue"], "--quiet",
                 "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 1 and "deepcanvas: warning: style map colour #ff0000 is not in the content map" in err
    assert err.count("\n") == 2 and "Traceback" not in err

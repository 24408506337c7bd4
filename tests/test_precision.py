"""Mixed precision: what 'auto' picks on a CPU, and every technique running under bf16 autocast on the CPU."""

import numpy as np
import pytest
import torch

import deepcanvas as dc
import deepcanvas.precision as precision
import deepcanvas.render as render
from deepcanvas.precision import cpu_has_native_bf16, resolve_precision

from doubles import DATA

CPU = torch.device("cpu")


@pytest.mark.parametrize("flags, expected", [({"avx512f", "avx512_bf16"}, "bf16"), ({"amx_tile", "amx_bf16"}, "bf16"),
                                             ({"avx512f", "avx2", "amx_tile"}, "fp32"), (set(), "fp32")])
def test_auto_picks_bf16_only_on_cpus_with_native_bf16(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "_cpu_flags", lambda: frozenset(flags))
    assert cpu_has_native_bf16() == (expected == "bf16")
    assert resolve_precision(CPU, "auto") == expected
    assert resolve_precision(CPU, "fp32") == "fp32"  # an explicit choice stays what it is
    assert resolve_precision(torch.device("meta"), "auto") == "fp32"  # not a CPU or a CUDA card


def test_detection_answers_on_this_machine():
    """A bool from torch's probe and /proc/cpuinfo; auto follows it (fp32 on a CPU that does not say bf16)."""
    assert isinstance(cpu_has_native_bf16(), bool)
    assert resolve_precision(CPU, "auto") == ("bf16" if cpu_has_native_bf16() else "fp32")


CONTENT = DATA / "chelsea.jpg"
RUNS = {
    "style": lambda p: dc.style_transfer(CONTENT, DATA / "swirls.jpg", size=48, iterations=3, seed=0, precision=p),
    "dream": lambda p: dc.dream(CONTENT, size=64, iterations=2, octaves=2, seed=0, precision=p),
    "classviz": lambda p: dc.visualize_class(["goldfinch"], size=48, iterations=3, seed=0, precision=p),
    "invert": lambda p: dc.invert(CONTENT, layer="relu2_2", size=48, iterations=3, seed=0, precision=p),
    "atlas": lambda p: dc.atlas(layers="relu2_1", channels="2", size=32, iterations=3, cache=False, precision=p),
}


@pytest.mark.slow  # five techniques, twice each, on VGG
@pytest.mark.parametrize("technique", sorted(RUNS))
def test_every_technique_runs_under_cpu_bf16_autocast(monkeypatch, technique):
    """The network runs in bf16 (autocast entered), the losses and the pixels stay finite fp32, and the picture
    is close to fp32's."""
    seen = []
    original = render.autocast_for

    def spy(device, prec):
        seen.append(resolve_precision(device, prec))
        return original(device, prec)

    monkeypatch.setattr(render, "autocast_for", spy)
    bf16 = np.asarray(RUNS[technique]("bf16"), dtype=np.float32)
    assert seen and set(seen) == {"bf16"}
    seen.clear()
    fp32 = np.asarray(RUNS[technique]("fp32"), dtype=np.float32)
    assert set(seen) == {"fp32"}
    assert np.isfinite(bf16).all() and bf16.shape == fp32.shape
    assert np.abs(bf16 - fp32).mean() < 0.1 * 255  # the same picture, give or take bf16's rounding


def test_auto_runs_bf16_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    seen = []
    original = render.autocast_for
    monkeypatch.setattr(render, "autocast_for", lambda d, p: seen.append(resolve_precision(d, p)) or original(d, p))
    out = dc.style_transfer(CONTENT, DATA / "swirls.jpg", size=32, iterations=2, seed=0)
    assert set(seen) == {"bf16"} and max(out.size) == 32

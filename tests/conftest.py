import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
DATA = ROOT / "deepcanvas" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep converted weights in one session-wide temp cache, never in the user's."""
    cache = tmp_path_factory.getbasetemp() / "deepcanvas-cache"
    monkeypatch.setenv("DEEPCANVAS_CACHE", str(cache))
    yield


@pytest.fixture(scope="session")
def shared_images():
    if not SHARED.is_dir():
        pytest.fail(f"../shared/images not found at {SHARED}")
    return SHARED


def check_gradient(f, x: torch.Tensor, directions: int = 6, eps: float = 1e-2) -> None:
    """Autograd's gradient against central finite differences along random directions.

    (The objectives compute their losses in float32 whatever the input, so a
    float64 gradcheck's tolerances are out of reach; directional derivatives
    with a step of 1e-2 on a float64 network agree to ~1e-5 here.)
    """
    x = x.detach().clone().requires_grad_(True)
    f(x).backward()
    g = x.grad.detach()
    gen = torch.Generator().manual_seed(1)
    for _ in range(directions):
        v = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        v /= v.norm()
        with torch.no_grad():
            fd = (float(f(x + eps * v)) - float(f(x - eps * v))) / (2 * eps)
        an = float((g * v).sum())
        assert an == pytest.approx(fd, rel=2e-3, abs=2e-5), (an, fd)
    # and one coordinate where the gradient is largest
    i = int(g.abs().argmax())
    e = torch.zeros_like(x).view(-1)
    e[i] = 1
    e = e.view_as(x)
    with torch.no_grad():
        fd = (float(f(x + eps * e)) - float(f(x - eps * e))) / (2 * eps)
    assert float(g.view(-1)[i]) == pytest.approx(fd, rel=2e-3, abs=2e-5)

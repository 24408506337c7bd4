import os

import pytest
import torch

from doubles import SHARED

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep converted weights in one session-wide temp cache, never in the user's."""
    cache = tmp_path_factory.getbasetemp() / "deepcanvas-cache"
    monkeypatch.setenv("DEEPCANVAS_CACHE", str(cache))
    yield


@pytest.fixture(autouse=True)
def _fp32_auto_precision(request, monkeypatch):
    """'auto' precision is fp32 in the tests, as on a CPU without native bf16: the tests compare gradients and pictures
    at fp32's tolerance, and a CPU with AVX512-BF16 (an AMD EPYC here) would otherwise run them in bf16. bf16 has
    its own tests, and test_precision checks the detection itself."""
    if request.module.__name__ != "test_precision":
        from deepcanvas import precision

        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    yield


@pytest.fixture(scope="session")
def shared_images():
    if not SHARED.is_dir():
        pytest.fail(f"../shared/images not found at {SHARED}")
    return SHARED


# -- the studio: an app over a fresh data folder -------------------------------------------------------
@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "studio"


@pytest.fixture
def client(data_dir):
    # Imported here: the studio's dependencies are optional, and its test modules skip without them.
    from fastapi.testclient import TestClient

    from deepcanvas.web.app import create_app

    with TestClient(create_app(data_dir)) as c:
        yield c

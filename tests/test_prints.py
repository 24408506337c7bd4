"""Prints: the coarse-to-fine schedule above the working size, print sizes and DPI, resume, memory refusal."""

import json
import warnings

import pytest
from PIL import Image

import deepcanvas
from deepcanvas import prints as P
from deepcanvas.cli import main
from deepcanvas.errors import DeepCanvasError, Notice
from deepcanvas.options import PrintOptions, parse_print_size
from deepcanvas.render import Interrupted
from deepcanvas.techniques.style_print import print_schedule, style_print

from doubles import DATA, tiny_relu_net

CONTENT, STYLE = DATA / "chelsea.jpg", DATA / "swirls.jpg"


def tiny(**kw):
    return dict(model=tiny_relu_net(), style_layers="r1,r2", content_layers="r3", seed=0, iterations=4,
                method="gram", working_size=32) | kw


def test_print_schedule_doubles_up_to_the_target_with_fewer_iterations():
    assert print_schedule(4096, 512, 52) == [(1024, 9), (2048, 4), (4096, 2)]
    assert print_schedule(1100, 512, 52) == [(1100, 9)]
    assert print_schedule(3000, 512, 52, 20) == [(1024, 20), (2048, 10), (3000, 7)]


def test_print_size_parsing_and_errors():
    assert parse_print_size("8x10in") == (8, 10)
    w, h = parse_print_size("30 x 40 cm")
    assert (w, h) == pytest.approx((30 / 2.54, 40 / 2.54))
    # A 3:2 landscape photo in a 30x40 cm print at 300 dpi: turned to 40x30, limited by the 30 cm side.
    assert PrintOptions(print_size="30x40cm", dpi=300).side((400, 600), 512) == int(40 / 2.54 * 300)
    assert PrintOptions(print_size="30x30cm", dpi=300).side((400, 600), 512) == int(30 / 2.54 * 300)
    with pytest.raises(DeepCanvasError, match="needs a dpi"):
        PrintOptions(print_size="30x40cm")
    with pytest.raises(DeepCanvasError, match="unit"):
        PrintOptions(print_size="30x40ft", dpi=300)
    with pytest.raises(DeepCanvasError, match="look like"):
        PrintOptions(print_size="big", dpi=300)
    with pytest.raises(DeepCanvasError, match="over the 16,384 px limit"):
        PrintOptions(print_size="100x100cm", dpi=600).side((100, 100), 512)


def test_a_print_is_made_coarse_to_fine_in_one_run_and_records_its_dpi(tmp_path):
    seen = []
    img = deepcanvas.style_transfer(CONTENT, STYLE, size=128, print_iterations=2, dpi=300, callback=seen.append,
                                    **tiny())
    assert img.size == (128, 85) and img.info["dpi"] == (300, 300)
    stages = [p.stage for p in seen if not p.done]
    assert stages == ["scale 1/1 (32 px)"] * 4 + ["print 1/2 (64 px)"] * 2 + ["print 2/2 (128 px)"]
    assert [p.iteration for p in seen] == list(range(1, 8)) + [7] and {p.total for p in seen} == {7}
    for ext in ("png", "jpg"):
        deepcanvas.io.save_image(img, tmp_path / f"p.{ext}")
        assert Image.open(tmp_path / f"p.{ext}").info["dpi"] == pytest.approx((300, 300), abs=0.01)


def test_a_print_keeps_the_working_size_composition():
    base = deepcanvas.style_transfer(CONTENT, STYLE, size=32, **tiny())
    big = deepcanvas.style_transfer(CONTENT, STYLE, size=128, **tiny())
    shrunk = deepcanvas.imaging.image_to_tensor(big.resize(base.size, Image.LANCZOS))
    diff = (shrunk - deepcanvas.imaging.image_to_tensor(base)).abs().mean()
    assert diff < 0.03


def test_a_stopped_print_resumes_from_its_last_finished_size(tmp_path):
    out = tmp_path / "print.png"

    def stop_at_second_print_size(p):
        if p.stage.startswith("print 2/2"):
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stopped:
        style_print(CONTENT, STYLE, out, size=128, callback=stop_at_second_print_size, **tiny())
    assert stopped.value.image is not None and not out.exists()
    folder = P.state_folder(out)
    assert json.loads((folder / "state.json").read_text())["side"] == 64
    seen = []
    with pytest.warns(Notice, match="resuming the print from its finished 64 px size"):
        style_print(CONTENT, STYLE, out, size=128, callback=seen.append, **tiny())
    assert seen[0].iteration == 6 and seen[0].stage.startswith("print 2/2")  # 4 + 1 steps were done
    assert Image.open(out).size == (128, 85) and not folder.exists()
    # A different command starts afresh.
    with pytest.raises(Interrupted):
        style_print(CONTENT, STYLE, out, size=128, callback=stop_at_second_print_size, **tiny())
    seen.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Notice)
        style_print(CONTENT, STYLE, out, size=128, callback=seen.append, **tiny(seed=1))
    assert seen[0].iteration == 1


def test_a_finished_picture_is_made_into_a_print(tmp_path):
    done = tmp_path / "done.png"
    deepcanvas.style_transfer(CONTENT, STYLE, size=32, **tiny()).save(done)
    seen = []
    img = deepcanvas.style_transfer(CONTENT, STYLE, size=128, init=str(done), print_from_init=True,
                                    callback=seen.append, **tiny())
    assert img.size == (128, 85) and seen[0].stage.startswith("print 1/2")


def test_not_enough_memory_is_refused_before_any_step(monkeypatch):
    monkeypatch.setattr(P, "available_bytes", lambda: 2 * 2**30)
    seen = []
    with pytest.raises(DeepCanvasError, match=r"needs about .* GiB, 2.0 GiB is free: at most about \d+ px fits"):
        deepcanvas.style_transfer(CONTENT, STYLE, size=8192, callback=seen.append, **tiny())
    assert not seen


@pytest.mark.parametrize("args, message", [
    (["--print-size", "30x40cm"], "print_size needs a dpi"),
    (["--print-size", "30x40ft", "--dpi", "300"], "unit must be"),
    (["--print-size", "200x200cm", "--dpi", "300"], "over the 16,384 px limit"),
    (["--size", "20000"], "size must be at most"),
    (["--size", "128", "-o", "/nonexistent/x.png"], "does not exist"),
])
def test_cli_refuses_bad_prints_in_one_line(args, message, capsys, tmp_path):
    assert main(["style", str(CONTENT), str(STYLE), "-o", str(tmp_path / "o.png"), "--quiet", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []

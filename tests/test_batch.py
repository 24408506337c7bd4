"""Batch style transfer: style targets once, resume by skipping existing outputs, one progress bar, Ray."""

import os

import pytest
from PIL import Image

from deepcanvas.batch import style_batch
from deepcanvas.cli import main
from deepcanvas.errors import DeepCanvasError

from doubles import DATA

STYLE = DATA / "swirls.jpg"
FAST = dict(size=32, iterations=2, multiscale=False, seed=0)


@pytest.fixture
def frames(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    src = Image.open(DATA / "chelsea.jpg").convert("RGB").resize((48, 32))
    for i in range(3):
        src.rotate(i * 5).save(d / f"frame_{i:03d}.png")
    (d / "notes.txt").write_text("not an image, and not matched")
    return d


def test_batch_computes_style_targets_once_and_reports_one_progress(frames, tmp_path, monkeypatch):
    from deepcanvas.techniques import style_targets

    made = []

    class Counting(style_targets.StyleTargets):
        def __init__(self):
            super().__init__()
            made.append(self)

    monkeypatch.setattr(style_targets, "StyleTargets", Counting)
    seen = []
    out = tmp_path / "out"
    paths = style_batch(str(frames), STYLE, out, callback=seen.append, **FAST)
    assert [p.name for p in paths] == ["frame_000.png", "frame_001.png", "frame_002.png"]
    assert all(Image.open(p).size == (32, 21) for p in paths)
    # one cache for the batch: one style image's features at one size, computed once for the three images
    assert len(made) == 1 and made[0].computed == 1
    its = [p.iteration for p in seen]
    assert its == list(range(1, 7)) + [6] and seen[-1].done and seen[-1].total == 3 * 2
    assert [p.stage.split(" [")[0] for p in seen[:-1:2]] == ["frame_000.png", "frame_001.png", "frame_002.png"]


def test_batch_resumes(frames, tmp_path):
    out = tmp_path / "out"
    style_batch(str(frames / "*.png"), [STYLE], out, **FAST)
    keep = out / "frame_000.png"
    before = keep.stat().st_mtime_ns
    (out / "frame_002.png").unlink()
    seen = []
    style_batch(str(frames / "*.png"), [STYLE], out, callback=seen.append, **FAST)
    assert keep.stat().st_mtime_ns == before
    assert (out / "frame_002.png").is_file()
    assert seen[0].iteration == 2 * 2 + 1  # counted on from the two finished items


def test_batch_cli_and_errors(frames, tmp_path, capsys):
    out = tmp_path / "cli_out"
    code = main(["style", "--batch", str(frames), str(STYLE), "-o", str(out), "--size", "32", "--iterations", "1",
                 "--no-multiscale", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["frame_000.png", "frame_001.png", "frame_002.png"]
    assert "3 images in" in capsys.readouterr().out
    code = main(["style", "--batch", str(tmp_path / "nothing*.png"), str(STYLE), "-o", str(out), "--quiet"])
    assert code == 1 and "no images found" in capsys.readouterr().err
    with pytest.raises(DeepCanvasError, match="folder"):
        style_batch(str(frames), STYLE, frames / "frame_000.png", **FAST)


@pytest.mark.slow  # starts Ray
def test_batch_on_a_local_ray_instance(frames, tmp_path):
    pytest.importorskip("ray") if not os.environ.get("CI") else None
    import ray

    out = tmp_path / "ray_out"
    seen = []
    assert not ray.is_initialized()
    paths = style_batch(str(frames), STYLE, out, callback=seen.append, ray_address="local", **FAST)
    assert not ray.is_initialized()  # the instance the batch started is stopped again
    assert all(Image.open(p).size == (32, 21) for p in paths)
    # every worker step reaches the one stream (reports may come several at a time), then one final Progress
    its = [p.iteration for p in seen]
    assert its == sorted(its) and its[-1] == 3 * 2 and seen[-1].done and sum(p.done for p in seen) == 1
    assert len(set(its)) >= 3  # not one jump per image


def test_each_image_of_a_batch_is_the_picture_style_transfer_makes_of_it_alone(frames, tmp_path):
    from deepcanvas.techniques.style import style_transfer

    paths = style_batch(str(frames), STYLE, tmp_path / "out", **FAST)
    for p in paths[:2]:
        alone = style_transfer(frames / p.name, STYLE, **FAST)
        assert Image.open(p).tobytes() == alone.tobytes()

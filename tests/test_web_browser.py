"""deepcanvas studio in a real browser: headless Debian Chromium driven by Playwright.

Starts ``deepcanvas serve`` in a subprocess on a free port, uploads the test photo and
Van Gogh from ../shared/images (by path, never copied), runs a small style transfer,
watches the preview update, downloads the result, runs two jobs from two pages, and
takes a screenshot of the page (to docs/studio.png for the README when DEEPCANVAS_SCREENSHOT=1).

Skips when Chromium or Playwright is missing, except in CI (CI=true), where it must run:
.ci/run installs Debian's chromium.
"""

import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "images"
CHROMIUM = os.environ.get("DEEPCANVAS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
JOB_TIMEOUT_MS = 300_000

pytestmark = pytest.mark.slow  # a real Chromium and a server in a subprocess


def _missing(what: str):
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing in CI; .ci/run should have installed it")
    # allow_module_level: without it pytest reports a collection error and the whole run stops.
    pytest.skip(f"{what} is not installed", allow_module_level=True)


if not Path(CHROMIUM).is_file():
    _missing(f"Chromium ({CHROMIUM}; apt-get install chromium)")
try:
    from playwright.sync_api import sync_playwright
except ImportError:
    _missing("the playwright package (pip install '.[test]')")
try:
    import fastapi  # noqa: F401
    import python_multipart  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError:
    _missing("the studio's web dependencies (pip install '.[web]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    env = {**os.environ, "DEEPCANVAS_CACHE": str(tmp_path_factory.getbasetemp() / "deepcanvas-cache"),
           "OMP_NUM_THREADS": "2"}
    data = tmp_path_factory.mktemp("studio")
    log = open(data / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "deepcanvas", "serve", "--port", str(port), "--data-dir",
                             str(data)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/api/techniques", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        else:
            pytest.fail("the studio did not start in 30 s")
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"deepcanvas serve exited: {log.read()}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def open_page(browser, url, width=1360, height=900):
    page = browser.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    return page, errors


def set_fields(page, **values):
    for name, v in values.items():
        page.fill(f"#job-form [name={name}]", str(v))


def download(page) -> Image.Image:
    with page.expect_download() as dl:
        page.click("#download")
    data = Path(dl.value.path()).read_bytes()
    assert dl.value.suggested_filename.endswith(".png")
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def test_style_transfer_in_the_browser(server, browser, tmp_path):
    assert (SHARED / "tubingen.jpg").is_file(), f"missing {SHARED}"
    page, errors = open_page(browser, server)
    assert page.locator("#tabs .tab.active").inner_text() == "Style transfer"
    page.set_input_files("input[type=file][data-input=content]", str(SHARED / "tubingen.jpg"))
    page.wait_for_selector("fieldset[data-input=content] .tile.picked[data-image^='upload:']")
    page.set_input_files("input[type=file][data-input=styles]", str(SHARED / "starry_night.jpg"))
    page.wait_for_selector("fieldset[data-input=styles] .tile.picked[data-image^='upload:']")
    page.click("fieldset[data-input=styles] .tile[data-image='bundled:swirls.jpg']")  # un-pick the default
    assert page.locator("fieldset[data-input=styles] .tile.picked").count() == 1
    assert page.locator("fieldset[data-input=content] .tile.picked").count() == 1
    # Big enough (a few seconds) that the page sees it running and painting, however fast the machine.
    set_fields(page, size=160, iterations=16)
    page.fill("#preview_every", "2")
    # An optional switch (None: the preset decides) is a default / on / off choice, not a checkbox.
    page.evaluate("document.querySelector('#advanced').open = true")
    assert page.input_value("#job-form [name=multiscale]") == ""
    page.select_option("#job-form [name=multiscale]", "false")
    page.click("#run")
    page.wait_for_selector("#job-state[data-state=running]", timeout=JOB_TIMEOUT_MS)
    assert page.locator(".progress").is_visible()
    page.wait_for_selector("#job-state[data-state=done]", timeout=JOB_TIMEOUT_MS)
    assert int(page.get_attribute("#preview", "data-preview-count")) >= 2  # it updated while painting
    assert page.get_attribute(".progress", "aria-valuenow") == "100"
    im = download(page)
    assert im.format == "PNG" and max(im.size) == 160
    assert im.size == (160, 120)  # tubingen is 4:3
    # The gallery has it, with its parameters and a rerun button that refills the form.
    item = page.locator(".gitem").first
    item.wait_for()
    assert "size" in item.inner_text() and "160" in item.inner_text() and "tubingen" in item.inner_text()
    assert "multiscale" in item.inner_text()
    page.wait_for_timeout(500)
    # The README's screenshot is refreshed on request only, so a test run leaves the checkout clean.
    shot = ROOT / "docs" / "studio.png" if os.environ.get("DEEPCANVAS_SCREENSHOT") else tmp_path / "studio.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    # Print: on the finished style picture, a picker of sides above the working size; a refusal shown in it.
    assert page.locator("#print-current").is_visible() and item.locator("button.print").count() == 1
    item.locator("button.print").click()
    assert page.locator("#print-dialog").is_visible()
    assert page.locator("#print-sides input[type=radio]").count() == 3  # 1024, 2048, 4096 px
    page.fill("#print_size", "30x40cm")
    page.click("#print-submit")
    page.wait_for_selector("#print-error:not([hidden])")
    assert "dpi" in page.inner_text("#print-error")
    page.click("#print-cancel")
    assert not page.locator("#print-dialog").is_visible()
    set_fields(page, size=512, iterations=60)
    item.locator("button.rerun").click()
    assert page.input_value("#job-form [name=size]") == "160"
    assert page.input_value("#job-form [name=iterations]") == "16"
    assert page.input_value("#preview_every") == "2"
    assert page.input_value("#job-form [name=multiscale]") == "false"
    assert page.locator("fieldset[data-input=styles] .tile.picked").get_attribute("data-image").startswith("upload:")
    # Phone width: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert errors == []
    page.close()


def test_two_pages_two_jobs(server, browser):
    a, errors_a = open_page(browser, server)
    b, errors_b = open_page(browser, server, width=390, height=844)
    set_fields(a, size=160, iterations=30)  # long enough that b's job has to queue behind it
    set_fields(b, size=64, iterations=2)
    a.click("#run")
    a.wait_for_selector("#job-state[data-state=queued], #job-state[data-state=running]")
    b.click("#run")
    b.wait_for_selector("#job-state[data-state=queued]")  # a's job is still running: b waits its turn
    assert "in the queue" in b.inner_text("#job-status")
    a.wait_for_selector("#job-state[data-state=done]", timeout=JOB_TIMEOUT_MS)
    b.wait_for_selector("#job-state[data-state=done]", timeout=JOB_TIMEOUT_MS)
    assert max(download(a).size) == 160 and max(download(b).size) == 64
    assert b.evaluate("document.documentElement.scrollWidth") <= 390
    assert errors_a == [] and errors_b == []


# -- regions (issue 11): the brush ------------------------------------------------------------------------------
def stroke(page, x0, y0, x1, y1, steps=8):
    """A brush stroke across the regions canvas, in fractions of its size."""
    # Centred in the form's scrolling card: not under the sticky Run bar at its bottom.
    page.evaluate("document.querySelector('fieldset.regions .regions-canvas').scrollIntoView({block: 'center'})")
    box = page.locator("fieldset.regions .regions-canvas").bounding_box()
    page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + x1 * box["width"], box["y"] + y1 * box["height"], steps=steps)
    page.mouse.up()


def painted_share(page) -> float:
    return page.evaluate("""() => { const c = document.querySelector('fieldset.regions .regions-canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] >= 128) n++; return n / (d.length / 4); }""")


def test_paint_a_mask_and_regions_with_the_brush(server, browser):
    page, errors = open_page(browser, server)
    page.select_option("fieldset.regions .regions-mode", "mask")
    page.wait_for_selector("fieldset.regions[data-ready='1'] .regions-canvas")
    page.fill("fieldset.regions .regions-size", "40")
    page.dispatch_event("fieldset.regions .regions-size", "input")
    stroke(page, 0.1, 0.5, 0.4, 0.5)
    first = painted_share(page)
    assert first > 0.02
    page.click("fieldset.regions .regions-undo")  # undo takes the stroke away
    assert painted_share(page) == 0
    stroke(page, 0.55, 0.2, 0.95, 0.8)  # paint the right-hand side
    page.click("fieldset.regions .regions-eraser")  # the eraser takes part of it back
    stroke(page, 0.55, 0.2, 0.7, 0.35, steps=3)
    page.click("fieldset.regions .regions-eraser")
    assert 0 < painted_share(page)
    set_fields(page, size=64, iterations=6)  # enough steps for the painted side to move (the swirls are loud: shorter steps)
    page.fill("#preview_every", "1")
    page.click("#run")
    page.wait_for_selector("#job-state[data-state=done]", timeout=JOB_TIMEOUT_MS)
    assert page.get_attribute("#preview", "src")
    job = page.evaluate("fetch('/api/jobs').then(r => r.json()).then(j => j[0])")
    assert job["inputs"]["mask"].startswith("upload:") and job["state"] == "done"
    page.wait_for_selector(f".gitem[data-job='{job['id']}'][data-state='done']")  # the gallery has it
    im = download(page)
    assert max(im.size) == 64
    # Outside the painted right-hand side the result is the photo (the mask's job).
    photo = Image.open(ROOT / "deepcanvas" / "data" / "chelsea.jpg").convert("RGB").resize(im.size)
    a, b = np.asarray(im.convert("RGB"), float) / 255, np.asarray(photo, float) / 255
    w = im.size[0]
    assert np.abs(a[:, : w // 3] - b[:, : w // 3]).mean() < 0.03
    assert np.abs(a[:, -w // 4:] - b[:, -w // 4:]).mean() > np.abs(a[:, : w // 3] - b[:, : w // 3]).mean() + 0.01

    # Regions: two colours, a style each.
    page.select_option("fieldset.regions .regions-mode", "styles")
    page.click("fieldset.regions .regions-clear")
    page.click("fieldset.regions .regions-swatch[data-color='0']")
    stroke(page, 0.05, 0.3, 0.45, 0.7)
    page.click("fieldset.regions .regions-swatch[data-color='1']")
    stroke(page, 0.55, 0.3, 0.95, 0.7)
    assert page.locator("fieldset.regions .regions-style select").count() == 2
    page.select_option("fieldset.regions .regions-style select[data-color='1']", "bundled:coffee.jpg")
    if os.environ.get("DEEPCANVAS_SCREENSHOT"):  # the README's picture of the brush, on request only
        page.locator("fieldset.regions").screenshot(path=str(ROOT / "docs" / "studio_regions.png"))
    done_before = page.locator(".gitem[data-state='done']").count()
    page.click("#run")
    page.wait_for_function(f"document.querySelectorAll(\".gitem[data-state='done']\").length > {done_before}",
                           timeout=JOB_TIMEOUT_MS)
    job = page.evaluate("fetch('/api/jobs').then(r => r.json()).then(j => j[0])")
    assert len(job["inputs"]["style_masks"]) == 2 and job["inputs"]["styles"][1] == "bundled:coffee.jpg"
    assert errors == []
    page.close()

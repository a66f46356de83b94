"""The demo in a real browser: system Chromium (headless, no network) drives `vigc_demo.py` on a free local port.

No browser is downloaded: Playwright launches the Debian `chromium` package (`.ci/run` installs it when run as
root). The test skips, saying why, only when that browser (or the Python packages) is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigc.data.shapes import make_scenes
from vigc.data.shapes_scene import render_scene

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("VIGC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 180
GENERATE_TIMEOUT_MS = 120_000
VIEWPORT = {"width": 1280, "height": 800}
# A test hook of vigc_demo.py: a pause after every generation step, so a step is on the page before the run ends.
STEP_DELAY_S = 1.0
# A held-out scene (seed 999, index 15) on which default VIC changes the default model's complex-reasoning answer
# (VIG's answer lists "a small blue square" twice, VIC the blue square and the blue circle; on the packaged
# samples, and on most scenes, VIC keeps every answer of the current model).
CHANGED_BY_VIC = "shapes_999_000015.png"
CHANGED_SCENE = 15
CHANGED_TASK = "complex reasoning"

if not CHROMIUM.is_file():
    pytest.skip(
        f"system Chromium not found at {CHROMIUM}: apt-get install chromium (.ci/run does it when run as root)",
        allow_module_level=True,
    )
pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[demo]')")
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")

from playwright.sync_api import Page, Route, sync_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_served(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vigc_demo.py exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"vigc_demo.py did not answer on {url} within {START_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")


@pytest.fixture
def demo_url(demo_config: Path, tmp_path: Path) -> Iterator[str]:
    """`vigc_demo.py` serving the tiny model on 127.0.0.1; stopped (by its pid) after the test."""
    port = _free_port()
    log = tmp_path / "demo.log"
    command = [sys.executable, str(REPO / "vigc_demo.py"), "--cfg-path", str(demo_config), "--device0", "cpu"]
    command += ["--port", str(port), "--output-dir", str(tmp_path / "out"), "--step-delay", str(STEP_DELAY_S)]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    with log.open("wb") as handle:
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=handle, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_until_served(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_upload_generate_and_save_in_a_browser(demo_url: str, example_image: Path, tmp_path: Path) -> None:
    # The browser itself refuses files that are not images; a cut-off PNG gets through to the server's check.
    (tmp_path / "cut.png").write_bytes(example_image.read_bytes()[:60])
    render_scene(make_scenes(CHANGED_SCENE + 1, 999)[CHANGED_SCENE]).save(tmp_path / CHANGED_BY_VIC)
    external: list[str] = []
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.route("**/*", lambda route: _local_only(route, external))
            page.goto(demo_url)
            page.wait_for_selector("#vigc-generate")
            _assert_on_first_screen(page, "#vigc-upload", "#vigc-task", "#vigc-generate")
            assert not page.locator("#vigc-save").is_visible()  # nothing to save yet

            page.set_input_files("#vigc-upload input[type=file]", str(tmp_path / "cut.png"))
            page.wait_for_selector("#vigc-upload-message .vigc-error")
            assert "'cut.png' cannot be used as an image" in page.inner_text("#vigc-upload-message")
            page.click("#vigc-generate")
            page.wait_for_selector("#vigc-status .vigc-error")  # a message, and the page still works:

            page.click("#vigc-upload button[aria-label='Remove Image']")
            page.wait_for_function("!document.querySelector('#vigc-upload-message .vigc-error')")
            # the last image's messages go with it (gradio shows "processing" on the status while the event runs)
            page.wait_for_function("document.querySelector('#vigc-status').innerText.trim() === ''")
            page.set_input_files("#vigc-upload input[type=file]", str(tmp_path / CHANGED_BY_VIC))
            page.wait_for_selector("#vigc-upload-message .vigc-info")
            assert page.locator("#vigc-upload img").first.is_visible()  # the picture where it was dropped
            _assert_on_first_screen(page, "#vigc-generate")
            page.get_by_label(CHANGED_TASK).check()
            page.click("#vigc-generate")

            page.wait_for_selector("#vigc-result-0 .vigc-step", timeout=GENERATE_TIMEOUT_MS)
            assert page.locator("#vigc-result-0 .vigc-progress").count() == 1  # a VIC step, and still running
            assert page.locator("#vigc-result-0 .vigc-timing").count() == 0
            page.wait_for_selector("#vigc-result-0 .vigc-timing", timeout=GENERATE_TIMEOUT_MS)
            page.wait_for_selector("#vigc-status .vigc-ok")
            question = page.inner_text("#vigc-result-0 .vigc-question").strip()
            answer = page.inner_text("#vigc-result-0 .vigc-answer").strip()
            assert question and answer and "(empty)" not in (question, answer)
            assert page.locator("#vigc-result-0 .vigc-step").count() >= 1
            marks = page.locator("#vigc-result-0 .vigc-marked ins, #vigc-result-0 .vigc-marked del")
            assert marks.count() >= 1, "VIC changed the answer on this scene, so its changes must be marked"
            assert "Marked against the answer before VIC" in page.inner_text("#vigc-result-0")
            _screenshot(page, tmp_path / "vigc_demo.png")

            page.click("#vigc-save")
            page.wait_for_selector("#vigc-saved .vigc-ok")
            records = tmp_path / "out" / "llava_vig" / "records.demo.jsonl"
            assert str(records.resolve()) in page.inner_text("#vigc-saved")

            page.click("#vigc-upload button[aria-label='Remove Image']")  # a new input: the result goes
            page.wait_for_function("document.querySelector('#vigc-saved').innerText.trim() === ''")
            assert not page.locator("#vigc-save").is_visible()
        finally:
            browser.close()
    record = json.loads(records.read_text())
    assert record["question"] == question and record["demo"]["upload_name"] == CHANGED_BY_VIC
    assert external == [], f"the page asked for outside resources: {external}"
    print(f"browser session: {time.monotonic() - started:.1f} s")


def _assert_on_first_screen(page: Page, *selectors: str) -> None:
    """Each element lies wholly inside the window as it is (no scrolling)."""
    assert page.evaluate("window.scrollY") == 0
    for selector in selectors:
        box = page.locator(selector).first.bounding_box()
        assert box is not None, f"{selector} is not shown"
        inside = (
            box["y"] >= 0
            and box["y"] + box["height"] <= VIEWPORT["height"]
            and box["x"] + box["width"] <= VIEWPORT["width"]
        )
        assert inside, f"{selector} at {box} is not on the first {VIEWPORT['width']}x{VIEWPORT['height']} screen"


def _local_only(route: Route, external: list[str]) -> None:
    """Serve requests to the demo; refuse (and record) anything else, as on a machine without network."""
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "data:", "blob:")):
        route.continue_()
    else:
        external.append(url)
        route.abort()


def _screenshot(page: Page, path: Path) -> None:
    """Save the first screen; also to $VIGC_DEMO_SCREENSHOT when set (to look at it after a run)."""
    page.screenshot(path=str(path))
    extra = os.environ.get("VIGC_DEMO_SCREENSHOT")
    if extra:
        shutil.copyfile(path, extra)

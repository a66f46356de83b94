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

if not CHROMIUM.is_file():
    pytest.skip(
        f"system Chromium not found at {CHROMIUM}: apt-get install chromium (.ci/run does it when run as root)",
        allow_module_level=True,
    )
pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[demo]')")
pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[demo]')")

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
    command = [sys.executable, str(REPO / "vigc_demo.py"), "--cfg-path", str(demo_config), "--device1", "cpu"]
    command += ["--port", str(port), "--output-dir", str(tmp_path / "out")]
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
    (tmp_path / "notes.txt").write_text("not an image")
    external: list[str] = []
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.route("**/*", lambda route: _local_only(route, external))
            page.goto(demo_url)
            page.wait_for_selector("#vigc-generate")

            page.set_input_files("#vigc-upload input[type=file]", str(tmp_path / "notes.txt"))
            page.wait_for_selector("#vigc-upload-message .vigc-error")
            assert "'notes.txt' cannot be used as an image" in page.inner_text("#vigc-upload-message")
            page.click("#vigc-generate")
            page.wait_for_selector("#vigc-status .vigc-error")  # a message, and the page still works:

            page.click("#vigc-upload button[aria-label='Clear']")
            page.set_input_files("#vigc-upload input[type=file]", str(example_image))
            page.wait_for_selector("#vigc-upload-message .vigc-info")
            page.click("#vigc-generate")
            page.wait_for_selector("#vigc-result-0 .vigc-question", timeout=GENERATE_TIMEOUT_MS)
            question = page.inner_text("#vigc-result-0 .vigc-question").strip()
            answer = page.inner_text("#vigc-result-0 .vigc-answer").strip()
            assert question and answer and "(empty)" not in (question, answer)
            assert page.locator("#vigc-result-0 .vigc-step").count() >= 1
            assert "total " in page.inner_text("#vigc-result-0 .vigc-timing")
            _screenshot(page, tmp_path / "vigc_demo.png")

            page.click("#vigc-save")
            page.wait_for_selector("#vigc-saved .vigc-ok")
            records = tmp_path / "out" / "llava_vig" / "records.demo.jsonl"
            assert str(records.resolve()) in page.inner_text("#vigc-saved")
        finally:
            browser.close()
    record = json.loads(records.read_text())
    assert record["question"] == question and record["answer"] == answer
    assert external == [], f"the page asked for outside resources: {external}"
    print(f"browser session: {time.monotonic() - started:.1f} s")


def _local_only(route: Route, external: list[str]) -> None:
    """Serve requests to the demo; refuse (and record) anything else, as on a machine without network."""
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "data:", "blob:")):
        route.continue_()
    else:
        external.append(url)
        route.abort()


def _screenshot(page: Page, path: Path) -> None:
    """Save the page; also to $VIGC_DEMO_SCREENSHOT when set (to look at it after a run)."""
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("VIGC_DEMO_SCREENSHOT")
    if extra:
        shutil.copyfile(path, extra)

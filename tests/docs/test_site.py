"""The docs site builds strictly, and every page loads cleanly in a real headless browser.

`mkdocs build --strict` turns every warning (a broken link, a page missing from the nav, a bad
anchor) into a failure. The built site is then served on a local port and each page opened in
Chromium from Debian (`make test` installs `chromium` and `chromium-driver` when missing),
driven by Selenium: a page passes when it renders (its diagrams drawn, its Swagger UI filled)
with no console error and no failed request. The site fetches nothing from the network, so a
machine without one shows any such dependency as a failed request here.

A screenshot of the saga page is saved as `test-output/docs/saga.png` at the repository root
(git-ignored), to look at what a reader sees.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO_ROOT / "test-output" / "docs" / "saga.png"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# A browser on a machine with no network, and nothing of its own to fetch or sync.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)
RENDER_SECONDS = 10.0

# True once the page is drawn: Material has replaced each Mermaid source block by its diagram,
# and every Swagger UI frame shows its operations.
_RENDERED = """
const frames = [...document.querySelectorAll("iframe.swagger-ui-iframe")];
return document.readyState === "complete"
    && document.querySelectorAll("pre.mermaid").length === 0
    && frames.every(f => f.contentDocument
        && f.contentDocument.querySelector(".swagger-ui .opblock") !== null);
"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
        cwd=REPO_ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return target


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    for program in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(program) is None:
            pytest.fail(f"{program} is missing: run `apt-get install -y chromium chromium-driver`")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    # The browser's own start page tries the network, which this machine does not have: leave it
    # and forget what it logged, so that only the site's pages are judged.
    driver.get("about:blank")
    for log in ("browser", "performance"):
        driver.get_log(log)
    yield driver
    driver.quit()


def pages(site: Path) -> list[str]:
    """Every page of the site, as a path relative to its root."""
    return sorted(
        "" if page.parent == site else f"{page.parent.relative_to(site).as_posix()}/"
        for page in site.rglob("index.html")
    )


def open_page(browser: webdriver.Chrome, url: str) -> None:
    browser.get(url)
    deadline = time.monotonic() + RENDER_SECONDS
    while not browser.execute_script(_RENDERED):
        assert time.monotonic() < deadline, f"{url} did not finish rendering"
        time.sleep(0.05)


def problems(browser: webdriver.Chrome) -> list[str]:
    """Console errors and failed requests since the last call."""
    found = [
        f"console: {entry['message']}"
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE"
    ]
    urls: dict[str, str] = {}
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        # A request cancelled because the next page was opened is not a failure.
        if message["method"] == "Network.loadingFailed" and not params.get("canceled"):
            url = urls.get(params["requestId"], "?")
            found.append(f"request failed: {params.get('errorText')}: {url}")
        if message["method"] == "Network.responseReceived":
            response = params["response"]
            if response["status"] >= 400:
                found.append(f"HTTP {response['status']}: {response['url']}")
    return found


def test_the_site_builds_strictly(site: Path) -> None:
    assert (site / "contract" / "saga" / "index.html").is_file()
    assert (site / "reference" / "asyncapi" / "index.html").is_file()
    assert (site / "reference" / "openapi" / "index.html").is_file()


def test_every_page_loads_with_no_console_error_and_no_failed_request(
    site: Path, base_url: str, browser: webdriver.Chrome
) -> None:
    every_page = pages(site)
    assert "contract/saga/" in every_page

    failures = {}
    for page in every_page:
        open_page(browser, base_url + page)
        if found := problems(browser):
            failures[page or "/"] = found

    assert failures == {}


def test_the_saga_page_shows_its_diagrams_and_is_kept_as_a_screenshot(
    base_url: str, browser: webdriver.Chrome
) -> None:
    open_page(browser, base_url + "contract/saga/")
    diagrams = browser.execute_script("return document.querySelectorAll('div.mermaid').length")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height), 6000))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)

    assert browser.save_screenshot(str(SCREENSHOT))
    assert diagrams == 2
    assert problems(browser) == []

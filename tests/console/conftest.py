"""Browser fixtures for the web console: Debian's chromium driven by Playwright, one real server per module.

Every page a test opens fails the test on a JavaScript error, a console error or a failed request
(HTTP >= 400, or a network failure other than a stream the page itself aborted on navigation).
Screenshots go to ``test-artifacts/console/`` (or ``$TUNEFORGE_TEST_ARTIFACTS/console``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import openai
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "training"))

from helpers import register_tiny  # noqa: E402

CHROMIUM = os.environ.get("TUNEFORGE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("TUNEFORGE_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "console"


# Module scope, not session: Playwright's sync API runs an event loop in this thread while it is open, and
# the asyncio tests that run after this module need the thread free of it.
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`); "
                    ".ci/run does this on CI")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def console_server(tmp_path_factory, models_cache, tiny_model_dir):
    """A real uvicorn (fast-polling worker, one torch thread) with ``tiny-chat`` registered."""
    from tuneforge.settings import Settings
    from tuneforge.testing import live_server

    settings = Settings(data_dir=tmp_path_factory.mktemp("console") / "data", models_cache_dir=models_cache,
                        worker_poll_s=0.2, train_threads=1)
    with live_server(settings) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        register_tiny(client, tiny_model_dir)
        server.client = client
        yield server


UNLABELLED = """() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim())
  .map((el) => el.outerHTML.slice(0, 80))"""


class PageProblems:
    def __init__(self, page):
        self.items: list[str] = []
        self.allowed: set[int] = set()  # statuses a test expects (e.g. 401 before signing in)
        self.leaving = False  # the fixture is navigating away at the end of the test
        page.on("pageerror", lambda e: self.items.append(f"JS error: {e}"))
        page.on("console", self._console)
        page.on("response", self._response)
        page.on("requestfailed", self._failed)

    def _console(self, message):
        if message.type != "error":
            return
        if any(f"status of {s} " in message.text for s in self.allowed):
            return  # chromium's own log line for an allowed response
        self.items.append(f"console error: {message.text}")

    def _response(self, response):
        if response.status >= 400 and response.status not in self.allowed:
            self.items.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def _failed(self, request):
        # Aborts that are not failures: a page ends its own event/chat streams when the user navigates
        # away, and requests still in flight when the test ends are cut by the fixture's own navigation
        # (seen in CI: the data page's /v1/files list, started right after signing in).
        if request.failure == "net::ERR_ABORTED" and (self.leaving or "stream=true" in request.url
                                                       or request.url.endswith("/chat/completions")):
            return
        self.items.append(f"request failed: {request.method} {request.url} ({request.failure})")


@pytest.fixture
def console(browser, console_server, artifacts):
    """A fresh browser context on the console; fails the test if any page showed a problem."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(30_000)
    problems = PageProblems(page)
    page.allow_status = problems.allowed.add
    page.server = console_server

    def shot(name: str) -> None:
        """Screenshot the page, and require a label on every control it shows (keyboard and screen readers)."""
        unlabelled = page.evaluate(UNLABELLED)
        if unlabelled:
            problems.items.append(f"{name}: controls without a label: {unlabelled}")
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)

    page.shot = shot
    yield page
    problems.leaving = True
    page.goto("about:blank")  # end the page's streams before closing
    context.close()
    assert not problems.items, "\n".join(problems.items)

"""Browser tests: Debian's Chromium driven by Playwright's sync API, against one real oauthd.

The tests are plain sync functions (pytest-trio leaves those alone). oauthd runs for the whole
session in its own thread with its own `trio.run`, exactly as `oauthd serve` runs it; the
client's redirect URI is a real loopback listener, so the browser really arrives there. One
Chromium serves the session; every test gets a fresh context (no cookies) of its own.

Without Chromium (or Playwright) the tests skip with a message, except under CI=true, where a
missing browser fails the run. Screenshots go to $OAUTHD_ARTIFACTS, else tests/browser/artifacts.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from oauthd.server import serve
from oauthd.settings import (
    LimitSettings,
    LogSettings,
    Rate,
    ResourceSettings,
    Settings,
    settings_for_tests,
)
from tests import components

try:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright
except ImportError:  # reported by the `browser` fixture, as a skip or (under CI) a failure
    sync_playwright = None

HERE = Path(__file__).resolve().parent
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}
TIMEOUT_MS = 10_000
NO_PLAYWRIGHT = "Playwright is not installed (pip install -e '.[dev]')"
INSTALL = "install it with `apt-get install chromium` (or set OAUTHD_CHROMIUM to its path)"


def find_chromium() -> str | None:
    configured = os.environ.get("OAUTHD_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing(reason: str, *, module: bool = False) -> None:
    """No browser: a skip on a developer's machine, a failure in CI."""
    components.missing("browser", reason, module=module)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        missing(NO_PLAYWRIGHT)
    executable = find_chromium()
    if executable is None:
        missing(f"no Chromium found; {INSTALL}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            launched.close()


# --- oauthd, in a thread of its own ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerThread:
    """`serve(settings)` under its own trio.run; `stop()` shuts it down gracefully."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: trio.Event | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread = threading.Thread(target=self._run, name="oauthd", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(partial(serve, self.settings, shutdown=self._stop.wait))
                self.base_url = binds[0]
                self._ready.set()

        try:
            trio.run(main)
        except BaseException as exc:  # shown by start() or stop() in the test's thread
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None or not self.base_url:
            raise RuntimeError("oauthd did not start") from self._error

    def stop(self) -> None:
        if self._stop is not None and self._token is not None and self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(30)
        if self._error is not None:
            raise RuntimeError("oauthd failed while serving") from self._error


@pytest.fixture(scope="session")
def oauthd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a dev-mode oauthd whose issuer is the address it listens on."""
    port = free_port()
    settings = settings_for_tests(
        issuer=f"http://127.0.0.1:{port}",
        listen=f"127.0.0.1:{port}",
        data_dir=tmp_path_factory.mktemp("browser") / "data",
        log=LogSettings(access_log=False),
        resources=(ResourceSettings("https://mcp.example.com/mcp", ("mcp:tools",)),),
        # One server for the whole session: its per-IP and per-account budgets must not run
        # out because of how many browser tests there are, or their order.
        limits=LimitSettings(
            register_per_ip=Rate(100_000, 60),
            login_failures_per_account=Rate(100_000, 60),
            login_failures_per_ip=Rate(100_000, 60),
            device_code_failures=Rate(100_000, 60),
        ),
    )
    server = ServerThread(settings)
    server.start()
    try:
        yield server.base_url
    finally:
        server.stop()


@pytest.fixture
def http(oauthd: str) -> Iterator[httpx.Client]:
    """The client's side of the conversation (registration, /token): plain HTTP."""
    with httpx.Client(base_url=oauthd) as client:
        yield client


# --- the client's loopback redirect URI ------------------------------------------------------


class Callback:
    """A loopback listener standing in for a native client's redirect URI (RFC 8252 §7.3)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        seen = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                body = b"<!doctype html><title>Client</title><p>Back at the client."
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.redirect_uri = self.origin + "/cb"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def callback() -> Iterator[Callback]:
    listener = Callback()
    try:
        yield listener
    finally:
        listener.close()


# --- a fresh browser context per test, watched ------------------------------------------------


@dataclass
class Visit:
    """One person's browser: a page, and everything it requested and logged."""

    page: Page
    home: str
    callback: Callback
    requests: list[Request] = field(default_factory=list)
    console: list[ConsoleMessage] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        """HTML-9: requests to another origin, except the browser being sent back to the
        client's redirect URI at the end of a flow."""
        home = origin_of(self.home)
        return [
            f"{r.resource_type} {r.url}"
            for r in self.requests
            if origin_of(r.url) != home
            and not (r.is_navigation_request() and r.url.startswith(self.callback.redirect_uri))
        ]

    def policy_violations(self) -> list[str]:
        return [m.text for m in self.console if "Content Security Policy" in m.text]


OpenBrowser = Callable[..., Visit]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.fixture
def open_browser(browser: Browser, oauthd: str, callback: Callback) -> Iterator[OpenBrowser]:
    """`open_browser(viewport=..., **context_options)`: a new browser context with one page.
    Every page it opened is checked afterwards: nothing requested from another origin, and
    no Content-Security-Policy violation logged (a stylesheet or form the CSP blocked)."""
    visits: list[Visit] = []

    def open_one(viewport: dict[str, int] = DESKTOP, **options: Any) -> Visit:
        context = browser.new_context(viewport=viewport, base_url=oauthd, **options)
        context.set_default_timeout(TIMEOUT_MS)
        visit = Visit(context.new_page(), oauthd, callback)
        visit.page.on("request", lambda r: visit.requests.append(r))
        visit.page.on("console", lambda m: visit.console.append(m))
        visits.append(visit)
        return visit

    yield open_one
    for visit in visits:
        visit.page.context.close()
    for visit in visits:
        assert visit.foreign_requests() == []
        assert visit.policy_violations() == []


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: $OAUTHD_ARTIFACTS, else tests/browser/artifacts (gitignored)."""
    directory = Path(os.environ.get("OAUTHD_ARTIFACTS") or HERE / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory

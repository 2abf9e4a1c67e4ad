"""The demo page of ``edge-lstm-device serve`` (``GET /``), used in a real headless Chromium.

A real server process on the shipped reference bundle; the browser types a review into the page,
clicks the button (or presses Ctrl+Enter), and the label and probability the page shows must be
what ``POST /v1/predict`` answers for the same text. Without Chromium the browser tests skip,
except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import pytest

from tests.support.browser import CTRL, Browser, Page, find_chromium

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
ANSWER_TIMEOUT_S = 30.0
REVIEWS = ["What a wonderful film", "Dull, predictable and badly acted",
           "A great cast and a moving story, " * 40]  # the last is over the 200-token window


@dataclass
class Served:
    proc: subprocess.Popen
    url: str
    token: str | None = None


def start(*args: str) -> Served:
    """``edge-lstm-device serve --port 0 --json`` on the reference bundle; its URL from the start line."""
    proc = subprocess.Popen([sys.executable, "-m", "edge_lstm_device", "serve", "--port", "0", "--json",
                             "--workers", "1", "--quiet", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT_S)
    try:
        return Served(proc, json.loads(lines[0])["url"])
    except (IndexError, ValueError, KeyError):
        proc.kill()
        pytest.fail(f"no start line (got {lines!r}); stderr: {proc.communicate(timeout=30)[1][-2000:]}")


def stop(served: Served) -> None:
    served.proc.kill()
    served.proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    served = start()
    try:
        yield served
    finally:
        stop(served)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server that asks for a bearer token."""
    token_file = tmp_path_factory.mktemp("demo") / "token"
    token_file.write_text(f"demo-{uuid.uuid4().hex}\n")
    served = start("--token-file", str(token_file))
    served.token = token_file.read_text().strip()
    try:
        yield served
    finally:
        stop(served)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Chromium for the demo page tests (apt-get install chromium)")
        pytest.skip("Chromium not found: apt-get install chromium")
    with Browser(executable) as running:
        yield running


def api(served: Served, method: str, path: str, body: dict | None = None,
        token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one request."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(served.url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=ANSWER_TIMEOUT_S) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def predict(served: Served, text: str) -> tuple[int, dict]:
    """What ``POST /v1/predict`` answers for one review."""
    status, _, body = api(served, "POST", "/v1/predict", {"texts": [text]}, served.token)
    return status, json.loads(body)


def open_page(browser: Browser, served: Served) -> Page:
    """The demo page in a new tab, once it has asked the server for its model."""
    page = browser.new_page()
    page.goto(served.url + "/")
    page.wait_for("document.querySelector('#model').textContent !== '…'")
    return page


def submit(page: Page, text: str, keys: bool = False) -> str:
    """Type ``text`` into the review box, then click the button (or press Ctrl+Enter); the page's
    state once the answer has arrived ("done" or "error")."""
    answers = int(page.evaluate("document.querySelector('#result').dataset.seq"))
    page.type("#review", text)
    if keys:
        page.press("Enter", 13, CTRL)
    else:
        page.click("#score")
    page.wait_for(f"Number(document.querySelector('#result').dataset.seq) > {answers}", ANSWER_TIMEOUT_S)
    return str(page.evaluate("document.querySelector('#result').dataset.state"))


def assert_shows(page: Page, answer: dict) -> None:
    """The page shows the model, label, probability, word count and truncation of ``answer``."""
    expected = answer["predictions"][0]
    assert page.text("#model") == answer["model"]
    assert page.text("#label") == expected["label"]
    assert float(page.evaluate("document.querySelector('#probability').dataset.value")) == expected["probability"]
    assert page.text("#probability") == f"{expected['probability']:.4f}"
    assert page.text("#words").startswith(f"{expected['words']} word")
    assert bool(page.text("#truncated")) == expected["truncated"]
    assert page.visible("#answer") and not page.visible("#error")


# ------------------------------------------------------------------ the page as a file and over HTTP

def demo_html() -> str:
    return files("edge_lstm_device.serving").joinpath("demo.html").read_text(encoding="utf-8")


def test_the_page_has_no_external_assets() -> None:
    html = demo_html()
    assert not re.findall(r"""\b(?:src|href|action)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", html, re.IGNORECASE)
    assert not re.findall(r"""url\(\s*["']?\s*(?:https?:)?//""", html, re.IGNORECASE)
    assert "@import" not in html
    assert "innerHTML" not in html and "outerHTML" not in html  # server data goes in as text only
    assert "connect-src 'self'" in html  # its Content-Security-Policy: only this server is called


def test_get_slash_serves_the_page_without_a_token(guarded: Served) -> None:
    status, headers, body = api(guarded, "GET", "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert body.decode("utf-8") == demo_html()
    assert api(guarded, "GET", "/v1/info")[0] == 401  # the API it calls still needs the token


# ------------------------------------------------------------------ in the browser

@pytest.mark.parametrize("text", REVIEWS, ids=["positive", "negative", "truncated"])
def test_the_page_shows_what_the_api_answers(browser: Browser, server: Served, text: str) -> None:
    status, answer = predict(server, text)
    assert status == 200
    page = open_page(browser, server)
    assert submit(page, text) == "done"
    assert_shows(page, answer)
    assert page.errors() == []


def test_a_review_without_words_shows_the_servers_error(browser: Browser, server: Served) -> None:
    status, answer = predict(server, "!!! ???")
    assert status == 422
    page = open_page(browser, server)
    assert submit(page, "!!! ???", keys=True) == "error"
    assert page.text("#error") == answer["error"]
    assert page.visible("#error") and not page.visible("#answer")
    assert page.errors() == []


def test_the_page_asks_for_the_token_and_then_works(browser: Browser, guarded: Served) -> None:
    page = open_page(browser, guarded)
    assert page.visible("#token") and page.text("#model") == "unknown"  # GET /v1/info answered 401
    assert submit(page, REVIEWS[0]) == "error"
    assert page.text("#error") == json.loads(api(guarded, "POST", "/v1/predict", {"texts": ["x"]})[2])["error"]

    page.type("#token", guarded.token or "")
    page.evaluate("document.querySelector('#review').value = ''")
    assert submit(page, REVIEWS[0]) == "done"
    assert_shows(page, predict(guarded, REVIEWS[0])[1])
    page.goto(guarded.url + "/")  # the token is kept for the tab (sessionStorage)
    page.wait_for("document.querySelector('#model').textContent !== '…'")
    assert page.visible("#token") and page.text("#model") == predict(guarded, REVIEWS[0])[1]["model"]
    assert page.errors() == []


STUB_ANSWER = {"model": "stub", "predictions": [{
    "label": "<b>drama</b>", "probability": 0.7, "confidence": 0.7, "words": 3, "truncated": False,
    "probabilities": {"comedy": 0.2, "<b>drama</b>": 0.7, "horror": 0.1}}]}


def test_a_multi_class_answer_shows_every_class_as_text(browser: Browser, server: Served) -> None:
    """The reference model is binary: the page's fetch is replaced by one that answers for three classes."""
    page = open_page(browser, server)
    page.evaluate(f"window.fetch = async () => new Response({json.dumps(json.dumps(STUB_ANSWER))},"
                  " {status: 200, headers: {'Content-Type': 'application/json'}}); true")
    assert submit(page, "a short film") == "done"
    assert page.text("#label") == "<b>drama</b>" and page.text("#probability") == "0.7000"
    assert page.evaluate("document.querySelectorAll('#result b').length") == 0  # server data is never markup
    rows = page.evaluate("[...document.querySelectorAll('#classes li')].map(li => li.innerText.split('\\n').join(' '))")
    assert rows == ["<b>drama</b> 70.0 %", "comedy 20.0 %", "horror 10.0 %"]
    assert not page.visible("#binary") and page.visible("#classes")
    assert page.errors() == []

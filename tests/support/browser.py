"""A headless Chromium driven over the DevTools protocol, standard library only.

``chromium --headless=new --remote-debugging-pipe`` reads DevTools commands from file descriptor 3
and writes answers and events to descriptor 4, each message one JSON object ended by a NUL byte, so
no websocket is needed. :class:`Browser` starts it on two pipes; :class:`Page` is one tab, used as a
user would: click at an element's position, type text, press keys, read the DOM.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["Browser", "BrowserError", "Page", "find_chromium"]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
COMMAND_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 10.0
# places the two pipe ends in the child as descriptors 3 and 4, then becomes the browser
_TRAMPOLINE = ("import os, sys; fds = [int(a) for a in sys.argv[1:3]]; os.dup2(fds[0], 3); os.dup2(fds[1], 4);"
               " [os.close(fd) for fd in fds]; os.execv(sys.argv[3], sys.argv[3:])")
CTRL = 2  # Input.dispatchKeyEvent modifier bits
META = 4


class BrowserError(RuntimeError):
    """The browser failed, answered a command with an error, or did not answer in time."""


def find_chromium() -> str | None:
    """The path of a Chromium (or Chrome) executable on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_args(profile: Path) -> list[str]:
    """Flags for a headless, quiet, throw-away browser; ``--no-sandbox`` only as root."""
    args = ["--headless=new", "--remote-debugging-pipe", "--disable-gpu", f"--user-data-dir={profile}",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage",
            "--mute-audio", "--window-size=1024,768"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to start its sandbox as root
    return args


def _high_fd(fd: int) -> int:
    """``fd`` moved to a number >= 10, so that placing two of them at 3 and 4 cannot clobber one."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return moved


class Browser:
    """One headless Chromium process and its DevTools pipe; use as a context manager."""

    def __init__(self, executable: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="edge-lstm-browser-"))
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []
        to_browser_r, self._to_browser = (_high_fd(fd) for fd in os.pipe())
        self._from_browser, from_browser_w = (_high_fd(fd) for fd in os.pipe())
        self._stderr_path = self._dir / "stderr.log"
        with self._stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _TRAMPOLINE, str(to_browser_r), str(from_browser_w),
                 executable, *chromium_args(self._dir / "profile"), "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                pass_fds=(to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stderr_tail(self, chars: int = 2000) -> str:
        """The end of what the browser wrote on stderr (for failure messages)."""
        return self._stderr_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = COMMAND_TIMEOUT_S) -> dict:
        """Send one command and return its result; events that arrive meanwhile go to ``events``."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode("utf-8") + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]
        deadline = time.monotonic() + timeout
        while True:
            answer = self._receive(deadline)
            if answer.get("id") != self._next_id:
                self.events.append(answer)
                continue
            if "error" in answer:
                raise BrowserError(f"{method}: {answer['error'].get('message')} {answer['error'].get('data', '')}")
            return answer.get("result", {})

    def _receive(self, deadline: float) -> dict:
        """The next message from the browser, waiting until ``deadline`` at most."""
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(remaining, 0))
            if not ready:
                raise BrowserError(f"no answer from the browser in time; stderr: {self.stderr_tail()}")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError(f"the browser closed its pipe (exit {self.proc.poll()}); stderr: {self.stderr_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def new_page(self) -> Page:
        """A new tab on about:blank, attached in flat session mode."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Runtime.enable")
        page.send("Log.enable")
        return page

    def close(self) -> None:
        """Ask the browser to quit, kill it if it does not, and remove its profile."""
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", timeout=CLOSE_TIMEOUT_S)
        except (BrowserError, OSError):
            pass  # it is killed below
        try:
            self.proc.wait(timeout=CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=CLOSE_TIMEOUT_S)
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        shutil.rmtree(self._dir, ignore_errors=True)


class Page:
    """One tab: navigate, evaluate JavaScript, and act on it with mouse and keyboard events."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser, self.session = browser, session

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def goto(self, url: str, timeout: float = COMMAND_TIMEOUT_S) -> None:
        """Load ``url`` and wait until the document has loaded."""
        answer = self.send("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise BrowserError(f"cannot load {url}: {answer['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout)

    def evaluate(self, expression: str) -> object:
        """The value of a JavaScript expression (awaited if it is a promise), as JSON."""
        answer = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise BrowserError(f"{expression}: {details.get('exception', {}).get('description') or details.get('text')}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = COMMAND_TIMEOUT_S) -> object:
        """Poll until ``expression`` is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"still false after {timeout:g} s: {expression}")
            time.sleep(0.05)

    def text(self, selector: str) -> str:
        """The text of the element ``selector`` (as ``textContent``)."""
        return str(self.evaluate(f"document.querySelector({json.dumps(selector)}).textContent"))

    def visible(self, selector: str) -> bool:
        """Whether ``selector`` matches an element that takes up space on the page."""
        return bool(self.evaluate(f"(e => !!e && e.getClientRects().length > 0)(document.querySelector({json.dumps(selector)}))"))

    def click(self, selector: str) -> None:
        """A left click in the middle of the element, as mouse events."""
        box = self.evaluate(
            f"(e => {{ e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();"
            f" return {{x: r.x + r.width / 2, y: r.y + r.height / 2, w: r.width}}; }})"
            f"(document.querySelector({json.dumps(selector)}))")
        if not isinstance(box, dict) or not box["w"]:
            raise BrowserError(f"{selector} is not visible")
        point = {"x": box["x"], "y": box["y"]}
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", **point})
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "button": "left", "clickCount": 1, **point})

    def type(self, selector: str, text: str) -> None:
        """Click into the element, then type ``text`` where the caret is (as an input method would)."""
        self.click(selector)
        self.send("Input.insertText", {"text": text})

    def press(self, key: str, code: int, modifiers: int = 0) -> None:
        """Press and release a key (e.g. ``press("Enter", 13, CTRL)``)."""
        common = {"key": key, "code": key, "windowsVirtualKeyCode": code, "modifiers": modifiers}
        self.send("Input.dispatchKeyEvent", {"type": "rawKeyDown", **common})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **common})

    def errors(self) -> list[str]:
        """JavaScript exceptions and console errors of this tab so far (failed HTTP answers excluded)."""
        found = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("exception", {}).get("description", "exception"))
            elif event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error" \
                    and params["entry"].get("source") != "network":
                found.append(params["entry"]["text"])
            elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        return found

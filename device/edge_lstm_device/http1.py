"""HTTP/1.1 request heads in, answers out: the wire format ``serve`` speaks, without I/O.

The rules are those of the standard library's ``http.server`` (request line, versions, 414/431
limits, ``Connection`` and ``Expect: 100-continue``), parsed in a few string operations instead of
the e-mail parser ``http.server`` uses for headers (which costs more than answering
``/v1/health``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

MAX_LINE = 65536  # the longest request line or header line (as http.server and http.client)
MAX_HEADERS = 100  # the most header lines (as http.client)
MAX_HEAD = MAX_LINE + 8192  # the longest request head kept in memory while it arrives
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})  # others: 501
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpError(Exception):
    """A request head that cannot be answered normally; answered with ``status`` and closed."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    """One request head."""

    method: str
    target: str  # as sent, e.g. "/v1/health?probe=1"
    line: str  # the request line, for the access log
    headers: dict[str, list[str]]  # lower-case name -> values in order
    keep_alive: bool
    expects_continue: bool = False

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    def header(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (lower case), else ``default``."""
        values = self.headers.get(name)
        return values[0] if values else default

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters (``text/plain`` when malformed, as e-mail's)."""
        value = self.header("content-type").split(";", 1)[0].strip().lower()
        return value if value.count("/") == 1 else "text/plain"


def head_end(buffer: bytes | bytearray) -> tuple[int, int]:
    """Where the head in ``buffer`` ends and its body starts, or ``(-1, -1)`` if it is incomplete.
    Lines may end in CRLF or LF; empty lines before the request line are skipped by the caller."""
    crlf, lf = buffer.find(b"\r\n\r\n"), buffer.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 4
    mixed = buffer.find(b"\n\r\n")
    return (mixed, mixed + 3) if mixed >= 0 else (-1, -1)


def incomplete_head_error(buffer: bytes | bytearray) -> HttpError | None:
    """The error for a head that has grown past the limits without ending, else None."""
    if len(buffer) <= MAX_HEAD:
        return None
    if buffer.find(b"\n") < 0 or buffer.find(b"\n") > MAX_LINE:
        return HttpError(HTTPStatus.REQUEST_URI_TOO_LONG, "the request line is too long")
    return HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "the request head is too large")


def parse_head(head: bytes) -> Request:
    """The request of ``head`` (its bytes up to the empty line), or :class:`HttpError`."""
    text = head.decode("iso-8859-1")
    line, _, rest = text.partition("\n")
    line = line.rstrip("\r")
    if len(line) > MAX_LINE:
        raise HttpError(HTTPStatus.REQUEST_URI_TOO_LONG, "the request line is too long")
    words = line.split()
    if len(words) != 3 and (len(words) != 2 or words[0] != "GET"):  # two words: an HTTP/0.9 GET, answered and closed
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad request line {line[:100]!r}")
    http_1_1 = len(words) == 3 and _version(words[2]) >= (1, 1)
    method, target = words[0], words[1]
    if target.startswith("//"):
        target = "/" + target.lstrip("/")
    headers = _headers(rest)
    connection = ",".join(headers.get("connection", [])).lower()
    keep_alive = len(words) == 3 and "close" not in connection and (http_1_1 or "keep-alive" in connection)
    request = Request(method, target, line, headers, keep_alive)
    request.expects_continue = http_1_1 and request.header("expect").lower() == "100-continue"
    if method not in METHODS:
        raise HttpError(HTTPStatus.NOT_IMPLEMENTED, f"unsupported method {method[:20]!r}")
    return request


def _version(word: str) -> tuple[int, int]:
    if not word.startswith("HTTP/"):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad request version {word[:20]!r}")
    major, dot, minor = word[5:].partition(".")
    if not (dot and major.isdigit() and minor.isdigit() and len(major) <= 10 and len(minor) <= 10):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad request version {word[:20]!r}")
    version = (int(major), int(minor))
    if version >= (2, 0):
        raise HttpError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"HTTP version {word[5:20]} is not supported")
    return version


def _headers(text: str) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    last: list[str] | None = None
    count = 0
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        if not line:
            continue
        if len(line) > MAX_LINE:
            raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "a header line is too long")
        if line[0] in " \t" and last is not None:  # a folded continuation line
            last[-1] = f"{last[-1]} {line.strip()}"
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed header line {line[:60]!r}")
        count += 1
        if count > MAX_HEADERS:
            raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {MAX_HEADERS} headers")
        last = headers.setdefault(name.lower(), [])
        last.append(value.strip())
    return headers


class _Date:
    """The ``Date`` header's value, formatted once per second."""

    second, value = -1, ""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, formatdate(second, usegmt=True)
        return cls.value


def answer_bytes(status: int, content_type: str, body: bytes, headers: dict[str, str], *, server: str,
                 close: bool, head_only: bool = False) -> bytes:
    """A whole answer: status line, headers, and the body (none for HEAD)."""
    phrase = HTTPStatus(status).phrase
    lines = [f"HTTP/1.1 {status} {phrase}", f"Server: {server}", f"Date: {_Date.now()}",
             f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body

"""HTTP/1.1 request heads in, answers out: the wire format ``serve`` speaks, without I/O.

A request head is framed and parsed by the rules of RFC 9112 as the ``h11`` library applies them,
so that ``serve`` and any proxy before it agree on where each message ends: the head ends at the
first empty line (``\\n\\r?\\n``), the request line is ``method SP target SP HTTP/d.d``, each field
is ``token ":" OWS value OWS``, and a body is framed by one ``Transfer-Encoding: chunked`` or by
``Content-Length`` values that all agree. ``device/tests/serving/test_http1_h11.py`` checks that the two
agree over hostile heads and fuzzed ones. Stricter than ``h11`` in two ways, both allowed by RFC
9112: control bytes in a field value and obsolete line folding are refused. Byte-level regular
expressions, not ``str.split``/``strip``: those treat ``\\xa0``, ``\\x85`` and ``\\x0b`` as
whitespace, which a proxy does not.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

MAX_LINE = 65536  # the longest request line or header line (as http.server and http.client)
MAX_HEADERS = 100  # the most header lines (as http.client)
MAX_HEAD = MAX_LINE + 8192  # the longest request head kept in memory while it arrives
MAX_LENGTH_DIGITS = 20  # a longer Content-Length is refused (as h11): int() of 4,301+ digits raises
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})  # others: 501
VERSIONS = frozenset({(1, 0), (1, 1)})  # others: 505
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

# On the head decoded as latin-1 (one character per byte), so \x80-\xff below are the bytes 0x80-0xff.
_TOKEN = r"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(r"(?P<method>" + _TOKEN + r") (?P<target>[\x21-\x7e]+) HTTP/(?P<major>[0-9])\.(?P<minor>[0-9])")
# token ":" OWS value OWS, where a value is visible characters and obs-text with spaces and tabs
# inside: together, any run of those and of SP and HTAB. No control byte (h11 allows some but NUL).
_FIELD_TEXT = _TOKEN + r":[\t\x20-\x7e\x80-\xff]*"
_FIELD = re.compile(_FIELD_TEXT)  # one field line: token ":" OWS value OWS
_FIELDS = re.compile(r"(?:" + _FIELD_TEXT + r"\r?\n)*" + _FIELD_TEXT + r"\r?")  # a whole block of well-formed fields
_HEAD_END = re.compile(rb"\n\r?\n")
_DIGITS = re.compile(r"[0-9]+")


class HttpError(Exception):
    """A request head that cannot be answered normally; answered with ``status`` and closed."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    """One request head, and how its body is framed."""

    method: str
    target: str  # as sent, e.g. "/v1/health?probe=1"
    line: str  # the request line, for the access log
    headers: dict[str, list[str]]  # lower-case name -> values in order
    keep_alive: bool
    version: tuple[int, int] = (1, 1)
    content_length: int = 0  # the body's size (0 when chunked)
    chunked: bool = False  # Transfer-Encoding: chunked (serve does not read such bodies)
    expects_continue: bool = False

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def has_body(self) -> bool:
        return self.chunked or self.content_length > 0

    def header(self, name: str, default: str = "") -> str:
        """The first value of header ``name`` (lower case), else ``default``."""
        values = self.headers.get(name)
        return values[0] if values else default

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters (``text/plain`` when malformed, as e-mail's)."""
        value = self.header("content-type").split(";", 1)[0].strip(" \t").lower()
        return value if value.count("/") == 1 else "text/plain"


def next_request(buffer: bytearray, eof: bool = False) -> Request | None:
    """The next request head of ``buffer``, removed from it (its body stays); None until it has all
    arrived. Empty lines before a request line are dropped (RFC 9112 2.2). Raises :class:`HttpError`
    for a head that cannot be framed, leaving ``buffer`` as it was."""
    skip = 0
    while buffer[skip : skip + 2] == b"\r\n" or buffer[skip : skip + 1] == b"\n":
        skip += 2 if buffer[skip] == 13 else 1
    del buffer[:skip]
    end = _HEAD_END.search(buffer)
    if end is None:
        _check_incomplete(buffer, eof)
        return None
    request = parse_head(bytes(buffer[: end.start()]))
    del buffer[: end.end()]
    return request


def _check_incomplete(buffer: bytearray, eof: bool) -> None:
    """Refuse a head that grew past the limits, or that the client ended without its empty line."""
    if len(buffer) > MAX_HEAD:
        newline = buffer.find(b"\n")
        if newline < 0 or newline > MAX_LINE:
            raise HttpError(HTTPStatus.REQUEST_URI_TOO_LONG, "the request line is too long")
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "the request head is too large")
    if eof and buffer:
        raise HttpError(HTTPStatus.BAD_REQUEST, "the connection ended inside a request head")


def parse_head(head: bytes) -> Request:
    """The request of ``head`` (its bytes up to the empty line), or :class:`HttpError`."""
    text = head.decode("iso-8859-1")
    line, _, block = text.partition("\n")
    line = line[:-1] if line.endswith("\r") else line
    if len(line) > MAX_LINE:
        raise HttpError(HTTPStatus.REQUEST_URI_TOO_LONG, "the request line is too long")
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"bad request line {line[:100]!r}")
    version = (int(match["major"]), int(match["minor"]))
    target = match["target"]
    if target.startswith("//"):
        target = "/" + target.lstrip("/")
    headers = _headers(block) if block else {}
    request = Request(match["method"], target, line, headers, _keep_alive(version, headers), version)
    _frame(request)
    request.expects_continue = "expect" in headers and version >= (1, 1) and "100-continue" in _comma_values(headers, "expect")
    return request


def _headers(block: str) -> dict[str, list[str]]:
    """The header lines of ``block`` (each ending in LF or CRLF but the last), by lower-case name."""
    if block.count("\n") >= MAX_HEADERS:
        raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {MAX_HEADERS} headers")
    if len(block) > MAX_LINE or _FIELDS.fullmatch(block) is None:  # (a short block has no line too long)
        _refuse_header_lines(block)
    headers: dict[str, list[str]] = {}
    for line in block.split("\n"):  # well-formed: one colon after a token, then OWS, value, OWS and CR
        name, _, value = line.partition(":")
        headers.setdefault(name.lower(), []).append(value.strip(" \t\r"))
    return headers


def _refuse_header_lines(block: str) -> None:
    """Raise the error of the first header line that is too long or malformed (if any)."""
    for line in block.split("\n"):
        line = line[:-1] if line.endswith("\r") else line
        if len(line) > MAX_LINE:
            raise HttpError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "a header line is too long")
        if line[:1] in (" ", "\t"):  # RFC 9112 5.2: a server may refuse obsolete folding; a proxy may read it otherwise
            raise HttpError(HTTPStatus.BAD_REQUEST, "obsolete line folding in the request head")
        if _FIELD.fullmatch(line) is None:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed header line {line[:60]!r}")


def _frame(request: Request) -> None:
    """Set the body's framing from the headers, refusing heads a proxy could frame otherwise."""
    headers = request.headers
    if len(headers.get("host", [])) > 1 or (request.version == (1, 1) and "host" not in headers):
        raise HttpError(HTTPStatus.BAD_REQUEST, "an HTTP/1.1 request needs exactly one Host header")
    encodings = headers.get("transfer-encoding")
    if encodings is not None:
        if len(encodings) > 1 or encodings[0].lower() != "chunked":
            raise HttpError(HTTPStatus.NOT_IMPLEMENTED, "only Transfer-Encoding: chunked is known")
        request.chunked = True  # it overrides any Content-Length (RFC 9112 6.3)
    if "content-length" not in headers:
        return
    length = _one_length(headers["content-length"])
    if not _DIGITS.fullmatch(length) or len(length) > MAX_LENGTH_DIGITS:
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length header")
    if not request.chunked:
        request.content_length = int(length)


def _one_length(values: list[str]) -> str:
    """The one value of the ``Content-Length`` headers (several, or comma lists, must all agree)."""
    if len(values) == 1 and "," not in values[0]:  # the usual case, without building a set
        return values[0]
    lengths = {value.strip(" \t") for raw in values for value in raw.split(",")}
    if len(lengths) > 1:
        raise HttpError(HTTPStatus.BAD_REQUEST, "conflicting Content-Length values")
    return lengths.pop()


def _keep_alive(version: tuple[int, int], headers: dict[str, list[str]]) -> bool:
    if "connection" not in headers:
        return version >= (1, 1)
    connection = _comma_values(headers, "connection")
    return "close" not in connection and (version >= (1, 1) or "keep-alive" in connection)


def _comma_values(headers: dict[str, list[str]], name: str) -> set[str]:
    return {value.strip(" \t").lower() for raw in headers.get(name, []) for value in raw.split(",")}


def check_supported(request: Request) -> None:
    """Refuse a well-framed request this server does not speak: an unknown method (501) or an HTTP
    version other than 1.0 and 1.1 (505)."""
    if request.version not in VERSIONS:
        raise HttpError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"HTTP/{request.version[0]}.{request.version[1]} is not supported")
    if request.method not in METHODS:
        raise HttpError(HTTPStatus.NOT_IMPLEMENTED, f"unsupported method {request.method[:20]!r}")


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

"""Which ``Host`` headers a server without a token answers: a guard against DNS rebinding.

A web page on an attacker's site can make a visitor's browser call a server on 127.0.0.1 or on the
visitor's network by pointing the attacker's own name at that address ("DNS rebinding"); the
browser then sends the attacker's name in ``Host``. A server that answers only the names it is
known by (and IP addresses, which no rebinding can produce) cannot be reached that way. A bearer
token defeats the attack on its own (the page cannot know it), so ``serve`` checks ``Host`` only
when it has no token.
"""

from __future__ import annotations

import functools
import ipaddress
import socket

ANY = "*"


def default_names(bound: str) -> frozenset[str]:
    """The names a server bound to ``bound`` is known by: ``localhost``, the machine's name (and its
    mDNS ``.local`` name, as a Pi is usually called), and ``bound`` itself when it is a name."""
    machine = socket.gethostname().lower()
    names = {"localhost", machine, f"{machine.split('.')[0]}.local"}
    if not _is_ip(bound):
        names.add(bound.lower())
    return frozenset(names)


def parse_allowed(option: str | None, bound: str) -> frozenset[str] | None:
    """The names ``--allowed-hosts`` allows (comma-separated, added to :func:`default_names`);
    None when any ``Host`` is answered (``*``)."""
    extra = {name.strip().lower().rstrip(".") for name in (option or "").split(",") if name.strip()}
    if ANY in extra:
        return None
    return default_names(bound) | extra


def host_allowed(host_header: str, allowed: frozenset[str] | None) -> bool:
    """Whether a request whose ``Host`` is ``host_header`` ("" when it has none: HTTP/1.0) is answered."""
    return allowed is None or not host_header or _known(host_header, allowed)


@functools.lru_cache(maxsize=1024)  # clients send the same few values: 5 us a request uncached (ipaddress)
def _known(host_header: str, allowed: frozenset[str]) -> bool:
    name = _without_port(host_header.strip().lower()).rstrip(".")
    return _is_ip(name) or name in allowed


def _without_port(host: str) -> str:
    if host.startswith("["):  # [v6]:port
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True

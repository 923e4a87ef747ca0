"""The dashboard server's checks of what a client sends (issue 22, item 9), as plain functions of the
request's headers: what to refuse, with which status and message. cluster/ui/dashboard.py applies them.

Standard library only, like the server.
"""

from __future__ import annotations

import re
from email.message import Message
from http import HTTPStatus
from typing import Any, Mapping
from urllib.parse import urlsplit

MAX_BODY = 4096  # the play page's requests are a few dozen bytes
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_LENGTH = re.compile(r"[0-9]{1,9}")


class QueryError(ValueError):
    """A request the data source refuses (a bad parameter, an unknown learner): answered with
    `status` (a 4xx) and {"error": message, **extra}, where a failing source is a 503."""

    def __init__(self, message: str, status: int = 400, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.extra = status, dict(extra or {})


def query_int(query: Mapping[str, str], name: str, default: int, high: int, low: int = 0) -> int:
    """Query parameter `name` as a whole number from `low` to `high`; `default` when absent or
    empty; QueryError (400) saying what is allowed otherwise."""
    raw = query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise QueryError(f"query parameter {name}={raw!r} must be a whole number from {low} to {high}")
    return value


def body_refusal(headers: Message) -> tuple[HTTPStatus, str] | None:
    """Why a JSON body announced by `headers` is refused, or None to read Content-Length bytes of it.
    One plain Content-Length of at most MAX_BODY (no chunks: the read must be bounded before it
    starts) and the JSON content type (a cross-site form can send text/plain or form data without
    asking, not application/json)."""
    lengths = headers.get_all("Content-Length") or []
    if headers.get("Transfer-Encoding") or not lengths:
        return HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length (chunked bodies are not accepted)"
    if len(set(lengths)) > 1 or not _LENGTH.fullmatch(lengths[0].strip()):
        return HTTPStatus.BAD_REQUEST, f"Content-Length must be one whole number of bytes, not {', '.join(lengths)!r}"
    if int(lengths[0]) > MAX_BODY:
        return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY} bytes"
    if headers.get_content_type() != "application/json":
        return HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the play API takes JSON: send Content-Type: application/json"
    return None


def host_allowed(given: str, allowed: set[str] | None) -> bool:
    """Whether a request whose Host header is `given` may be answered: any, when `allowed` is None
    (off loopback, where the token guards); else only a name in `allowed`, with or without a port. A
    page on attacker.example whose name was rebound to 127.0.0.1 sends Host: attacker.example."""
    if allowed is None:
        return True
    try:
        url = urlsplit(f"//{given}")
        name = url.hostname or ""
        url.port  # raises on a port that is not a number
    except ValueError:
        return False
    return name in allowed


def refuse_busy(sock: Any) -> None:
    """Answer 503 on a connection over the cap without reading it (on the accepting thread: the
    few bytes fit the socket's send buffer)."""
    body = b'{"error": "the dashboard is serving as many connections as it allows; retry shortly"}'
    head = f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    try:
        sock.settimeout(1.0)
        sock.sendall(head.encode() + body)
        sock.setblocking(False)
        sock.recv(MAX_BODY)  # what already arrived: closing on unread bytes would reset the answer away
    except OSError:
        pass  # nothing arrived yet, or the client is gone: it is dropped either way

"""Live dashboard: a tiny HTTP server for the page in ``cluster/ui/web``.

The server knows nothing about Redis, Ray or the league. It serves its
static files and one JSON endpoint whose body is whatever ``data_fn(query)``
returns for the request's query parameters (the shape and the parameters are
documented in ``cluster/ui/web/app.js``). Keeping the data
source a plain callable lets the CLI plug in the real stores and lets tests
plug in a dict. The play page's API (/api/play/...) is forwarded to a
``PlayRoom`` (cluster/ui/play.py) when one is given, and the replay page's
(/api/replays...) to a ``ReplayViewer`` (cluster/ui/replay.py).

Off loopback the page needs a secret: a server bound to any other address is given a token and
answers 401 to every request without it. The browser brings it once in the URL (``/?token=...``,
the address ``selfplay dashboard`` prints) and keeps it in an HttpOnly cookie; scripts may send
``Authorization: Bearer TOKEN``. On loopback the page stays open, as only local users can reach it,
unless a token is given anyway. The token travels as plain HTTP: across networks you do not trust,
reach the dashboard through an SSH tunnel or a TLS proxy.

Hostile input (issue 22, item 9): at most `max_connections` connections are served at once (the next
is answered 503 at once), each with a socket timeout of `request_timeout_s` so a slow client frees
its slot; a POST needs a Content-Length of at most MAX_BODY (411/400/413 otherwise) and the JSON
content type (415 otherwise: a cross-site form cannot send it without CORS' preflight, which this
server never grants); on loopback, only requests whose Host names the loopback are answered (403
otherwise), so a web page whose DNS name is rebound to 127.0.0.1 cannot read the dashboard.

Standard library only, so the dashboard runs anywhere the package imports.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import secrets
import threading
from http.cookies import CookieError, SimpleCookie
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs, parse_qsl, urlsplit

from cluster.ui.guards import LOOPBACK_NAMES, MAX_BODY, QueryError, body_refusal, host_allowed, refuse_busy

WEB_DIR = Path(__file__).parent / "web"

# Route -> (file in WEB_DIR, content type). Anything not listed is a 404, so
# the server can never be talked into reading other files from disk.
STATIC_ROUTES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/charts.js": ("charts.js", "text/javascript; charset=utf-8"),
    "/learner.js": ("learner.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/play": ("play.html", "text/html; charset=utf-8"),
    "/play.js": ("play.js", "text/javascript; charset=utf-8"),
    "/board.js": ("board.js", "text/javascript; charset=utf-8"),
    "/board.css": ("board.css", "text/css; charset=utf-8"),
    "/replay": ("replay.html", "text/html; charset=utf-8"),
    "/replay.js": ("replay.js", "text/javascript; charset=utf-8"),
}
PLAY_API = "/api/play/"  # answered by cluster/ui/play.py's play_api
REPLAY_API = "/api/replays"  # answered by cluster/ui/replay.py's replay_api
MAX_CONNECTIONS = 32  # a browser opens up to 6 per host; the rest is room for a few tabs and scripts
REQUEST_TIMEOUT_S = 10.0  # a request's bytes must arrive (and its answer be read) within this

DataFn = Callable[[Mapping[str, str]], dict[str, Any]]
"""Query parameters (the last value of each) -> the /api/state document."""

COOKIE = "selfplay_dashboard_token"
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,}")


class DashboardAuthError(ValueError):
    """A dashboard off loopback without a token; the message says what to do."""


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name, or "" (every interface): others may reach it


def new_token() -> str:
    return secrets.token_urlsafe(24)


class DashboardServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that answers ``/api/state`` from ``data_fn``.

    ``port`` is the bound port (useful when constructed with port 0) and
    ``url`` the address to open in a browser.
    """

    daemon_threads = True  # a hung browser connection must not block exit

    def __init__(
        self, data_fn: DataFn, host: str = "127.0.0.1", port: int = 8765, token: str = "", play: Any = None, replays: Any = None,
        max_connections: int = MAX_CONNECTIONS, request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        """`token`: the secret every request must carry; required unless `host` is loopback. `play`: a
        cluster.ui.play.PlayRoom, or None: the play page then says how to get one. `max_connections`
        served at once, each given `request_timeout_s` (see the module's docstring)."""
        if not token and not is_loopback(host):
            raise DashboardAuthError(
                f"a dashboard on {host or 'every interface'} is reachable from other machines: give it a token "
                "(selfplay dashboard generates one unless you pass --token), or serve it on 127.0.0.1"
            )
        self.check_token(token)
        self.data_fn, self.token, self.play = data_fn, token, play
        self.replays = replays  # a cluster.ui.replay.ReplayViewer, or None: the replay page says how to get one
        self.request_timeout_s = request_timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        # On loopback, the Host names a request may carry (DNS rebinding); None: any (a token guards it).
        self.allowed_hosts = {*LOOPBACK_NAMES, host.lower()} if is_loopback(host) else None
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            refuse_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()  # the thread could not start, so it will not release its slot
            raise
        # Not BaseException: a Ctrl-C lands here while thread.start() waits for the thread that
        # has started (and will release its slot); releasing it again raised ValueError, which
        # socketserver logged and served on, so that Ctrl-C never stopped the server.

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that timed out or hung up: nothing to report
        super().handle_error(request, client_address)

    @staticmethod
    def check_token(token: str) -> None:
        if token and not _TOKEN.fullmatch(token):
            raise DashboardAuthError("a dashboard token is at least 16 characters of A-Z a-z 0-9 . _ ~ - (it goes into URLs and a cookie)")

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = self.server_address[0]
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer

    def setup(self) -> None:
        self.timeout = self.server.request_timeout_s  # StreamRequestHandler sets it on the socket
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path, _, query = self.path.split("#", 1)[0].partition("?")
        if not self._host_allowed() or not self._authorised(query):
            return
        if path == "/api/state":
            self._send_state()
        elif path.startswith(PLAY_API):
            self._send_play("GET", path, b"")
        elif path == REPLAY_API or path.startswith(REPLAY_API + "/"):
            from cluster.ui.replay import replay_api

            status, payload = replay_api(self.server.replays, self.path)
            self._send_json(HTTPStatus(status), payload)
        elif path in STATIC_ROUTES:
            name, content_type = STATIC_ROUTES[path]
            self._send(HTTPStatus.OK, (WEB_DIR / name).read_bytes(), content_type)
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"not found: {path}"})

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        path, _, query = self.path.split("#", 1)[0].partition("?")
        if not self._host_allowed() or not self._authorised(query):
            return
        if not path.startswith(PLAY_API):
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"not found: POST {path}"})
            return
        body = self._json_body()
        if body is not None:
            self._send_play("POST", path, body)

    def _json_body(self) -> bytes | None:
        """The request's body, at most MAX_BODY bytes of JSON; None when refused (answered)."""
        refuse = body_refusal(self.headers)
        if refuse is not None:
            self.close_connection = True  # the unread body must not be taken for a next request
            self._send_json(refuse[0], {"error": refuse[1]})
            return None
        n = int(self.headers["Content-Length"])
        body = self.rfile.read(n)  # bounded by n, and by the socket timeout for a client that stalls
        if len(body) < n:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": f"the body ended after {len(body)} of its {n} bytes"})
            return None
        return body

    def _send_play(self, method: str, path: str, body: bytes) -> None:
        from cluster.ui.play import play_api

        status, payload = play_api(self.server.play, method, path, body, dict(parse_qsl(urlsplit(self.path).query)))
        self._send_json(HTTPStatus(status), payload)

    def _host_allowed(self) -> bool:
        """On loopback, True if the Host header names the loopback; else it has been answered 403."""
        given = self.headers.get("Host", "")
        if host_allowed(given, self.server.allowed_hosts):
            return True
        self.close_connection = True
        self._send_json(
            HTTPStatus.FORBIDDEN,
            {"error": f"Host {given!r} is not this dashboard's address: open {self.server.url} "
             "(a dashboard on loopback answers only requests addressed to localhost, 127.0.0.1 or [::1])"},
        )
        return False

    def _authorised(self, query: str) -> bool:
        """True if the request may go on; else it has been answered with 401."""
        self._cookie = ""
        given = self._token_given(query)
        if self.server.token and not hmac.compare_digest(given.encode(), self.server.token.encode()):
            self._send_json(
                HTTPStatus.UNAUTHORIZED,
                {"error": "this dashboard needs its token: open the address `selfplay dashboard` printed (.../?token=...), "
                 "or send the header Authorization: Bearer TOKEN"},
                {"WWW-Authenticate": 'Bearer realm="selfplay dashboard"'},
            )
            return False
        self._cookie = self.server.token and given and f"{COOKIE}={given}; HttpOnly; SameSite=Strict; Path=/"
        return True

    def _token_given(self, query: str) -> str:
        """The token in the URL, the Authorization header or the cookie ('' if none)."""
        in_url = parse_qs(query).get("token")
        if in_url:
            return in_url[-1]
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[len("Bearer "):].strip()
        try:
            jar = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return ""
        return jar[COOKIE].value if COOKIE in jar else ""

    def _send_state(self) -> None:
        # Any failure of the data source (Redis down, a half-written key) is
        # reported to the page as 503 so it can show the message and retry,
        # instead of the browser seeing a dropped connection.
        try:
            query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            query.pop("token", None)  # the dashboard's secret, not a view parameter
            state = self.server.data_fn(query)
        except QueryError as exc:
            self._send_json(HTTPStatus(exc.status), {"error": str(exc), **exc.extra})
            return
        except Exception as exc:  # noqa: BLE001 -- forwarded to the page, not swallowed
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": _describe(exc)})
            return
        try:
            # NaN/inf are not JSON; browsers would reject the whole body.
            body = json.dumps(state, allow_nan=False)
        except (TypeError, ValueError) as exc:
            message = f"dashboard state is not valid JSON: {_describe(exc)}"
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": message})
            return
        self._send(HTTPStatus.OK, body.encode(), "application/json")

    def _send_json(self, status: HTTPStatus, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if getattr(self, "_cookie", ""):  # the browser keeps the token for the page's own requests
            self.send_header("Set-Cookie", self._cookie)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # A page polling every 2 s would flood the terminal; errors still
        # surface through the 503 body and the page.
        pass


def _describe(exc: Exception) -> str:
    # The message alone reads best ("Redis unreachable: ..."); the type is kept
    # where the message is empty or meaningless on its own (KeyError('elo')).
    text = str(exc)
    if not text or isinstance(exc, LookupError):
        return f"{type(exc).__name__}: {text}".rstrip(": ")
    return text


def serve(
    data_fn: DataFn, host: str = "127.0.0.1", port: int = 8765, token: str = "", play: Any = None, replays: Any = None, **limits: Any
) -> DashboardServer:
    """Start the dashboard in a background thread and return the server.

    ``port=0`` picks a free port (read it back from ``server.port``). Stop it
    with ``server.shutdown(); server.server_close()``. ``limits``: DashboardServer's
    max_connections and request_timeout_s.
    """
    server = DashboardServer(data_fn, host, port, token, play, replays, **limits)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    return server


def run_dashboard(
    data_fn: DataFn, host: str = "127.0.0.1", port: int = 8765, token: str = "", play: Any = None, replays: Any = None, view: str = ""
) -> None:
    """Serve the dashboard (and, given a PlayRoom, its play page; given a ReplayViewer, its replay page)
    in the foreground until Ctrl-C. Off loopback without a token, one is
    generated; the printed address carries it, and `view` as its #fragment (e.g. learner=agent)."""
    if not token and not is_loopback(host):
        token = new_token()
    server = DashboardServer(data_fn, host, port, token, play, replays)
    note = "  (open it with the token; Authorization: Bearer TOKEN for scripts)" if token else ""
    print(f"dashboard: {server.url}{'#' + view if view else ''}{note}  (Ctrl-C to stop)", flush=True)
    serve_until_interrupted(server)


def serve_until_interrupted(server: DashboardServer) -> None:
    """Serve in the foreground until Ctrl-C, then close the socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

"""Live dashboard: a tiny HTTP server for the page in ``cluster/ui/web``.

The server knows nothing about Redis, Ray or the league. It serves its
static files and one JSON endpoint whose body is whatever ``data_fn(query)``
returns for the request's query parameters (the shape and the parameters are
documented in ``cluster/ui/web/app.js``). Keeping the data
source a plain callable lets the CLI plug in the real stores and lets tests
plug in a dict. The play page's API (/api/play/...) is forwarded to a
``PlayRoom`` (cluster/ui/play.py) when one is given.

Standard library only, so the dashboard runs anywhere the package imports.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, urlsplit

WEB_DIR = Path(__file__).parent / "web"

# Route -> (file in WEB_DIR, content type). Anything not listed is a 404, so
# the server can never be talked into reading other files from disk.
STATIC_ROUTES: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/charts.js": ("charts.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/play": ("play.html", "text/html; charset=utf-8"),
    "/play.js": ("play.js", "text/javascript; charset=utf-8"),
}
PLAY_API = "/api/play/"  # answered by cluster/ui/play.py's play_api
MAX_BODY = 4096  # the play page's requests are a few dozen bytes

DataFn = Callable[[Mapping[str, str]], dict[str, Any]]
"""Query parameters (the last value of each) -> the /api/state document."""


class DashboardServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that answers ``/api/state`` from ``data_fn``.

    ``port`` is the bound port (useful when constructed with port 0) and
    ``url`` the address to open in a browser.
    """

    daemon_threads = True  # a hung browser connection must not block exit

    def __init__(self, data_fn: DataFn, host: str = "127.0.0.1", port: int = 8765, play: Any = None) -> None:
        self.data_fn = data_fn
        self.play = play  # a cluster.ui.play.PlayRoom, or None: the play page then says how to get one
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = self.server_address[0]
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/api/state":
            self._send_state()
        elif path.startswith(PLAY_API):
            self._send_play("GET", path, b"")
        elif path in STATIC_ROUTES:
            name, content_type = STATIC_ROUTES[path]
            self._send(HTTPStatus.OK, (WEB_DIR / name).read_bytes(), content_type)
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"not found: {path}"})

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        if not path.startswith(PLAY_API):
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"not found: POST {path}"})
        elif length > MAX_BODY:
            self._send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"request body over {MAX_BODY} bytes"})
        else:
            self._send_play("POST", path, self.rfile.read(length))

    def _send_play(self, method: str, path: str, body: bytes) -> None:
        from cluster.ui.play import play_api

        status, payload = play_api(self.server.play, method, path, body)
        self._send_json(HTTPStatus(status), payload)

    def _send_state(self) -> None:
        # Any failure of the data source (Redis down, a half-written key) is
        # reported to the page as 503 so it can show the message and retry,
        # instead of the browser seeing a dropped connection.
        try:
            query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            state = self.server.data_fn(query)
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

    def _send_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
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


def serve(data_fn: DataFn, host: str = "127.0.0.1", port: int = 8765, play: Any = None) -> DashboardServer:
    """Start the dashboard in a background thread and return the server.

    ``port=0`` picks a free port (read it back from ``server.port``). Stop it
    with ``server.shutdown(); server.server_close()``.
    """
    server = DashboardServer(data_fn, host, port, play)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    return server


def run_dashboard(data_fn: DataFn, host: str = "127.0.0.1", port: int = 8765, play: Any = None) -> None:
    """Serve the dashboard (and, given a PlayRoom, its play page) in the foreground until Ctrl-C."""
    server = DashboardServer(data_fn, host, port, play)
    print(f"dashboard: {server.url}  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

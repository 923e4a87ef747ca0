"""The dashboard server against hostile or broken clients (issue 22, item 9): real HTTP over raw
sockets on loopback, since a client library would not send these requests. Each test fails on the
server as it was before the fix (noted per test)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from cluster.ui.dashboard import serve
from cluster.ui.guards import MAX_BODY
from cluster.ui.play import FixedPolicies, PlayRoom
from cluster.ui.replay import PAIRS_MAX


class _Source:
    """A play-page source with many players and a game the browser cannot draw (so no policy loads)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def game(self) -> str:
        return "tictactoe_v3"

    def players(self) -> list[str]:
        return ["latest", *(f"v{v:06d}" for v in range(self.n, 0, -1))]

    def load(self, player: str):
        raise LookupError(f"no player {player!r} here")


@pytest.fixture
def start():
    servers = []

    def start_server(**kw):
        server = serve(lambda query: {"ok": True}, port=0, **kw)
        servers.append(server)
        return server

    yield start_server
    for s in servers:
        s.shutdown()
        s.server_close()


def raw(port: int, request: bytes, timeout: float = 10.0, close_write: bool = False) -> tuple[int, dict]:
    """Send `request` as is; (status, JSON body) of the answer, (0, {}) if the server closed without one."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    if not data:
        return 0, {}
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body) if body else {}


def post(port: int, headers: str, body: bytes = b"", path: str = "/api/play/new", **kw) -> tuple[int, dict]:
    return raw(port, f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}\r\n".encode() + body, **kw)


JSON = "Content-Type: application/json\r\n"


# ---- connections: a cap and a timeout ----------------------------------------------------------------


def test_slow_clients_cannot_pin_the_server(start):
    """Before: a thread per connection, no cap, no timeout; the silent connections stayed open for
    good and the extra one was served (200), not refused."""
    server = start(max_connections=4, request_timeout_s=1.0)
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
    try:
        time.sleep(0.2)  # let the server accept them all
        t0 = time.monotonic()
        status, body = raw(server.port, b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert status == 503 and "retry" in body["error"] and time.monotonic() - t0 < 2.0
        for sock in silent:  # each silent connection is closed once its timeout passes
            assert sock.recv(1024) == b""
        assert time.monotonic() - t0 < 5.0
        assert raw(server.port, b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")[0] == 200  # the slots are free again
    finally:
        for sock in silent:
            sock.close()


# ---- request bodies: their length and their type --------------------------------------------------------


@pytest.mark.parametrize("length,status", [("-1", 400), ("abc", 400), ("1e3", 400), ("+5", 400), (str(MAX_BODY + 1), 413), ("99999999999999", 400)])
def test_a_bad_content_length_is_refused(start, length, status):
    """Before: -1 read to EOF (the connection hung while the client kept it open), a non-number raised
    in the handler (the connection dropped with no answer)."""
    server = start(request_timeout_s=5.0)
    got, body = post(server.port, f"{JSON}Content-Length: {length}\r\n", b'{"player": "p"}', timeout=4.0)
    assert got == status and ("Content-Length" in body["error"] or f"over {MAX_BODY} bytes" in body["error"])


def test_a_body_needs_a_content_length(start):
    server = start()
    assert post(server.port, JSON, close_write=True)[0] == 411
    assert post(server.port, f"{JSON}Transfer-Encoding: chunked\r\n", b"0\r\n\r\n")[0] == 411
    assert post(server.port, f"{JSON}Content-Length: 2\r\nContent-Length: 5\r\n", b"{}")[0] == 400


def test_a_body_shorter_than_its_length_times_out_into_an_error(start):
    server = start(request_timeout_s=1.0)
    t0 = time.monotonic()
    status, _ = post(server.port, f"{JSON}Content-Length: 100\r\n", b'{"pla', timeout=5.0)
    assert status in (0, 400) and time.monotonic() - t0 < 4.0  # the stalled read ends at the timeout


def test_the_play_api_takes_only_json(start):
    """Before: any Content-Type was parsed as JSON, so a cross-site form (text/plain) could start games."""
    server = start(play=PlayRoom(FixedPolicies("tictactoe_v3", {})))
    body = b'{"player": "p"}'
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        header = f"Content-Type: {ctype}\r\n" if ctype else ""
        status, answer = post(server.port, f"{header}Content-Length: {len(body)}\r\n", body)
        assert status == 415 and "application/json" in answer["error"], ctype
    status, answer = post(server.port, f"Content-Type: application/json; charset=utf-8\r\nContent-Length: {len(body)}\r\n", body)
    assert status == 404 and "no player 'p'" in answer["error"]  # through to the play room


# ---- DNS rebinding: the Host on loopback ---------------------------------------------------------------


def test_a_loopback_dashboard_answers_only_loopback_host_names(start):
    """Before: any Host was answered, so a page at attacker.example rebound to 127.0.0.1 could read it."""
    server = start()
    port = server.port
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.nip.io", "localhost.attacker.example", "", "127.0.0.1:port"):
        header = f"Host: {host}\r\n" if host else ""
        status, body = raw(port, f"GET /api/state HTTP/1.1\r\n{header}\r\n".encode())
        assert status == 403 and "not this dashboard's address" in body["error"], host
    status, _ = raw(port, f"POST /api/play/new HTTP/1.1\r\nHost: evil.example\r\n{JSON}Content-Length: 2\r\n\r\n{{}}".encode())
    assert status == 403
    for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", "127.0.0.1", f"[::1]:{port}", "LOCALHOST"):
        assert raw(port, f"GET /api/state HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()) == (200, {"ok": True}), host


def test_off_loopback_the_token_guards_and_any_host_is_answered(start):
    token = "s3cret-token-for-tests_0123"
    server = start(host="0.0.0.0", token=token)
    request = f"GET /api/state HTTP/1.1\r\nHost: dashboard.example:8765\r\nAuthorization: Bearer {token}\r\n\r\n"
    assert raw(server.port, request.encode()) == (200, {"ok": True})


# ---- bounded lists ------------------------------------------------------------------------------------


def test_play_options_are_a_bounded_page(start):
    """Before: every snapshot of the league in one answer."""
    server = start(play=PlayRoom(_Source(5000)))
    get = lambda q: raw(server.port, f"GET /api/play/options{q} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())  # noqa: E731
    status, body = get("")
    assert status == 200 and len(body["players"]) == 200 and body["total"] == 5001 and body["truncated"]
    assert body["players"][:2] == ["latest", "v005000"]
    assert len(get("?limit=1000")[1]["players"]) == 1000
    for bad in ("?limit=1001", "?limit=0", "?limit=all"):
        status, body = get(bad)
        assert status == 400 and "from 1 to 1000" in body["error"], bad


def test_replay_pairs_are_a_bounded_page(start, redis_client, run_keys):
    """Before: every (player, reference) pair with replays in one answer."""
    from cluster.stores.replay_store import ReplayStore
    from cluster.ui.replay import ReplayViewer

    pairs = [f"v{v:06d}\trandom" for v in range(1500)]
    redis_client.sadd(run_keys.replay_pairs, *pairs)
    for member in pairs:
        player, ref = member.split("\t")
        redis_client.rpush(run_keys.replays(player, ref), b"x")  # counted only: never decoded by the list
    server = start(replays=ReplayViewer(ReplayStore(redis_client, run_keys)))
    get = lambda q: raw(server.port, f"GET /api/replays{q} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())  # noqa: E731
    status, body = get("")
    assert status == 200 and len(body["pairs"]) == 200 and body["total"] == 1500 and body["truncated"]
    status, body = get(f"?limit={PAIRS_MAX}&offset=1000")
    assert len(body["pairs"]) == 500 and body["pairs"][0]["player"] == "v001000" and not body["truncated"]
    status, body = get(f"?limit={PAIRS_MAX + 1}")
    assert status == 400 and f"from 1 to {PAIRS_MAX}" in body["error"]


def test_a_pairs_games_are_its_newest_numbered_as_kept(redis_client, run_keys):
    """The games of a pair: the newest `limit`, each keeping its index among every kept game."""
    from cluster.ui.replay import ReplayViewer, replay_api
    from test_replays import make_evaluator

    ev, _, replays = make_evaluator(redis_client, run_keys, "tictactoe_v3", keep=6, games=6)
    ev.round()
    kept = [r.game_id for r in replays.games("latest", "random")]
    viewer = ReplayViewer(replays)
    status, body = replay_api(viewer, "/api/replays/games?player=latest&opponent=random&limit=2")
    assert status == 200 and body["total"] == len(kept) == 6 and body["truncated"]
    assert [(g["index"], g["game_id"]) for g in body["games"]] == [(4, kept[4]), (5, kept[5])]
    assert replay_api(viewer, "/api/replays/games?player=latest&opponent=random&limit=201")[0] == 400


def test_ctrl_c_while_a_request_thread_starts_stops_the_server(monkeypatch):
    """`selfplay play --web` under load ignored Ctrl-C: the KeyboardInterrupt reached the main thread
    inside thread.start() (waiting for the request's thread, which had started), process_request
    released that thread's slot a second time, and the ValueError that raised replaced the
    KeyboardInterrupt; socketserver logged it and served on. Before the fix this raised ValueError."""
    import socketserver

    from cluster.ui.dashboard import DashboardServer

    server = DashboardServer(lambda query: {}, "127.0.0.1", 0, max_connections=2)
    try:
        def start_then_interrupt(self, request, client_address):
            self._slots.release()  # the request's thread ran to its end, releasing its slot
            raise KeyboardInterrupt  # and only then did thread.start() return to the main thread

        monkeypatch.setattr(socketserver.ThreadingMixIn, "process_request", start_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            server.process_request(None, ("127.0.0.1", 0))
        assert server._slots._value == 2  # every slot free again, none released twice
    finally:
        server.server_close()

"""The dashboard off loopback needs its token; on loopback it stays open. Real HTTP requests to a
real server, and `selfplay dashboard --host 0.0.0.0` as its own process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from cluster.ui.dashboard import DashboardAuthError, serve

TOKEN = "s3cret-token-for-tests_0123"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture
def server_on():
    servers = []

    def start(host: str, token: str = ""):
        server = serve(lambda query: {"ok": True}, host=host, port=0, token=token)
        servers.append(server)
        return server, f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_every_address_but_loopback_needs_a_token():
    for host in ("0.0.0.0", "", "::", "192.168.1.10", "dashboard.example.com"):
        with pytest.raises(DashboardAuthError, match="give it a token .* or serve it on 127.0.0.1"):
            serve(lambda query: {}, host=host, port=0)
    with pytest.raises(DashboardAuthError, match="at least 16 characters"):
        serve(lambda query: {}, host="0.0.0.0", port=0, token="short; Path=/")


def test_off_loopback_requests_without_the_token_get_401(server_on):
    server, base = server_on("0.0.0.0", TOKEN)
    assert server.url.endswith(f"/?token={TOKEN}")
    for path in ("/", "/app.js", "/api/state", "/nothing"):
        status, headers, body = _get(base + path)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
        assert "needs its token" in json.loads(body)["error"] and "Set-Cookie" not in headers
    assert _get(f"{base}/api/state?token=wrong-token-of-the-same-len")[0] == 401
    assert _get(f"{base}/api/state", {"Authorization": "Bearer nope"})[0] == 401
    assert _get(f"{base}/api/state", {"Cookie": "selfplay_dashboard_token=nope"})[0] == 401


def test_the_token_opens_the_page_and_a_cookie_keeps_it_for_the_pages_own_requests(server_on):
    _, base = server_on("0.0.0.0", TOKEN)
    status, headers, body = _get(f"{base}/?token={TOKEN}")
    assert status == 200 and b"<html" in body.lower()
    cookie = headers["Set-Cookie"]
    assert cookie.startswith(f"selfplay_dashboard_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, _, body = _get(f"{base}/api/state", {"Cookie": cookie.split(";", 1)[0]})  # what app.js's fetch sends
    assert status == 200 and json.loads(body) == {"ok": True}
    assert _get(f"{base}/api/state", {"Authorization": f"Bearer {TOKEN}"})[0] == 200  # scripts


def test_loopback_stays_open_unless_a_token_is_given(server_on):
    server, base = server_on("127.0.0.1")
    assert server.url == f"http://127.0.0.1:{server.port}/"
    assert _get(f"{base}/api/state")[0] == 200 and _get(f"{base}/")[0] == 200
    _, base = server_on("127.0.0.1", TOKEN)
    assert _get(f"{base}/api/state")[0] == 401 and _get(f"{base}/api/state?token={TOKEN}")[0] == 200


def test_cli_generates_and_prints_a_token_off_loopback(redis_server, redis_client):
    from cluster.events import RunMeta
    from cluster.stores.keys import RunKeys
    from cluster.stores.league_store import LeagueStore
    from league.league import LeagueState

    store = LeagueStore(redis_client, RunKeys("selfplay", "run"))
    store.save(LeagueState.new())
    store.set_meta(RunMeta("run", "tictactoe_v3", 1.0).to_doc())
    cmd = [sys.executable, "-m", "cluster.run.cli", "dashboard", "--redis-url", redis_server.url, "--host", "0.0.0.0", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()  # printed once the server listens
        m = re.search(r"http://0\.0\.0\.0:(\d+)/\?token=([A-Za-z0-9_-]{16,})", line)
        assert m, line
        base = f"http://127.0.0.1:{m.group(1)}"
        assert _get(f"{base}/api/state")[0] == 401
        status, _, body = _get(f"{base}/api/state?token={m.group(2)}")
        assert status == 200 and json.loads(body)["run_id"] == "run", body[:200]
    finally:
        proc.terminate()
        proc.wait(timeout=30)

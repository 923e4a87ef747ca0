"""Dashboard server tests, plus the page itself in a real headless Chromium.

The browser tests need Debian's chromium (``apt-get install -y chromium``). They
fail, not skip, when it is missing: a skipped UI test would hide a broken page.

How page errors are detected, from two independent sources:
  * the page's own ``window.onerror`` / ``unhandledrejection`` handlers count
    errors into ``<div id="errors" data-count="N">``, read from ``--dump-dom``;
  * Chromium's own log (``--enable-logging=stderr --v=0``) prints every console
    message, uncaught exceptions ("Uncaught ...") and failed loads included, as
    an ``INFO:CONSOLE`` line. Chromium logs them all at INFO whatever their
    severity, and the page itself never writes to the console, so any CONSOLE
    line fails the test unless it is on an explicit allow-list.
Both detectors are checked against deliberately broken input by canary tests,
so a change in Chromium's log format cannot turn them silently blind.
docs/dashboard.png comes from a real short run: SELFPLAY_UPDATE_SCREENSHOT=1 python -m pytest tests/test_eval_inline.py
Synchronisation uses ``--virtual-time-budget``: Chromium fast-forwards the
page's timers (several 2 s refresh cycles) and dumps the DOM once the budget is
spent, so no test sleeps.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cluster.ui.dashboard import DashboardServer, serve

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "docs" / "dashboard.png"
CHROMIUM_TIMEOUT_S = 120  # a cold Chromium on a loaded 2-core box can take tens of seconds
T0 = 1732200000.0


def sample_state(running: bool = True) -> dict:
    """A realistic mid-run state: learner, three snapshots, two references, 50 history points, the
    latest's score against both references at 10 rating rounds."""
    history: dict[str, list] = {}
    for i in range(50):
        t, version = T0 + 30.0 * i, 1 + i // 2
        ratings: dict = {
            "latest": [40.0 + 330.0 * (1 - math.exp(-i / 15)) + 8 * math.sin(i / 3), 60.0 - 0.8 * i],
            "random": [0.0, 0.0],
            "greedy": [150.0, None],
        }
        for snap, born in (("v000005", 10), ("v000010", 20), ("v000020", 40)):
            if i >= born:
                base = 40.0 + 330.0 * (1 - math.exp(-born / 15))
                ratings[snap] = [base + 3 * math.sin(i + born), 70.0 - 0.9 * (i - born)]
        for pid, (elo, se) in ratings.items():
            history.setdefault(pid, []).append([t, version, elo, se])
    strength = {
        ref: [[T0 + 150.0 * k, 100_000 * (k + 1), 2 * k + 1, w, 0, 20 - w, w / 20, max(0.0, w / 20 - 0.2), min(1.0, w / 20 + 0.2)]
              for k, w in enumerate(wins)]
        for ref, wins in (("random", [8, 11, 14, 17, 18, 19, 20, 20, 19, 20]), ("greedy", [0, 1, 2, 4, 5, 8, 9, 12, 11, 13]))
    }
    players = [
        {"id": "latest", "kind": "learner", "version": 25, "elo": 372.4, "elo_stderr": 21.0,
         "games": 1340, "win_rate_vs_random": 0.97},
        {"id": "v000020", "kind": "snapshot", "version": 20, "elo": 345.1, "elo_stderr": 61.0,
         "games": 120, "win_rate_vs_random": 0.93},
        {"id": "v000010", "kind": "snapshot", "version": 10, "elo": 284.9, "elo_stderr": 44.2,
         "games": 410, "win_rate_vs_random": 0.88},
        {"id": "v000005", "kind": "snapshot", "version": 5, "elo": 190.3, "elo_stderr": 38.5,
         "games": 530, "win_rate_vs_random": None},
        {"id": "greedy", "kind": "reference", "version": None, "elo": 150.0, "elo_stderr": None,
         "games": 800, "win_rate_vs_random": 0.71},
        {"id": "random", "kind": "reference", "version": None, "elo": 0.0, "elo_stderr": 0.0,
         "games": 1500, "win_rate_vs_random": 0.5},
    ]
    return {
        "run_id": "c4-ppo-2024-11-21",
        "game": "connect_four_v3",
        "updated_at": T0 + 30.0 * 49,
        "running": running,
        "players": players,
        "league": {"players": 6, "matched": 6, "shown": 6, "truncated": False},
        "selection": {"top": 10, "newest": 5, "filter": "", "all": False, "curves": list(history), "payoff": ["latest", "v000010", "random"]},
        "elo_history": history,
        "strength": strength,
        "payoff": {
            "players": ["latest", "v000010", "random"],
            "win_rate": [[None, 0.62, 0.97], [0.38, None, 0.88], [0.03, 0.12, None]],
            "games": [[0, 40, 300], [40, 0, 120], [300, 120, 0]],
        },
        "health": {
            "learner_version": 25, "env_steps": 1234567, "env_steps_per_s": 1810.5,
            "games": 23456, "samples_per_s": 1502.0,
            "staleness": {"min": 0, "mean": 0.7, "max": 2}, "sample_reuse": 1.0,
            "dropped_stale": 3,
        },
    }


def minimal_state() -> dict:
    """The emptiest legal state: a finished run, one player, no history, no games."""
    return {
        "run_id": "fresh", "game": "connect_four_v3", "updated_at": None, "running": False,
        "players": [{"id": "latest", "kind": "learner", "version": None, "elo": 0.0,
                     "elo_stderr": None, "games": 0, "win_rate_vs_random": None}],
        "elo_history": {},
        "payoff": {"players": [], "win_rate": [], "games": []},
        "health": {"learner_version": None, "env_steps": 0, "env_steps_per_s": None, "games": 0,
                   "samples_per_s": None, "staleness": {"min": None, "mean": None, "max": None},
                   "sample_reuse": None, "dropped_stale": 0},
    }


@pytest.fixture
def start_server():
    servers: list[DashboardServer] = []

    def start(data_fn) -> DashboardServer:
        """Serve a data function of no arguments (these tests' documents ignore the query)."""
        server = serve(lambda query: data_fn(), port=0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


# ---- server, no browser ------------------------------------------------------------------


def test_api_state_returns_data_fn_json(start_server):
    server = start_server(sample_state)
    status, headers, body = get(server.url + "api/state")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"
    assert json.loads(body) == sample_state()


def test_static_files_served(start_server):
    server = start_server(sample_state)
    for path, kind, marker in (("", "text/html", b'id="errors"'),
                               ("app.js", "text/javascript", b"/api/state"),
                               ("style.css", "text/css", b".heat")):
        status, headers, body = get(server.url + path)
        assert status == 200, path
        assert headers["Content-Type"].startswith(kind), path
        assert marker in body, path


def test_unknown_path_is_404(start_server):
    server = start_server(sample_state)
    for path in ("nope", "web/app.js", "../dashboard.py", "api/state/extra"):
        status, _, body = get(server.url + path)
        assert status == 404, path
        assert "error" in json.loads(body)


def test_data_fn_failure_is_503_with_message(start_server):
    def broken() -> dict:
        raise ConnectionError("Redis unreachable: Connection refused on 127.0.0.1:6379")

    server = start_server(broken)
    status, headers, body = get(server.url + "api/state")
    assert status == 503
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": "Redis unreachable: Connection refused on 127.0.0.1:6379"}
    # The server keeps serving after a failure.
    assert get(server.url)[0] == 200


def test_unserialisable_state_is_503(start_server):
    server = start_server(lambda: {**sample_state(), "updated_at": float("nan")})
    status, _, body = get(server.url + "api/state")
    assert status == 503
    assert json.loads(body)["error"].startswith("dashboard state is not valid JSON")

    server = start_server(lambda: {}["players"])
    status, _, body = get(server.url + "api/state")
    assert (status, json.loads(body)) == (503, {"error": "KeyError: 'players'"})


def test_query_parameters_reach_data_fn():
    seen: list = []
    server = serve(lambda query: seen.append(query) or {"run_id": "r"}, port=0)
    try:
        assert get(server.url + "api/state?top=20&filter=v0001&curves=&top=30")[0] == 200
        assert get(server.url + "api/state")[0] == 200
    finally:
        server.shutdown()
        server.server_close()
    # The last value of a repeated parameter wins; an empty one is kept (curves= means none).
    assert seen == [{"top": "30", "filter": "v0001", "curves": ""}, {}]


def test_port_zero_picks_free_port(start_server):
    a, b = start_server(sample_state), start_server(sample_state)
    assert a.port != 0 and b.port != 0 and a.port != b.port
    assert a.url == f"http://127.0.0.1:{a.port}/"


# ---- the page in headless Chromium --------------------------------------------------------


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is required for the dashboard browser tests but no `chromium` or "
                "`chromium-browser` is on PATH. Install it with: "
                "sudo apt-get install -y chromium")


def run_chromium(url: str, tmp_path: Path, *mode: str, budget_ms: int = 8000):
    """Load ``url`` headless; returns (stdout, console lines from Chromium's log)."""
    cmd = [
        chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-extensions", "--no-first-run",
        "--disable-dev-shm-usage", "--mute-audio", f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", *mode, url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    return proc.stdout, console


def console_errors(console: list[str], allow: tuple[str, ...] = ()) -> list[str]:
    """Console lines not matching any ``allow`` regex (the page logs nothing itself)."""
    return [line for line in console if not any(re.search(a, line) for a in allow)]


class DomIndex(HTMLParser):
    """Flat list of (tag, attrs) plus the page's visible text, from --dump-dom output."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements
                if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def one(self, tag: str, **attrs: str) -> dict[str, str]:
        found = self.find(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]


def load_page(url: str, tmp_path: Path) -> tuple[DomIndex, list[str]]:
    html, console = run_chromium(url, tmp_path, "--dump-dom")
    assert "<body" in html, f"no DOM dumped:\n{html[:2000]}"
    return DomIndex(html), console


def assert_no_page_errors(dom: DomIndex, console: list[str]) -> None:
    errors = dom.one("div", id="errors")
    assert errors["data-count"] == "0", "JS errors on the page: " + " ".join(dom.text)[-2000:]
    assert console_errors(console) == [], "\n".join(console)


@pytest.mark.browser
def test_page_renders_full_state(start_server, tmp_path):
    state = sample_state()
    server = start_server(lambda: state)
    dom, console = load_page(server.url, tmp_path)

    assert_no_page_errors(dom, console)
    assert dom.one("body").get("data-loaded") == "1"
    text = " ".join(dom.text)
    assert "c4-ppo-2024-11-21" in text and "connect_four_v3" in text
    assert dom.one("span", id="run-badge")["class"] == "badge badge-running"

    league_rows = [a["data-player"] for t, a in dom.elements if t == "tr" and "data-player" in a]
    ranked = sorted(state["players"], key=lambda p: -p["elo"])
    # League rows come first (sorted by Elo), then the payoff heat-map rows.
    assert league_rows[: len(ranked)] == [p["id"] for p in ranked]
    assert league_rows[len(ranked):] == state["payoff"]["players"]

    for player in state["players"]:
        lines = dom.find("path", data_player=player["id"])
        line_classes = [a["class"] for a in lines if "elo-line" in a["class"]]
        assert len(line_classes) == 1, f"{player['id']}: {lines}"
        if player["kind"] == "reference":
            assert "reference" in line_classes[0]
        else:
            assert any("elo-band" in a["class"] for a in lines), player["id"]
    cells = [a for a in dom.find("td") if "cell" in a.get("class", "").split()]
    assert len(cells) == 9
    assert sum("null" in a["class"] for a in cells) == 3
    assert "62%" in text and "300 g" in text
    for ref in state["strength"]:  # the latest's score against each reference, with its interval
        classes = [a["class"] for a in dom.find("path", data_player=ref)]
        assert any("strength-line" in c for c in classes) and any("strength-band" in c for c in classes), (ref, classes)
    assert "6 of 6 players" in text
    assert "hidden" in dom.one("label", id="learner-pick")  # one learner: no selector, the page as it was


@pytest.mark.browser
def test_elo_chart_by_learner_version(start_server, tmp_path):
    server = start_server(sample_state)
    dom, console = load_page(server.url + "#x=learner_version", tmp_path)
    assert_no_page_errors(dom, console)
    assert dom.one("button", data_x="learner_version")["class"] == "active"
    assert "learner version" in " ".join(dom.text)
    for player in sample_state()["players"]:
        assert any("elo-line" in a["class"] for a in dom.find("path", data_player=player["id"]))


@pytest.mark.browser
def test_page_copes_with_minimal_finished_state(start_server, tmp_path):
    server = start_server(minimal_state)
    dom, console = load_page(server.url, tmp_path)
    assert_no_page_errors(dom, console)
    assert dom.one("body").get("data-loaded") == "1"
    assert dom.one("span", id="run-badge")["class"] == "badge badge-finished"
    dom.one("tr", data_player="latest")
    text = " ".join(dom.text)
    assert "No rating history yet." in text and "No games played yet." in text
    assert "No rating games of the latest policy yet." in text


@pytest.mark.browser
def test_page_copes_with_single_point_and_long_history(start_server, tmp_path):
    one_point = {**minimal_state(), "updated_at": T0,
                 "elo_history": {"latest": [[T0, 0, 0.0, None]]},
                 "strength": {"random": [[T0, None, 0, 1, 0, 0, 1.0, 0.2, 1.0]]},
                 "payoff": {"players": ["latest"], "win_rate": [[None]], "games": [[0]]}}
    server = start_server(lambda: one_point)
    dom, console = load_page(server.url, tmp_path / "one")
    assert_no_page_errors(dom, console)
    assert len(dom.find("path", data_player="latest")) == 1

    # 2000 points x 40 players: the chart must not hit argument-count limits.
    long = sample_state()
    ids = [f"v{i:06d}" for i in range(40)]
    long["elo_history"] = {pid: [[T0 + i, i // 10, float(i + k), 10.0] for i in range(2000)] for k, pid in enumerate(ids)}
    server = start_server(lambda: long)
    dom, console = load_page(server.url, tmp_path / "long")
    assert_no_page_errors(dom, console)
    assert all(dom.find("path", data_player=pid) for pid in ids)


@pytest.mark.browser
def test_page_shows_data_fn_error(start_server, tmp_path):
    message = "Redis unreachable: Error 111 connecting to localhost:6379"

    def broken() -> dict:
        raise ConnectionError(message)

    server = start_server(broken)
    dom, console = load_page(server.url, tmp_path)
    # The 503 itself is logged by Chromium as a failed resource load; anything else is a bug.
    unexpected = console_errors(console, allow=(r"Failed to load resource: .*status of 503",))
    assert unexpected == [], "\n".join(console)
    assert dom.one("div", id="errors")["data-count"] == "0"
    assert message in dom.one("body").get("data-error", "")
    assert message in " ".join(dom.text)
    assert "data-loaded" not in dom.one("body")


@pytest.mark.browser
def test_console_error_detector_sees_uncaught_errors(tmp_path):
    page = "data:text/html,<script>setTimeout(() => notDefined(), 10)</script>"
    _, console = run_chromium(page, tmp_path, "--dump-dom", budget_ms=1000)
    assert any("Uncaught ReferenceError" in line for line in console_errors(console)), console


@pytest.mark.browser
def test_render_failure_is_counted_as_page_error(start_server, tmp_path):
    # A state the page cannot draw must show up in #errors, not vanish.
    server = start_server(lambda: {**sample_state(), "players": 5})
    dom, _ = load_page(server.url, tmp_path)
    assert int(dom.one("div", id="errors")["data-count"]) >= 1
    assert "render failed" in " ".join(dom.text)


@pytest.mark.browser
def test_screenshot(start_server, tmp_path):
    server = start_server(sample_state)
    out = tmp_path / "dashboard.png"
    run_chromium(server.url, tmp_path, f"--screenshot={out}", "--window-size=1400,960",
                 "--hide-scrollbars")
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


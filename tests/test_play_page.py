"""The dashboard's play page: its API over real HTTP, a run's league players from a real Redis, and a
person's clicks in a real headless Chromium (Debian's chromium and chromedriver, driven by
Selenium) to the end of a game of tic-tac-toe and of connect four.

The person's clicks follow a scripted player planned in-process against the same greedy policy
(tests/test_human_play.py's planned_game), so the test knows every move and the result beforehand."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from actors.human import GRID_BOARDS
from cluster.run.policies import LeaguePolicies
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from cluster.ui.dashboard import serve
from cluster.ui.play import FixedPolicies, PlayRoom
from learner.export import load_policy
from learner.model import state_dict_numpy
from test_human_play import planned_game, write_policy

CLICK_TIMEOUT_S = 60  # a cold Chromium on a loaded 2-core machine is slow


@pytest.fixture
def start():
    servers = []

    def start_server(room: PlayRoom | None):
        servers.append(serve(lambda query: {"run_id": "r"}, port=0, play=room))
        return servers[-1]

    yield start_server
    for s in servers:
        s.shutdown()
        s.server_close()


def call(url: str, body: dict | bytes | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {} if body is None else {"Content-Type": "application/json"}  # the play API takes JSON only
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def room_for(tmp_path: Path, game: str, seed: int = 0) -> tuple[PlayRoom, Path]:
    policy_file = write_policy(tmp_path / f"{game}.msgpack", game, seed=seed)
    return PlayRoom(FixedPolicies(game, {"p": load_policy(policy_file)})), policy_file


# ---- the API, no browser -------------------------------------------------------------------


def test_a_game_over_the_api(start, tmp_path):
    room, policy_file = room_for(tmp_path, "tictactoe_v3")
    api = start(room).url + "api/play/"
    assert call(api + "options") == (200, {"game": "tictactoe_v3", "players": ["p"], "total": 1, "truncated": False, "unplayable": None})
    lines, outcome, moves = planned_game(policy_file, "tictactoe_v3", 1)
    status, game = call(api + "new", {"player": "p", "first": False})
    assert status == 200 and game["moves"] == moves[:1] and game["human_piece"] == 2 and game["your_turn"]
    taken = game["moves"][0]
    assert call(api + "move", {"id": game["id"], "action": taken}) == (400, {"error": f"move {taken} is not legal now"})
    assert call(api + "move", {"id": game["id"], "action": "4"})[0] == 400
    for line in lines:
        status, game = call(api + "move", {"id": game["id"], "action": int(line) - 1})
        assert status == 200, game
    assert game["moves"] == moves and game["outcome"] == outcome and not game["your_turn"] and game["legal"] == []
    assert game["grid"] == GRID_BOARDS["tictactoe_v3"].grid(moves).tolist()
    assert call(api + "move", {"id": game["id"], "action": 0}) == (400, {"error": "the game is over"})


def test_api_errors_say_what_to_do(start, tmp_path):
    room, _ = room_for(tmp_path, "connect_four_v3")
    api = start(room).url + "api/play/"
    assert call(api + "new", {"player": "nobody"}) == (404, {"error": "no player 'nobody' here; choose one of p"})
    status, body = call(api + "move", {"id": "g99", "action": 3})
    assert status == 404 and "start a new one" in body["error"]
    assert call(api + "new", b"{not json")[0] == 400
    assert call(api + "new", b"x" * 5000)[0] == 413
    assert call(api + "nothing", {})[0] == 404
    bare = start(None).url + "api/play/options"
    status, body = call(bare)
    assert status == 404 and "selfplay dashboard --run-dir DIR" in body["error"]


def test_a_game_the_browser_cannot_draw_is_explained(start, tmp_path):
    room = PlayRoom(FixedPolicies("chess_v6", {}))
    status, body = call(start(room).url + "api/play/options")
    assert status == 200 and body["players"] == [] and "play it in the terminal with `selfplay play`" in body["unplayable"]


def test_a_runs_players_come_from_its_redis(start, tmp_path, redis_client):
    policy = load_policy(write_policy(tmp_path / "p.msgpack", "connect_four_v3"))
    keys = RunKeys("selfplay", "webrun")
    source = LeaguePolicies(redis_client, keys)
    LeagueStore(redis_client, keys).set_meta(
        {"run_id": "webrun", "game": "connect_four_v3",
         "config": {"game": {"name": "connect_four_v3", "kwargs": {}}, "model": {"hidden_sizes": [16]}}}
    )
    api = start(PlayRoom(source)).url + "api/play/"
    assert call(api + "options")[1]["players"] == []
    status, body = call(api + "new", {"player": "latest"})
    assert status == 503 and "has no published weights yet" in body["error"]

    params = ParamStore(redis_client, keys)
    for v in (5, 10):
        params.write_snapshot(f"v{v:06d}", v, state_dict_numpy(policy.net))
    params.publish(12, state_dict_numpy(policy.net))
    assert call(api + "options")[1]["players"] == ["latest", "v000010", "v000005"]
    assert call(api + "new", {"player": "latest"})[1]["version"] == 12
    assert call(api + "new", {"player": "v000005", "first": False})[1]["version"] == 5


def test_the_league_page_links_to_the_play_page(start):
    server = start(None)
    with urllib.request.urlopen(server.url, timeout=10) as resp:
        assert b'href="play"' in resp.read()
    with urllib.request.urlopen(server.url + "play", timeout=10) as resp:
        assert b'src="play.js"' in resp.read()


# ---- clicks in headless Chromium -------------------------------------------------------------


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("the play page test needs Debian's chromium and chromedriver: sudo apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


@pytest.fixture
def driver():
    d = browser()
    yield d
    d.quit()


@pytest.mark.browser
@pytest.mark.parametrize("game,seat", [("tictactoe_v3", 0), ("connect_four_v3", 1)])
def test_clicks_play_a_game_to_its_end(start, tmp_path, driver, game, seat):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    room, policy_file = room_for(tmp_path, game)
    lines, outcome, moves = planned_game(policy_file, game, seat)
    board = GRID_BOARDS[game]
    server = start(room)
    wait = WebDriverWait(driver, CLICK_TIMEOUT_S)
    driver.get(server.url + "play#player=p")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "1")
    assert driver.find_element(By.ID, "game").text == game
    driver.find_element(By.ID, "side-first" if seat == 0 else "side-second").click()
    driver.find_element(By.ID, "new-game").click()

    def state(d) -> str:
        return d.find_element(By.TAG_NAME, "body").get_attribute("data-state") or ""

    def moves_drawn(d) -> int:
        return int(d.find_element(By.ID, "board").get_attribute("data-moves") or -1)

    for i, line in enumerate(lines):
        wait.until(lambda d: state(d) == "your-turn")
        action = int(line) - 1
        if i == 1 and not board.drop:  # a taken cell is disabled: clicking it plays nothing
            before = moves_drawn(driver)
            driver.find_element(By.CSS_SELECTOR, f'.square[data-action="{moves[0]}"]').click()
            assert moves_drawn(driver) == before and state(driver) == "your-turn"
        row = 0 if board.drop else action // board.cols  # a column is clicked on its top cell
        col = action if board.drop else action % board.cols
        played = moves_drawn(driver)
        driver.find_element(By.CSS_SELECTOR, f'.square[data-row="{row}"][data-col="{col}"]').click()
        wait.until(lambda d: moves_drawn(d) > played)

    wait.until(lambda d: state(d) == "over")
    assert driver.find_element(By.ID, "status").text == {"win": "you win", "loss": "you lose", "draw": "draw"}[outcome]
    assert moves_drawn(driver) == len(moves)
    cells = driver.find_elements(By.CSS_SELECTOR, "#board .square")
    drawn = np.array([int(c.get_attribute("data-piece")) for c in cells]).reshape(board.rows, board.cols)
    np.testing.assert_array_equal(drawn, board.grid(moves))
    assert all(not c.is_enabled() for c in cells), "a finished game takes no more clicks"
    assert driver.find_element(By.ID, "errors").get_attribute("data-count") == "0"
    assert driver.find_element(By.ID, "banner").get_attribute("hidden") is not None
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe


def test_selfplay_play_web_serves_the_page_for_a_policy_file(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    policy_file = write_policy(tmp_path / "p.msgpack", "connect_four_v3")
    entry = Path(sys.executable).parent / "selfplay"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # Ctrl-C must reach the child whatever this process inherited. A shell's background job (a CI
    # script started with `&`, nohup) ignores SIGINT, an ignored signal stays ignored across exec, and
    # Python then installs no KeyboardInterrupt handler: the child would never see the signal. A
    # handler set here is reset to the default by exec, so the child starts as from a terminal.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([str(entry), "play", str(policy_file), "--web", "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    finally:
        signal.signal(signal.SIGINT, inherited)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"play {policy_file} (connect_four_v3): http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        url = line.split(": ", 1)[1].split()[0]
        assert url.endswith("/play")
        base = url[: -len("play")]
        assert call(base + "api/play/options")[1]["players"] == [str(policy_file)]
        status, game = call(base + "api/play/new", {"player": str(policy_file)})
        assert status == 200 and game["your_turn"] and game["moves"] == []
        status, body = call(base + "api/state")
        assert status == 503 and "open /play" in body["error"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0

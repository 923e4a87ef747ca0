"""The dashboard's replay page: its API over real HTTP on replays a real evaluator kept in a real
Redis, and a real headless Chromium (Debian's chromium and chromedriver, driven by Selenium) stepping
through a kept game with the next/prev buttons, every position checked against PettingZoo's own board."""

from __future__ import annotations

import numpy as np
import pytest

from actors.replay import replay_frames
from cluster.stores.replay_store import ReplayStore
from cluster.ui.dashboard import serve
from cluster.ui.replay import ReplayViewer
from test_play_page import CLICK_TIMEOUT_S, browser, call
from test_replays import GOOD, env_positions, make_evaluator


@pytest.fixture
def start():
    servers = []

    def start_server(viewer: ReplayViewer | None):
        servers.append(serve(lambda query: {"run_id": "r"}, port=0, replays=viewer))
        return servers[-1]

    yield start_server
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def kept(redis_client, run_keys):
    """Connect four replays kept by one round of a real evaluator: latest and v000002 against random and tactical."""
    ev, _, replays = make_evaluator(redis_client, run_keys, "connect_four_v3", keep=3, games=4)
    ev.round()
    return replays


def test_the_api_lists_pairs_games_and_frames(start, kept, redis_client, run_keys):
    api = start(ReplayViewer(kept)).url + "api/replays"
    status, body = call(api)
    assert status == 200 and body["pairs"] == [
        {"player": p, "opponent": r, "games": 3} for p in ("latest", "v000002") for r in ("random", "tactical")]
    status, body = call(api + "/games?player=v000002&opponent=tactical")
    games = kept.games("v000002", "tactical")
    assert status == 200 and [g["game_id"] for g in body["games"]] == [r.game_id for r in games]
    assert [g["index"] for g in body["games"]] == [0, 1, 2] and body["games"][0]["versions"][games[0].rated_seat] == 2
    status, game = call(api + "/game?player=v000002&opponent=tactical&index=-1")
    assert status == 200 and game["index"] == 2 and (game["rows"], game["cols"], game["drop"]) == (6, 7, True)
    frames = replay_frames(games[-1])
    assert [f["caption"] for f in game["frames"]] == [f.caption for f in frames]
    boards, _ = env_positions("connect_four_v3", games[-1].moves)
    assert [f["grid"] for f in game["frames"]] == [b.tolist() for b in boards]

    assert call(api + "/game?player=latest")[0] == 400
    assert call(api + "/game?player=latest&opponent=random&index=x")[0] == 400
    status, body = call(api + "/game?player=latest&opponent=random&index=3")
    assert status == 404 and "the index goes from -3 to 2" in body["error"]
    status, body = call(api + "/game?player=v000077&opponent=random")
    assert status == 404 and "stored pairs: latest vs random" in body["error"]
    assert call(api + "/nothing")[0] == 404
    redis_client.rpush(run_keys.replays("latest", "random"), b"\xc1")
    status, body = call(api + "/game?player=latest&opponent=random&index=-1")
    assert status == 422 and body["error"].startswith("replay 3 of latest against random is corrupt")
    status, body = call(start(None).url + "api/replays")
    assert status == 404 and "selfplay dashboard --run-dir DIR" in body["error"]


def test_a_record_that_does_not_replay_is_reported(start, redis_client, run_keys):
    import dataclasses

    replays = ReplayStore(redis_client, run_keys)
    replays.keep([dataclasses.replace(GOOD, moves=(4, 4))], per_pair=2)
    status, body = call(start(ReplayViewer(replays)).url + "api/replays/game?player=latest&opponent=minimax")
    assert status == 422 and body["error"] == "replay g1 is corrupt: move 2 (cell 5) is not legal in that position"


def test_the_play_page_links_to_the_replay_page(start):
    import urllib.request

    server = start(None)
    for page, needles in (("play", [b'href="replay"', b'src="board.js"']), ("replay", [b'src="board.js"', b'src="replay.js"'])):
        with urllib.request.urlopen(server.url + page, timeout=10) as resp:
            text = resp.read()
        assert all(n in text for n in needles), page
    for asset in ("board.js", "board.css", "replay.js"):
        with urllib.request.urlopen(server.url + asset, timeout=10) as resp:
            assert resp.status == 200


@pytest.mark.browser
def test_stepping_through_a_kept_game_in_the_browser(start, kept):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    games = kept.games("latest", "tactical")
    replay = games[0]
    boards, _ = env_positions("connect_four_v3", replay.moves)
    server = start(ReplayViewer(kept))
    driver = browser()
    try:
        wait = WebDriverWait(driver, CLICK_TIMEOUT_S)
        driver.get(server.url + "replay#player=latest&opponent=tactical&index=0")
        body = lambda d: d.find_element(By.TAG_NAME, "body")  # noqa: E731
        wait.until(lambda d: body(d).get_attribute("data-loaded") == "1" and body(d).get_attribute("data-state") == "ready")
        assert body(driver).get_attribute("data-game") == replay.game_id
        assert driver.find_element(By.ID, "game").text == "connect_four_v3"

        def drawn() -> np.ndarray:
            cells = driver.find_elements(By.CSS_SELECTOR, "#board .square")
            return np.array([int(c.get_attribute("data-piece")) for c in cells]).reshape(6, 7)

        def press(button: str, expect: int) -> None:
            driver.find_element(By.ID, button).click()
            wait.until(lambda d: body(d).get_attribute("data-step") == str(expect))

        captions = [f.caption for f in replay_frames(replay)]
        assert driver.find_element(By.ID, "prev").get_attribute("disabled") is not None
        np.testing.assert_array_equal(drawn(), boards[0])
        for k in range(1, len(replay.moves) + 1):
            press("next", k)
            np.testing.assert_array_equal(drawn(), boards[k])
            assert driver.find_element(By.ID, "caption").text == captions[k]
            assert driver.find_elements(By.CSS_SELECTOR, "#board .square.last")[0].get_attribute("data-col") == str(replay.moves[k - 1])
        assert driver.find_element(By.ID, "next").get_attribute("disabled") is not None
        assert driver.find_element(By.ID, "result").text == f"result: {replay.result_text()}"
        press("prev", len(replay.moves) - 1)
        np.testing.assert_array_equal(drawn(), boards[-2])
        press("first", 0)
        assert driver.find_element(By.ID, "result").text == ""

        # Another pair and game from the selects: v000002 against random, its newest game, at its end.
        Select(driver.find_element(By.ID, "pair")).select_by_visible_text("v000002 vs random (3)")
        other = kept.games("v000002", "random")[-1]
        wait.until(lambda d: body(d).get_attribute("data-game") == other.game_id and body(d).get_attribute("data-state") == "ready")
        press("last", len(other.moves))
        np.testing.assert_array_equal(drawn(), env_positions("connect_four_v3", other.moves)[0][-1])

        assert driver.find_element(By.ID, "errors").get_attribute("data-count") == "0"
        assert driver.find_element(By.ID, "banner").get_attribute("hidden") is not None
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == [], severe
    finally:
        driver.quit()

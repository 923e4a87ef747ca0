"""The dashboard page on a league of 1,200 snapshots in a real redis-server, in a real headless Chromium
driven by Selenium (Debian's chromium and chromedriver): it shows a bounded selection, the filter
narrows it, a click on a row adds that player's Elo curve, and the strength chart draws the latest
policy's score against each reference from games that went through the real league manager."""

from __future__ import annotations

import pytest

from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.ui.dashboard import serve
from cluster.ui.dashboard_data import DashboardData
from league.config import LeagueConfig
from league.manager import LeagueManager
from league.records import LEARNER_ID, RANDOM_ID
from test_league_views import REFERENCE, SNAPSHOTS, _NoSnapshots, big_league, eval_games
from test_play_page import CLICK_TIMEOUT_S, browser

pytestmark = pytest.mark.browser


@pytest.fixture
def page(redis_client):
    store = LeagueStore(redis_client, RunKeys("views", "big"))
    store.set_meta({"run_id": "big", "game": "connect_four_v3", "running": True})
    state = big_league(store)
    manager = LeagueManager(store, _NoSnapshots(), LeagueConfig(), state)
    for k, (version, steps) in enumerate(((1190, 10_000), (1195, 20_000), (1199, 30_000))):
        store.push_games(eval_games(k, version, RANDOM_ID, [1.0] * (6 + k) + [0.0] * (4 - k)))
        store.push_games(eval_games(k, version, REFERENCE, [1.0] * (2 + k) + [0.5] + [0.0] * (7 - k)))
        manager.step(version, env_steps=steps)
    server = serve(DashboardData(store), port=0)
    driver = browser()
    yield server, driver, state
    driver.quit()
    server.shutdown()
    server.server_close()


# The page redraws every 2 s, replacing its elements: read them in one script, and retry a click
# whose element was replaced between finding and clicking it.
def players_of(driver, css: str) -> list[str]:
    return driver.execute_script(f"return [...document.querySelectorAll('{css}')].map((e) => e.dataset.player)")


def rows(driver) -> list[str]:
    return players_of(driver, "#league tbody tr")


def curves(driver) -> set[str]:
    return set(players_of(driver, "#elo-chart path.elo-line"))


def click(driver, css: str) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(5):
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{css} kept being redrawn under the click")


def test_a_league_of_thousands_filter_and_curves(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, driver, state = page
    wait = WebDriverWait(driver, CLICK_TIMEOUT_S)
    driver.get(server.url)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "1")
    shown = rows(driver)
    assert len(shown) == 18  # latest, random, tactical, the top 10, the newest 5
    best = sorted(state.players.values(), key=lambda p: (-p.elo, p.id))
    assert [pid for pid in shown if pid.startswith("v")][:10] == [p.id for p in best if p.kind == "snapshot"][:10]
    assert f"18 of {SNAPSHOTS + 3:,} players" in driver.find_element(By.ID, "league-count").text
    assert driver.execute_script("return document.querySelectorAll('#payoff td.cell').length") == 18 * 18
    default = curves(driver)
    assert {LEARNER_ID, RANDOM_ID, REFERENCE} <= default and len(default) == 6

    # The strength chart: a line and a 95% band per reference the latest played.
    for ref in (RANDOM_ID, REFERENCE):
        drawn = driver.execute_script(f"return [...document.querySelectorAll('#strength-chart path[data-player=\"{ref}\"]')].map((e) => e.classList[0])")
        assert set(drawn) == {"strength-line", "strength-band"}, ref

    # The filter narrows the table to its matches (the top 10 and the newest 5 of them).
    box = driver.find_element(By.ID, "filter")
    box.send_keys("v00050")
    wait.until(lambda d: rows(d) and all(pid.startswith("v00050") for pid in rows(d)))
    assert rows(driver) == [f"v00050{k}" for k in range(9, -1, -1)]
    assert "10 match “v00050”" in driver.find_element(By.ID, "league-count").text
    assert "filter=v00050" in driver.current_url  # the view is kept in the URL

    # Latest and the references keep their curves whatever the filter; the best 3 shown join them.
    filtered = {LEARNER_ID, RANDOM_ID, REFERENCE, "v000509", "v000508", "v000507"}
    assert curves(driver) == filtered

    # Clicking a row adds its Elo curve; clicking it again takes it away.
    click(driver, '#league tbody tr[data-player="v000503"]')
    wait.until(lambda d: "v000503" in curves(d))
    assert curves(driver) == filtered | {"v000503"}
    assert "curves=" in driver.current_url
    assert players_of(driver, "#league tbody tr.charted") == ["v000509", "v000508", "v000507", "v000503"]
    click(driver, '#league tbody tr[data-player="v000503"]')
    wait.until(lambda d: "v000503" not in curves(d))

    # Every match, capped, and the count says so.
    box.clear()
    click(driver, "#all")
    wait.until(lambda d: len(rows(d)) == 200)
    assert "narrow the filter" in driver.find_element(By.ID, "league-count").text
    assert driver.find_element(By.ID, "errors").get_attribute("data-count") == "0"
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe

"""The dashboard and `selfplay league` of a run of several learners (a game with roles: one league per
role), read from a real redis-server filled with two roles' leagues through LeagueStore (no training):
the API's learner parameter over real HTTP on loopback, the CLI's --learner/--role, and the page in a
real headless Chromium driven by Selenium, switching from one role's league to the other's.

SELFPLAY_UPDATE_SCREENSHOT=1 python -m pytest tests/test_dashboard_roles.py -k browser rewrites
docs/dashboard_roles.png from this fixture's leagues."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cluster.run.cli import main
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from cluster.ui.dashboard import serve
from cluster.ui.dashboard_data import DashboardData
from league.config import LeagueConfig
from league.league import LeagueState, Roster
from league.records import GameResult
from league.strength import StrengthPoint

ROLES = ("adversary", "agent")
PREFIX, RUN = "roles", "tag-run"
T0 = 1732200000.0
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "dashboard_roles.png"


def roster(role: str) -> Roster:
    """Role `role`'s league, as actors/roles.py role_roster builds it for two roles."""
    other = ROLES[1 - ROLES.index(role)]
    return Roster(learner_id=f"{other}/latest", snapshot_prefix=f"{role}/", random_id=f"{role}/random",
                  pool_latest_id=f"{role}/latest", own_snapshots=False)


def role_league(store: LeagueStore, role: str, snapshots: int, skill: float, seed: int) -> LeagueState:
    """A role's league rated from 12 rounds of games of the other role's latest against the role's
    players (it beats random with probability `skill`, newer snapshots less often), a snapshot
    joining every third round; each round's ratings go to the Elo history, and the latest's score
    against random to the strength history every other round."""
    state = LeagueState.new((f"{role}/random",), roster=roster(role))
    rng = np.random.default_rng(seed)
    learner, cfg = state.learner_id, LeagueConfig()
    for i in range(12):
        if i % 3 == 0 and i // 3 < snapshots:
            state.add_snapshot(10 * (i // 3))
        opponents = [f"{role}/random", *sorted(state.snapshot_ids())]
        wins = 0
        for k in range(40):
            opp = opponents[k % len(opponents)]
            p_win = skill * (0.6 + i / 30) - (0.0 if opp.endswith("random") else 0.06 * opponents.index(opp))
            s = 1.0 if rng.random() < p_win else 0.0
            wins += int(s) if opp.endswith("random") else 0
            state.record(GameResult(f"{role}-g{i}-{k}", (learner, opp), (4 * i, -1), (s, 1.0 - s), 25, "eval", 1.0, 0.0), cfg)
        state.refit()
        state.learner_version = 4 * i
        store.save(state)
        store.record_ratings(list(state.players.values()), learner_version=4 * i, t=T0 + 60.0 * i)
        if i % 2:
            n = sum(1 for k in range(40) if k % len(opponents) == 0)
            store.record_strength({f"{role}/random": StrengthPoint(4 * i, wins, 0, n - wins)}, env_steps=10_000 * (i + 1), t=T0 + 60.0 * i)
    return state


@pytest.fixture
def roles_run(redis_client):
    """A two-role run (simple_tag's roles) in a real Redis: meta, health, each role's league and version."""
    keys = RunKeys(PREFIX, RUN)
    run_store = LeagueStore(redis_client, keys)
    run_store.set_meta({"run_id": RUN, "game": "simple_tag_v3", "running": True, "started_at": T0, "roles": list(ROLES)})
    run_store.set_health({"learner_version": 0, "env_steps": 120_000, "env_steps_per_s": 950.0, "samples_per_s": 900.0, "games": 4000,
                          "staleness": {"min": 0, "mean": 0.5, "max": 2}, "sample_reuse": 1.0, "dropped_stale": 0, "updated_at": T0 + 700})
    leagues = {}
    for k, (role, snapshots, skill, version) in enumerate((("adversary", 4, 0.9, 96), ("agent", 2, 0.6, 32))):
        store = LeagueStore(redis_client, keys.for_role(role))
        leagues[role] = role_league(store, role, snapshots, skill, seed=k)
        ParamStore(redis_client, keys.for_role(role)).publish(version, {"w": np.zeros(2, np.float32)})
    return run_store, leagues


@pytest.fixture
def server(roles_run):
    run_store, _ = roles_run
    srv = serve(DashboardData(run_store), port=0)
    yield srv
    srv.shutdown()
    srv.server_close()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


# ---- the API ---------------------------------------------------------------------------------------


def test_the_state_names_the_learners_and_shows_the_chosen_ones_league(server, roles_run):
    _, leagues = roles_run
    status, first = get(server.url + "api/state")
    assert status == 200
    assert (first["learners"], first["learner"]) == (list(ROLES), "adversary")  # the first by default
    for role, other in (("adversary", "agent"), ("agent", "adversary")):
        status, doc = get(server.url + f"api/state?learner={role}")
        assert status == 200 and doc["learner"] == role and doc["run_id"] == RUN and doc["game"] == "simple_tag_v3"
        ids = {p["id"] for p in doc["players"]}
        assert ids == set(leagues[role].players)  # this role's league, every player of it
        assert f"{other}/latest" in ids and all(i.startswith(f"{role}/") for i in ids - {f"{other}/latest"})
        assert set(doc["elo_history"]) >= {f"{other}/latest", f"{role}/random"}
        assert list(doc["strength"]) == [f"{role}/random"] and len(doc["strength"][f"{role}/random"]) == 6
        assert set(doc["payoff"]["players"]) == ids
        assert doc["health"]["learner_version"] == {"adversary": 96, "agent": 32}[role]  # its own version
        assert doc["health"]["games"] == 480 and doc["health"]["env_steps"] == 120_000  # its league's, the run's
    assert get(server.url + "api/state")[1]["players"] == get(server.url + "api/state?learner=adversary")[1]["players"]


def test_an_unknown_learner_is_a_404_naming_the_runs_learners(server):
    for name in ("nobody", "adversary/latest", "%20"):
        status, body = get(server.url + f"api/state?learner={name}")
        assert status == 404, name
        assert "its learners are adversary, agent" in body["error"] and body["learners"] == list(ROLES)


def test_a_run_without_roles_has_one_learner_and_refuses_a_name(redis_client):
    store = LeagueStore(redis_client, RunKeys(PREFIX, "plain"))
    store.set_meta({"run_id": "plain", "game": "connect_four_v3", "running": False, "started_at": T0})
    store.save(LeagueState.new())
    srv = serve(DashboardData(store), port=0)
    try:
        status, doc = get(srv.url + "api/state")
        assert status == 200 and (doc["learners"], doc["learner"]) == ([""], "")
        assert {p["id"] for p in doc["players"]} == {"latest", "random"}
        assert get(srv.url + "api/state?learner=")[0] == 200
        status, body = get(srv.url + "api/state?learner=adversary")
        assert status == 404 and "has no roles" in body["error"]
        status, body = get(srv.url + "api/state?top=many")  # a bad parameter is the client's error too
        assert status == 400 and "whole number" in body["error"]
    finally:
        srv.shutdown()
        srv.server_close()


# ---- selfplay league --learner ---------------------------------------------------------------------


def test_selfplay_league_prints_every_learner_or_the_one_asked(roles_run, redis_server, capsys):
    base = ["league", "--redis-url", redis_server.url, "--prefix", PREFIX, "--run", RUN]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "league of role adversary" in out and "league of role agent" in out
    assert main([*base, "--role", "agent"]) == 0
    out = capsys.readouterr().out
    assert "league of role agent" in out and "adversary" in out  # adversary/latest is agent's league's learner
    assert "league of role adversary" not in out and "agent/v000000" in out and "adversary/v000000" not in out
    assert main([*base, "--learner", "adversary"]) == 0
    assert "league of role agent" not in capsys.readouterr().out
    assert main([*base, "--learner", "prey"]) == 2
    assert "no learner 'prey'; its learners are adversary, agent" in capsys.readouterr().err


def test_selfplay_dashboard_opens_on_the_learner_asked(roles_run, redis_server, capsys):
    base = ["dashboard", "--redis-url", redis_server.url, "--prefix", PREFIX, "--run", RUN, "--port", "0"]
    assert main([*base, "--role", "prey"]) == 2  # refused before serving
    assert "no learner 'prey'; its learners are adversary, agent" in capsys.readouterr().err
    proc = subprocess.Popen([sys.executable, "-m", "cluster.run.cli", *base, "--learner", "agent"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()  # printed once the server listens
        m = re.search(r"http://127\.0\.0\.1:(\d+)/#learner=agent ", line)
        assert m, line
        assert get(f"http://127.0.0.1:{m.group(1)}/api/state?learner=agent")[1]["learner"] == "agent"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---- the page, in a real headless Chromium ----------------------------------------------------------


def _rows(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#league tbody tr')].map((e) => e.dataset.player)")


def _drawn(driver, css: str) -> set[str]:
    return set(driver.execute_script(f"return [...document.querySelectorAll('{css}')].map((e) => e.dataset.player)"))


@pytest.mark.browser
def test_the_page_shows_each_roles_league_and_switches_between_them(server, roles_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from test_play_page import CLICK_TIMEOUT_S, browser

    _, leagues = roles_run
    driver = browser()
    try:
        wait = WebDriverWait(driver, CLICK_TIMEOUT_S)
        driver.set_window_size(1400, 1000)
        driver.get(server.url)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "1")
        pick = driver.find_element(By.ID, "learner-pick")
        assert pick.is_displayed()
        select = Select(driver.find_element(By.ID, "learner"))
        assert [o.text for o in select.options] == list(ROLES) and select.first_selected_option.text == "adversary"
        for role, other in (("adversary", "agent"), ("agent", "adversary")):
            if role != "adversary":
                select.select_by_visible_text(role)
                wait.until(lambda d: set(_rows(d)) == set(leagues[role].players))
                assert f"learner={role}" in driver.current_url  # the choice is kept in the URL
            assert set(_rows(driver)) == set(leagues[role].players)
            assert driver.find_element(By.ID, "league-of").text == f"of {role}"
            assert {f"{other}/latest", f"{role}/random"} <= _drawn(driver, "#elo-chart path.elo-line")
            assert _drawn(driver, "#strength-chart path.strength-line") == {f"{role}/random"}
            assert _drawn(driver, "#payoff tbody tr") == set(leagues[role].players)
            tile = driver.execute_script("return document.querySelector('#health .tile-value').textContent")
            assert tile == {"adversary": "96", "agent": "32"}[role]
        if os.environ.get("SELFPLAY_UPDATE_SCREENSHOT"):
            select.select_by_visible_text("adversary")
            driver.set_window_size(1400, 1300)
            wait.until(lambda d: set(_rows(d)) == set(leagues["adversary"].players))
            driver.save_screenshot(str(SCREENSHOT))

        # A page opened on a learner the run does not have says so and offers the run's learners.
        driver.get(server.url + "?reload=1#learner=prey")  # a query, so that the page loads anew
        wait.until(lambda d: "no learner 'prey'" in (d.find_element(By.TAG_NAME, "body").get_attribute("data-error") or ""))
        assert [o.text for o in Select(driver.find_element(By.ID, "learner")).options] == list(ROLES)
        assert driver.find_element(By.ID, "errors").get_attribute("data-count") == "0"
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "404" not in e["message"]]
        assert severe == [], severe
    finally:
        driver.quit()

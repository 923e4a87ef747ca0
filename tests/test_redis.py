"""Redis connection errors, the embedded server, and the league store, against a real redis-server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import msgpack
import pytest
import redis

from cluster.stores.connection import RedisUnavailable, connect, redact
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.league_store import LeagueReader, LeagueStore
from league.config import LeagueConfig
from league.league import LeagueState
from league.records import LEARNER_ID, RANDOM_ID, GameResult


def _game(i: int, scores=(1.0, 0.0)) -> GameResult:
    return GameResult(f"g{i}", (LEARNER_ID, RANDOM_ID), (i, -1), scores, 5 + i % 5, "train", 1.0, 1000.0 + i)


# --- connecting --------------------------------------------------------------------------


def test_connect_with_the_right_password(redis_server):
    client = connect(redis_server.url, timeout_s=2.0)
    assert client.ping()
    client.set("k", b"v")
    assert client.get("k") == b"v"


def test_wrong_password_is_reported_without_leaking_it(redis_server):
    url = redis_server.url.replace(redis_server.password, "not-the-password")
    with pytest.raises(RedisUnavailable) as e:
        connect(url, timeout_s=2.0)
    msg = str(e.value)
    assert "password" in msg.lower() or "credentials" in msg.lower()
    assert "not-the-password" not in msg and redis_server.password not in msg
    assert str(redis_server.port) in msg  # says which Redis refused


def test_no_password_against_a_protected_server(redis_server):
    with pytest.raises(RedisUnavailable) as e:
        connect(f"redis://127.0.0.1:{redis_server.port}/0", timeout_s=2.0)
    assert "password" in str(e.value).lower()
    assert redis_server.password not in str(e.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the socket is closed


def test_unreachable_redis_fails_fast_with_advice():
    started = time.monotonic()
    with pytest.raises(RedisUnavailable) as e:
        connect(f"redis://:secret-pw@127.0.0.1:{_closed_port()}/0", timeout_s=0.5)
    assert time.monotonic() - started < 3.0
    msg = str(e.value)
    assert "cannot reach Redis" in msg and "embedded Redis" in msg
    assert "secret-pw" not in msg


@pytest.mark.parametrize("url", ["http://:secret-pw@127.0.0.1:6379/0", "127.0.0.1:6379", "", "redis:/x"])
def test_bad_url_scheme(url):
    with pytest.raises(RedisUnavailable, match="must start with redis://") as e:
        connect(url)
    assert "secret-pw" not in str(e.value)


@pytest.mark.parametrize(
    "url,expected",
    [
        ("redis://:hunter2@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://bob:hunter2@example.com/1", "rediss://bob:***@example.com/1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://:hunter2@10.0.0.1:7000", "redis://:***@10.0.0.1:7000"),
    ],
)
def test_redact_hides_passwords(url, expected):
    assert redact(url) == expected
    assert "hunter2" not in redact(url)


def test_embedded_redis_persists_across_restart_in_the_same_data_dir(tmp_path):
    server = EmbeddedRedis(tmp_path / "data", password="fixed-pw")
    with server:
        client = connect(server.url, timeout_s=2.0)
        client.set("run:state", b"\x00\x01payload")
        client.rpush("run:games", b"a", b"b")
        client.close()
    assert server.proc is None
    assert any((tmp_path / "data").rglob("*.aof*"))  # the append-only file is in the data dir
    with EmbeddedRedis(tmp_path / "data", password="fixed-pw") as again:
        client = connect(again.url, timeout_s=2.0)
        assert client.get("run:state") == b"\x00\x01payload"
        assert client.lrange("run:games", 0, -1) == [b"a", b"b"]
        client.close()


def test_embedded_redis_generates_a_password_and_requires_it(tmp_path):
    with EmbeddedRedis(tmp_path) as server:
        assert len(server.password) >= 16
        with pytest.raises(RedisUnavailable):
            connect(f"redis://127.0.0.1:{server.port}/0", timeout_s=2.0)


def test_a_second_embedded_redis_on_a_data_dir_in_use_is_refused(tmp_path):
    with EmbeddedRedis(tmp_path / "data") as first:
        with pytest.raises(RedisUnavailable, match=rf"redis-server \(pid {first.proc.pid}\) is still serving .*kill {first.proc.pid}"):
            EmbeddedRedis(tmp_path / "data").start()
        assert connect(first.url, timeout_s=2.0).ping()  # the refusal left the running server alone
    with EmbeddedRedis(tmp_path / "data") as again:  # stopped cleanly: the data dir is free again
        assert connect(again.url, timeout_s=2.0).ping()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_embedded_redis_password_is_not_on_its_command_line(tmp_path):
    """Any user of the machine can read a process's arguments (ps, /proc/PID/cmdline)."""
    odd = 'pw with "quotes", a \\ and spaces'
    with EmbeddedRedis(tmp_path / "data", password=odd) as server:
        cmdline = open(f"/proc/{server.proc.pid}/cmdline", "rb").read()
        assert b"redis-server" in cmdline and odd.encode() not in cmdline and b"pw with" not in cmdline
        client = redis.Redis(host="127.0.0.1", port=server.port, password=odd)
        assert client.ping()  # the quoted password reached the server intact
        client.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_embedded_redis_stops_when_the_process_that_started_it_is_killed(tmp_path):
    """A driver killed with SIGKILL (or by the OOM killer) must not leave its redis-server behind,
    writing the run's append-only file while a resumed run starts another one on it."""
    script = "import sys, time\nfrom cluster.stores.embedded_redis import EmbeddedRedis\n" \
        "r = EmbeddedRedis(sys.argv[1]).start()\nprint(r.proc.pid, flush=True)\ntime.sleep(120)\n"
    driver = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True)
    server_pid = None
    try:
        server_pid = int(driver.stdout.readline())
        os.kill(server_pid, 0)  # running
        driver.kill()
        driver.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(server_pid):
            assert time.monotonic() < deadline, f"redis-server {server_pid} outlived the killed driver"
            time.sleep(0.05)
    finally:
        driver.kill()
        if server_pid is not None and _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)  # the test failed: do not leak the server
    with EmbeddedRedis(tmp_path / "data") as again:  # and a new run can use the data dir at once
        assert connect(again.url, timeout_s=2.0).ping()


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a parent that no longer exists to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --- league store ------------------------------------------------------------------------


@pytest.fixture
def league_store(redis_client, run_keys) -> LeagueStore:
    return LeagueStore(redis_client, run_keys, max_history=5)


def test_games_are_popped_in_push_order(league_store):
    assert league_store.pop_games() == []
    league_store.push_games([_game(0), _game(1)])
    league_store.push_games([_game(2, (0.5, 0.5))])
    league_store.push_games([])
    assert league_store.pop_games(max_n=2) == [_game(0), _game(1)]
    league_store.save(LeagueState.new())  # acknowledges the claimed games
    assert league_store.pop_games() == [_game(2, (0.5, 0.5))]
    league_store.save(LeagueState.new())
    assert league_store.pop_games() == []


def test_corrupt_game_bytes_are_counted_and_skipped(league_store, redis_client, run_keys):
    league_store.push_games([_game(0)])
    redis_client.rpush(run_keys.games, b"\xc1 not msgpack", b"")
    league_store.push_games([_game(1)])
    assert league_store.pop_games() == [_game(0), _game(1)]
    assert league_store.bad_games == 2
    assert redis_client.llen(run_keys.games) == 0


def test_well_formed_msgpack_with_a_malformed_game_is_counted_and_skipped(league_store, redis_client, run_keys):
    league_store.push_games([_game(0)])
    bad = _game(9).to_dict()
    bad["players"] = [LEARNER_ID]  # one seat: valid msgpack, invalid game
    redis_client.rpush(run_keys.games, msgpack.packb({"schema": "game", "v": 1, **bad}, use_bin_type=True))
    league_store.push_games([_game(1)])
    assert league_store.pop_games() == [_game(0), _game(1)]
    assert league_store.bad_games == 1


def _state() -> LeagueState:
    state = LeagueState.new()
    state.add_snapshot(0)
    state.learner_version = 12
    state.players[LEARNER_ID].elo = 150.0
    state.players[LEARNER_ID].elo_stderr = 20.5
    state.players["v000000"].quality = -0.25
    state.players[RANDOM_ID].vs_learner = [3, 1, 2]
    state.elo.add(RANDOM_ID, "v000000", 1.5, 4.0)
    state.payoff.update(LEARNER_ID, "v000000", 1.0)
    state.games_total = 6
    return state


def test_league_state_save_load_round_trip(league_store):
    assert league_store.load() is None
    state = _state()
    league_store.save(state)
    assert state.revision == 1 and not state.changed
    loaded = league_store.load()
    assert loaded.to_dict() == state.to_dict()
    assert loaded.players["v000000"].kind == "snapshot" and loaded.players[LEARNER_ID].elo_stderr == 20.5
    assert loaded.payoff.record("v000000", LEARNER_ID) == (0.0, 0.0, 1.0, 1.0)
    league_store.save(loaded)
    assert league_store.load().revision == 2


def test_a_save_writes_only_what_changed_and_readers_fetch_only_that(league_store, redis_client, run_keys):
    state = LeagueState.new()
    for v in range(50):
        state.add_snapshot(v)
    league_store.save(state)
    reader = LeagueReader(league_store, refresh_s=0.0, sampler="openai_five")
    assert len(reader.state().players) == 52 and reader.players_read == 52  # the first read is everyone
    game = GameResult("g1", (LEARNER_ID, "v000007"), (60, 7), (1.0, 0.0), 9, "train", 0.02, 0.0)
    state.record(game, LeagueConfig())
    assert state.changed == {LEARNER_ID, "v000007"}
    league_store.save(state)
    view = reader.state()
    assert reader.players_read == 54  # the two players the game changed, not the 52
    assert view.revision == 2 and view.players["v000007"].losses == 1
    assert view.players["v000007"].quality == pytest.approx(-0.01 / (51 * 0.02))  # 50 snapshots + random
    assert view.pool.prob("quality", "v000007") < view.pool.prob("quality", "v000008")
    assert redis_client.hlen(run_keys.league_players) == 52
    reader.state()
    assert reader.players_read == 54  # nothing changed: nothing fetched


def test_a_reader_ahead_of_the_store_reads_everything_again(league_store):
    state = LeagueState.new()
    league_store.save(state)
    reader = LeagueReader(league_store, refresh_s=0.0, sampler="uniform")
    reader.state()
    league_store.r.delete(league_store.keys.league_meta)  # the league was rewritten from scratch ...
    fresh = LeagueState.new()
    fresh.add_snapshot(0)
    league_store.save(fresh)  # ... at revision 1 again, with other players
    reader.state()
    league_store.save(fresh)
    assert "v000000" in reader.state().players and reader.state().revision == 2


def test_each_players_elo_history_is_thinned_not_cut(league_store):
    state = _state()
    for v in range(12):
        state.players[LEARNER_ID].elo = float(v)
        league_store.record_ratings([state.players[LEARNER_ID]], learner_version=v, t=float(v))
    history = league_store.elo_history([LEARNER_ID, RANDOM_ID])
    assert history[RANDOM_ID] == []
    versions = [point[1] for point in history[LEARNER_ID]]
    # max_history 5: past it, the first point and every other one back from the newest are kept
    assert len(versions) <= 5 and versions[0] == 0 and versions[-1] == 11
    assert versions == sorted(versions)
    assert history[LEARNER_ID][-1][2:] == [11.0, 20.5]

"""How long a Redis client retries, pinned whatever the redis-py version: against a real
redis-server behind a local TCP relay that can go silent (a host that drops packets: connections
are accepted, nothing is ever answered)."""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest
import redis

from cluster.stores.connection import RETRY_DEADLINE_S, RETRY_ON, DeadlineRetry, connect


class SilentRelay:
    """Forwards 127.0.0.1:port to the Redis at `upstream` until silence() is called; from then on
    it accepts connections and reads what clients send, and answers nothing, until speak().
    lose_replies(): requests still reach Redis, its replies are lost (until speak())."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.quiet = threading.Event()
        self.deaf = threading.Event()
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def silence(self) -> None:
        self.quiet.set()

    def lose_replies(self) -> None:
        self.deaf.set()

    def speak(self) -> None:
        self.quiet.clear()
        self.deaf.clear()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = None if self.quiet.is_set() else socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket | None) -> None:
        ends = [client] + ([upstream] if upstream else [])
        try:
            while not self.stop.is_set():
                ready, _, _ = select.select(ends, [], [], 0.05)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    other = upstream if s is client else client
                    lost = self.quiet.is_set() or (s is upstream and self.deaf.is_set())
                    if other is not None and not lost:  # silent: swallow both ways; deaf: replies
                        other.sendall(data)
        except OSError:
            return
        finally:
            for s in ends:
                s.close()


@pytest.fixture
def relay(redis_server):
    r = SilentRelay(redis_server.port)
    yield r, redis_server.url.replace(f":{redis_server.port}", f":{r.port}")
    r.close()


def test_a_silent_host_fails_a_command_within_the_retry_deadline(relay):
    """Before: Retry(backoff, 20) with no bound in time: every try waits out a socket timeout (and
    a reconnect's), so 20 tries took minutes where the docs promised about 30 s."""
    r, url = relay
    client = connect(url, timeout_s=0.5, retry_deadline_s=3.0)
    client.set("k", b"v")
    r.silence()
    t0 = time.monotonic()
    with pytest.raises((redis.TimeoutError, redis.ConnectionError)):
        client.get("k")
    elapsed = time.monotonic() - t0
    # Retried (not the first timeout, 0.5 s), and stopped at the deadline plus at most one try.
    assert 2.0 < elapsed < 3.0 + 2 * 0.5 + 1.5, elapsed


def test_a_host_silent_for_a_moment_is_ridden_out(relay):
    r, url = relay
    client = connect(url, timeout_s=0.5, retry_deadline_s=10.0)
    client.set("k", b"v")
    r.silence()
    threading.Timer(1.5, r.speak).start()
    t0 = time.monotonic()
    assert client.get("k") == b"v"  # timed out, retried, answered once the host speaks again
    assert 1.0 < time.monotonic() - t0 < 10.0


def test_retries_are_pinned_not_left_to_the_redis_py_version(redis_server):
    """redis-py 5.0.x retries nothing unless the connection lists the errors to retry on."""
    client = connect(redis_server.url, timeout_s=2.0)
    kwargs = client.connection_pool.connection_kwargs
    assert set(RETRY_ON) <= set(kwargs["retry_on_error"])
    retry = client.get_retry()
    assert isinstance(retry, DeadlineRetry) and retry.deadline_s == RETRY_DEADLINE_S == 30.0
    assert set(retry._supported_errors) == set(RETRY_ON)


def test_a_push_retried_after_its_reply_was_lost_is_counted_once(relay, redis_client):
    """The game queue's RPUSH reaches Redis, its reply is lost, the client retries it: the game is
    in the queue twice, and the league applies it once and counts the duplicate."""
    from cluster.stores.keys import RunKeys
    from cluster.stores.league_store import LeagueStore
    from cluster.stores.param_store import ParamStore
    from league.config import LeagueConfig
    from league.league import LeagueState
    from league.manager import LeagueManager
    from league.records import LEARNER_ID, RANDOM_ID, GameResult

    r, url = relay
    keys = RunKeys("test", "retried-push")
    actor_side = LeagueStore(connect(url, timeout_s=0.5, retry_deadline_s=10.0), keys)
    game = GameResult("g1", (LEARNER_ID, RANDOM_ID), (1, -1), (1.0, 0.0), 5, "train", 1.0, 0.0)
    r.lose_replies()
    threading.Timer(1.2, r.speak).start()
    actor_side.push_games([game])  # timed out waiting for the reply, retried, answered
    assert redis_client.llen(keys.games) == 2

    state = LeagueState.new()
    manager = LeagueManager(LeagueStore(redis_client, keys), ParamStore(redis_client, keys), LeagueConfig(), state)
    manager.step(1)
    assert manager.duplicate_games == 1 and state.games_total == 1 and manager.bad_games == 0

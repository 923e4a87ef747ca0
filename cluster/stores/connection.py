"""Connecting to Redis with errors a user can act on (the keys a run writes: cluster/stores/keys.py).

Clients ride out a Redis restart or a network blip: after the first PING, a command that meets a
dropped connection or a timeout is retried with exponential backoff for at most 30 s in all
(DeadlineRetry), the same under every redis-py version the project admits.
"""

from __future__ import annotations

import builtins
import os
import socket
import time
from urllib.parse import quote, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

# Once connected, a command that meets a dropped connection (Redis restarting, a network blip,
# AOF still loading) or no answer within the socket timeout is retried with exponential backoff,
# 0.1 s doubling to 2 s, at most RETRIES times and RETRY_DEADLINE_S seconds in all, before the
# error reaches the caller. The first PING is not retried: a wrong password or an unreachable host
# is reported at once.
RETRIES = 20
RETRY_DEADLINE_S = 30.0
BACKOFF = ExponentialBackoff(cap=2.0, base=0.05)
# Pinned rather than left to redis-py's defaults: under redis-py 5.0.x a Retry without
# retry_on_error retries nothing (the connection re-raises every error), and its reconnect
# retries only the OS's own refused / reset errors (builtins.ConnectionError), which its default
# set leaves out, so a command sent while Redis restarts failed at once; later versions differ.
RETRY_ON = (redis.ConnectionError, redis.TimeoutError, socket.timeout, builtins.ConnectionError)


class DeadlineRetry(Retry):
    """redis-py's Retry, bounded in time as well as in tries: against a host that drops packets
    every try costs a socket timeout, so `retries` tries alone could take minutes. A try that would
    start after `deadline_s` is not made; the last error is raised instead. Implements the whole
    loop itself, so it behaves the same under every redis-py version that calls
    call_with_retry(do, fail[, is_retryable][, with_failure_count])."""

    def __init__(self, backoff, retries: int, deadline_s: float) -> None:
        super().__init__(backoff, retries, supported_errors=RETRY_ON)
        self.deadline_s = deadline_s

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeadlineRetry):
            return NotImplemented
        mine, theirs = (self._backoff, self._retries, set(self._supported_errors), self.deadline_s), (
            other._backoff, other._retries, set(other._supported_errors), other.deadline_s)
        return mine == theirs

    def __hash__(self) -> int:
        return hash((self._retries, frozenset(self._supported_errors), self.deadline_s))

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count: bool = False):
        self._backoff.reset()
        start, failures = time.monotonic(), 0
        while True:
            try:
                return do()
            except RETRY_ON as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                fail(error, failures) if with_failure_count else fail(error)
                pause = self._backoff.compute(failures)
                if failures > self._retries or time.monotonic() - start + pause > self.deadline_s:
                    raise error
                time.sleep(pause)


class RedisUnavailable(RuntimeError):
    """Redis cannot be used: unreachable, wrong password, or not Redis. The message says what to do."""


REDACTED_PASSWORD = "***"  # what redact() (and so cluster/config.py's written_config) puts in place of a password


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:{REDACTED_PASSWORD}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def with_password(url: str) -> str:
    """The URL to connect with: a password written out as *** (a config.yaml, the run metadata) or
    none at all is taken from REDIS_PASSWORD; a *** with no REDIS_PASSWORD is refused with what to do."""
    parts = urlsplit(url)
    secret = os.environ.get("REDIS_PASSWORD", "")
    if parts.scheme not in ("redis", "rediss") or parts.password not in (None, REDACTED_PASSWORD) or (parts.password is None and not secret):
        return url
    if not secret:
        raise RedisUnavailable(
            f"the password of {url} was removed when the URL was written out (config files, run metadata and "
            "checkpoints never hold it): give the URL again with --redis-url redis://:PASSWORD@host:port/0 "
            "(or REDIS_URL), or set REDIS_PASSWORD"
        )
    netloc = f"{quote(parts.username or '', safe='')}:{quote(secret, safe='')}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def resolve_url(configured: str) -> str:
    """Config wins, then REDIS_URL; empty means 'use an embedded Redis'. A configured URL whose
    password was removed when it was written out (a config.yaml given again) gives way to REDIS_URL."""
    env = os.environ.get("REDIS_URL", "")
    if configured and env and urlsplit(configured).password == REDACTED_PASSWORD:
        return env
    return configured or env


def connect(url: str, timeout_s: float = 5.0, retries: int = RETRIES, retry_deadline_s: float = RETRY_DEADLINE_S) -> redis.Redis:
    """Open a client (redis:// or rediss:// TLS, password in the URL) and check it with PING.
    Later commands retry lost connections and timeouts (each try waits at most timeout_s) up to
    `retries` times with exponential backoff, for at most `retry_deadline_s` seconds in all."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise RedisUnavailable(f"Redis URL {redact(url)!r} must start with redis://, rediss:// or unix://")
    url = with_password(url)
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30,
            retry=Retry(NoBackoff(), 0), retry_on_error=list(RETRY_ON),
        )
        client.ping()
    except redis.AuthenticationError as exc:
        raise RedisUnavailable(
            f"Redis at {redact(url)} refused the credentials ({exc}). Put the right password in the URL: "
            "redis://:PASSWORD@host:port/0 (or set REDIS_URL)."
        ) from exc
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc) or "AUTH" in str(exc).upper():
            raise RedisUnavailable(
                f"Redis at {redact(url)} requires a password ({exc}). Use redis://:PASSWORD@host:port/0."
            ) from exc
        raise RedisUnavailable(f"Redis at {redact(url)} answered with an error: {exc}") from exc
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise RedisUnavailable(
            f"cannot reach Redis at {redact(url)} ({exc}). Check that it is running and reachable from this node, "
            "or leave redis.url empty on a single machine to use an embedded Redis."
        ) from exc
    client.set_retry(DeadlineRetry(BACKOFF, retries, retry_deadline_s))
    return client

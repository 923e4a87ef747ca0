"""A Redis that runs out of memory: refused when it would evict a run's keys, and a clear stop with
a checkpoint when it refuses writes.

A run keeps everything in Redis without expiry: published weights, snapshots, the league, the game
queue. A Redis whose maxmemory-policy evicts keys (allkeys-lru, volatile-*, ...) would drop them
silently (a snapshot an actor then cannot find, weights an actor waits for, games never rated), so a
run refuses to start on one. With `noeviction` a full Redis refuses writes instead ("OOM command
not allowed"): the driver then stops with a checkpoint, which goes to the run directory or the
object store and needs no Redis (cluster/run/driver.py).
"""

from __future__ import annotations

from typing import Callable, TypeVar

import redis

from cluster.stores.connection import RedisUnavailable, connect, redact

T = TypeVar("T")
SAFE_POLICY = "noeviction"
_OOM_TEXT = "command not allowed when used memory"  # redis-py drops the "OOM " prefix of the reply


def eviction_policy(client: redis.Redis) -> str | None:
    """Redis' maxmemory-policy, or None where CONFIG is disabled (some managed services rename it)."""
    try:
        return client.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:
        return None


def refuse_evicting_redis(url: str, log: Callable[[str], None] = print) -> None:
    """Refuse a Redis that may evict the run's keys, with the command that makes it safe. An empty
    URL (an embedded Redis, started by the run itself with noeviction) passes."""
    if not url:
        return
    policy = eviction_policy(connect(url))
    if policy is None:
        log(f"cannot read maxmemory-policy of Redis at {redact(url)} (CONFIG is disabled there): make sure it is "
            f"{SAFE_POLICY}, or keys of the run may be evicted silently")
        return
    if policy != SAFE_POLICY:
        raise RedisUnavailable(
            f"Redis at {redact(url)} evicts keys when full (maxmemory-policy {policy}): a run's weights, snapshots, league and "
            f"games would vanish silently. Run `redis-cli -u {redact(url)} CONFIG SET maxmemory-policy {SAFE_POLICY}` "
            f"(and set `maxmemory-policy {SAFE_POLICY}` in its redis.conf), then start again"
        )


def is_out_of_memory(exc: BaseException | None) -> bool:
    """Whether `exc`, or what caused it (a learner's error relayed through Ray, a transaction that
    was discarded), is Redis refusing a write for lack of memory."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or _OOM_TEXT in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def unless_out_of_memory(call: Callable[[], T]) -> T | None:
    """call(), or None if it fails because Redis is full: e.g. stopping a learner whose training
    thread died of the full Redis (its state is still there for the checkpoint)."""
    try:
        return call()
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        return None


def out_of_memory_message(exc: BaseException, checkpoint: int, where: str, resume: str) -> str:
    return (
        f"Redis is out of memory (maxmemory reached with maxmemory-policy {SAFE_POLICY}: it refuses writes). The run "
        f"stopped with checkpoint v{checkpoint} in {where}. Give Redis more memory (`CONFIG SET maxmemory ...`, or a "
        f"larger instance), or lower redis.keep_versions, then continue with: {resume}"
    )

"""The run lease: at most one driver drives a run.

A driver writes the run's league, metadata, checkpoints and health; two drivers of one run (the same
`selfplay train ... --resume auto` started twice, or another `checkpoint.uri` under the same run
name) would both write them, the second from an older checkpoint. So a driver holds a lease in
Redis, `{p}:{run}:lease`, for as long as it runs:

    claim    SET key value NX PX ttl     value: a random token and the holder (host, pid, started_at)
    renew    Lua: PEXPIRE only if the value still holds our token        every ttl/3, on a thread
    release  Lua: DEL only if the value still holds our token           on every stop

A second driver is refused with the holder's host and pid and when the lease expires. A holder that
died is not renewed: its lease expires within ttl, and a driver that waits that long takes over. A
driver whose renewal finds another token or none (it stalled past the ttl, or Redis lost the key)
has lost the run: `check()` raises LeaseLost at the driver's next write point, and it stops without
writing anything more.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import msgpack
import redis

from cluster.stores.connection import connect

LEASE_SCHEMA = "run_lease"

# KEYS[1] the lease; ARGV[1] our token; ARGV[2] ttl in ms. 1: renewed; 0: not ours (or gone).
RENEW = """
local v = redis.call('GET', KEYS[1])
if v and string.find(v, ARGV[1], 1, true) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
# KEYS[1] the lease; ARGV[1] our token. 1: released; 0: it was not ours.
RELEASE = """
local v = redis.call('GET', KEYS[1])
if v and string.find(v, ARGV[1], 1, true) then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseError(RuntimeError):
    """Base of the lease's refusals; the message says what to do."""


class LeaseHeld(LeaseError):
    """Another driver holds the run's lease."""


class LeaseLost(LeaseError):
    """This driver no longer holds the run's lease: it must stop without writing."""


def lease_key(prefix: str, run_id: str) -> str:
    return f"{prefix}:{run_id}:lease"


def _holder(raw: bytes | None) -> dict:
    """The holder's record, or {} for a value this version cannot read (it is never code: msgpack)."""
    if raw is None:
        return {}
    try:
        doc = msgpack.unpackb(raw)
    except (ValueError, msgpack.UnpackException):
        return {}
    return doc if isinstance(doc, dict) and doc.get("schema") == LEASE_SCHEMA else {}


def describe(holder: dict, ttl_ms: int) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started_at", 0)))
    expiry = f"its lease expires in {max(ttl_ms, 0) / 1000:.0f} s unless renewed" if ttl_ms >= 0 else "its lease has no expiry"
    return f"host {holder.get('host', '?')} pid {holder.get('pid', '?')} (driving since {when}; {expiry})"


class RunLease:
    """The lease of one run, for one driver. `claim()` it, then `check()` at every write point;
    `release()` at the end. A thread renews it every ttl/3 between claim and release."""

    def __init__(self, client: redis.Redis, prefix: str, run_id: str, ttl_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.r, self.key, self.run_id = client, lease_key(prefix, run_id), run_id
        self.ttl_ms = max(int(ttl_s * 1000), 1000)
        self.token = secrets.token_hex(16)
        self.value = msgpack.packb(
            {"schema": LEASE_SCHEMA, "token": self.token, "host": socket.gethostname(), "pid": os.getpid(), "started_at": time.time()}
        )
        self._renew, self._release = client.register_script(RENEW), client.register_script(RELEASE)
        self.held = False
        self.lost: str = ""  # why the lease was lost, once it was
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, wait_s: float | None = None) -> None:
        """Take the lease, or raise LeaseHeld naming its holder. A lease that nobody renews (its
        driver died) is waited for, at most `wait_s` (default: one ttl) and taken once it expires;
        one that is renewed meanwhile belongs to a live driver and is refused at once."""
        deadline = self._clock() + (self.ttl_ms / 1000 + 1.0 if wait_s is None else wait_s)
        last_ttl = None
        while not self.r.set(self.key, self.value, nx=True, px=self.ttl_ms):
            # One transaction: read apart, the lease can expire between GET and PTTL, and PTTL's -2
            # ("no such key") would read as "no expiry".
            raw, ttl = self.r.pipeline(transaction=True).get(self.key).pttl(self.key).execute()
            if raw is None or ttl == -2:
                continue  # expired or released since the SET: try again
            renewed = last_ttl is not None and ttl > last_ttl + 50
            if renewed or ttl < 0 or self._clock() >= deadline:
                raise LeaseHeld(
                    f"run {self.run_id!r} is being driven by another driver: {describe(_holder(raw), ttl)}. "
                    "Two drivers would both write its league and checkpoints: stop that one first (its checkpoint "
                    "then stands), or start this run under another run.run_id. A driver that died frees its lease "
                    f"within {self.ttl_ms / 1000:.0f} s (run.lease_ttl_s)."
                )
            last_ttl = ttl
            time.sleep(min(0.5, max(ttl, 1) / 1000))
        self.held = True
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.run_id}", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        """Renew now; raise LeaseLost if the lease is no longer ours."""
        if self.lost:
            raise LeaseLost(self.lost)
        if not self.held:
            return
        if not self._renew(keys=[self.key], args=[self.token, self.ttl_ms]):
            raw, ttl = self.r.pipeline(transaction=True).get(self.key).pttl(self.key).execute()
            now = f"now held by {describe(_holder(raw), ttl)}" if raw is not None else "expired and nobody holds it"
            self.held = False
            self.lost = (
                f"this driver lost the lease of run {self.run_id!r} ({now}): it stalled longer than run.lease_ttl_s, or "
                "Redis lost the key. Another driver may be running it, so this one stops without writing anything more; "
                "its last checkpoint stands. Resume once no other driver runs it."
            )
            raise LeaseLost(self.lost)

    def check(self) -> None:
        """At a write point: raise LeaseLost if a renewal found the lease gone."""
        if self.lost:
            raise LeaseLost(self.lost)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                self.renew()
            except LeaseLost:
                return
            except (redis.RedisError, OSError):
                continue  # Redis away for a moment (restarting): the next period tries again, the key outlives it

    def release(self) -> None:
        """Stop renewing and give the lease back, if it is still ours."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        if self.held:
            self.held = False
            try:
                self._release(keys=[self.key], args=[self.token])
            except (redis.RedisError, OSError):
                pass  # Redis is gone: the lease expires within its ttl anyway


def holder_of(client: redis.Redis, prefix: str, run_id: str) -> dict:
    """The current holder's record ({} if none): for messages and tests."""
    return _holder(client.get(lease_key(prefix, run_id)))


@contextmanager
def run_lease(url: str, prefix: str, run_id: str, ttl_s: float) -> Iterator[RunLease]:
    """Hold the run's lease for the `with` body (a driver's whole run); released on every exit."""
    lease = RunLease(connect(url), prefix, run_id, ttl_s)
    lease.claim()
    try:
        yield lease
    finally:
        lease.release()


def refuse_if_driven(url: str, prefix: str, run_id: str, ttl_s: float) -> None:
    """Before anything starts (Ray, a Redis write): refuse at once when a live driver holds the run.
    Only a check: the lease itself is claimed with run_lease, once Redis is up."""
    if not url:
        return  # an embedded Redis: its data directory refuses a second server already
    probe = RunLease(connect(url), prefix, run_id, ttl_s)
    probe.claim()  # waits out a dead holder's lease, raises LeaseHeld for a live one
    probe.release()

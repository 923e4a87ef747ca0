"""Tests for cluster/remote/submit.py that need no Ray cluster (the `selfplay submit` command: tests/test_submit_cli.py).

The end-to-end ones run the real JobSubmissionClient against tests/jobs_api_fake.py, a small
in-process fake of the Ray dashboard's Jobs API (aiohttp, a ray[default] dependency), so they
exercise what actually goes over the wire: the uploaded working_dir package, the
submit request, the log websocket and the status polling. Nothing here starts Ray.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
from ray.job_submission import JobStatus

from cluster.remote.submit import DEFAULT_EXCLUDES, ClusterConnectionError, build_entrypoint, build_runtime_env, connect, submit_job, wait_for_job
from tests.jobs_api_fake import FakeJobsApi, _closed_port, _project_tree, fake_api, no_ray_address_override  # noqa: F401 - fixtures

REPO_ROOT = Path(__file__).resolve().parents[1]


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


# --- end to end against a fake Jobs API (tests/jobs_api_fake.py) ---------------------


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

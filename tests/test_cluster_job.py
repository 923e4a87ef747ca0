"""End to end on this machine: a real Ray head with token auth, a real redis-server, and
`selfplay train` submitted through the Ray Jobs API exactly as on a cluster.

The head is started with `ray start --head --block` in its own session and torn down by
killing that process group and its recorded descendants. `ray stop` is never used: it
stops every Ray on the machine, other people's runs included.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from cluster.remote.submit import wait_for_job
from cluster.stores.connection import connect as redis_connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore, list_runs
from cluster.stores.param_store import ParamStore
from tests.needs import skip_unless_ci

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HEAD_START_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 400.0
FAIL_FAST_TIMEOUT_S = 150.0

pytestmark = [
    pytest.mark.ray,
    skip_unless_ci(shutil.which("ray", path=str(VENV_BIN)) is None, reason="needs the ray CLI next to this Python"),
]


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):  # hold all sockets open at once so the ports are distinct
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Head:
    address: str  # dashboard / Jobs API
    gcs_port: int
    ports: list[int]
    auth_env: dict[str, str]  # what a client needs in its environment
    proc: subprocess.Popen
    log: Path


def _wait_for_dashboard(head: Head, deadline: float) -> None:
    """Wait until the Jobs API answers (the dashboard starts after the GCS)."""
    import urllib.error
    import urllib.request

    while time.monotonic() < deadline:
        if head.proc.poll() is not None:
            pytest.fail(f"ray start exited with {head.proc.returncode}:\n{head.log.read_text()[-4000:]}")
        try:
            urllib.request.urlopen(f"{head.address}/api/version", timeout=2)
            return
        except urllib.error.HTTPError:
            return  # 401: up, and refusing a client without the token
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"Ray dashboard at {head.address} did not come up:\n{head.log.read_text()[-4000:]}")


def _stop_head(head: Head) -> None:
    """SIGTERM our `ray start --block` session, then SIGKILL what is left of it.

    Ray puts worker processes in sessions of their own, so the descendants are recorded
    before the kill and stopped by pid, not only through the process group.
    """
    try:
        family = psutil.Process(head.proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    try:
        os.killpg(head.proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        head.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    _, alive = psutil.wait_procs(family, timeout=15)
    for p in alive:
        p.kill()
    try:
        os.killpg(head.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    head.proc.wait(timeout=10)
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[Head]:
    # Ray limits the length of its Unix socket paths, so pytest's tmp_path is too long.
    temp_dir = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    gcs, dash, client, nm, om, agent_listen, agent_grpc, metrics, rt_env = _free_ports(9)
    token = secrets.token_hex(32)
    # Token auth as on a real cluster (docs/cluster.md section 2): the head reads the mode
    # and token from its environment. Its children, the job driver included, inherit both.
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `selfplay` for the job entrypoint
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "REDIS_URL", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    log = temp_dir / "ray-start.log"
    cmd = [
        str(VENV_BIN / "ray"), "start", "--head", "--block",
        "--node-ip-address", "127.0.0.1",
        "--port", str(gcs), "--dashboard-port", str(dash), "--ray-client-server-port", str(client),
        "--node-manager-port", str(nm), "--object-manager-port", str(om),
        "--dashboard-agent-listen-port", str(agent_listen), "--dashboard-agent-grpc-port", str(agent_grpc),
        "--metrics-export-port", str(metrics), "--runtime-env-agent-port", str(rt_env),
        "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
        "--temp-dir", str(temp_dir), "--disable-usage-stats",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    head = Head(
        f"http://127.0.0.1:{dash}", gcs, [gcs, dash, client, nm, om, agent_listen, agent_grpc, metrics, rt_env],
        {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}, proc, log,
    )
    try:
        _wait_for_dashboard(head, time.monotonic() + HEAD_START_TIMEOUT_S)
        yield head
    finally:
        _stop_head(head)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_port_open(p) for p in (gcs, dash, client)):
            time.sleep(0.5)
        still_open = [p for p in (gcs, dash, client) if _port_open(p)]
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not still_open, f"ports {still_open} of the test's Ray head are still open after teardown"


@dataclass
class JobRun:
    job_id: str
    status: str  # terminal status, or "" when the client was still following at its timeout
    output: str  # what the client printed: the job's logs, streamed, then the final status


@pytest.fixture(scope="module")
def submit(ray_head: Head):
    """Submit `selfplay train ARGS` the way a user does: cluster.remote.submit.submit_job, following the logs.

    The client runs in its own process with RAY_AUTH_MODE=token and RAY_AUTH_TOKEN in its
    environment (docs/cluster.md section 2). It cannot run in this process: Ray reads
    RAY_AUTH_MODE once per process, when `ray` is imported, so setting it here now is ignored.
    """
    from ray.job_submission import JobSubmissionClient

    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "RAY_API_SERVER"))}
    env.pop("REDIS_URL", None)
    env.update(ray_head.auth_env, PYTHONPATH=str(REPO))
    submitted: list[str] = []

    def run(args: list[str], timeout_s: float) -> JobRun:
        script = (
            "import sys, json\n"
            "from cluster.remote.submit import submit_job\n"
            f"status = submit_job({ray_head.address!r}, json.loads(sys.argv[1]), working_dir={str(REPO)!r}, finish_timeout_s=60)\n"
            "print('STATUS', status)\n"
        )
        import json

        try:
            done = subprocess.run(
                [sys.executable, "-c", script, json.dumps(args)], env=env, cwd=str(REPO), timeout=timeout_s,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            output, finished = done.stdout, True
        except subprocess.TimeoutExpired as exc:
            raw = exc.output or b""
            output, finished = (raw.decode() if isinstance(raw, bytes) else raw), False
        found = re.search(r"^Submitted job (\S+):", output, re.MULTILINE)
        assert found, f"the client did not submit a job:\n{output}"
        submitted.append(found.group(1))
        status = re.search(r"^STATUS (\w+)$", output, re.MULTILINE)
        print(output)  # shown with -s, and by pytest when the test fails
        return JobRun(found.group(1), status.group(1) if finished and status else "", output)

    yield run
    # A job still running would outlive the test (Ray runs each driver in a session of its own).
    client = JobSubmissionClient(ray_head.address, headers={"Authorization": f"Bearer {ray_head.auth_env['RAY_AUTH_TOKEN']}"})
    for job_id in submitted:
        if not client.get_job_status(job_id).is_terminal():
            client.stop_job(job_id)
            wait_for_job(client, job_id, timeout_s=60)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="selfplay-e2e-redis-") as data:
        with EmbeddedRedis(data) as r:
            yield r.url


def test_unauthenticated_client_is_refused(ray_head: Head):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{ray_head.address}/api/jobs/", timeout=10)
    assert err.value.code == 401


def test_train_job_advances_the_league(submit, redis_url: str, tmp_path: Path):
    run_dir = (tmp_path / "e2e-run").resolve()  # absolute: the job runs in a copy of the repo
    job = submit(["--config", "configs/tictactoe_cluster_test.yaml", "--redis-url", redis_url, "--run-dir", str(run_dir)], JOB_TIMEOUT_S)
    assert job.status == "SUCCEEDED", f"job {job.job_id} ended {job.status or 'not in time'}; client output:\n{job.output}"
    assert "joined Ray cluster" in job.output  # it ran on our head, not on a private local Ray

    r = redis_connect(redis_url)
    run_id = run_dir.name
    assert run_id in list_runs(r, "selfplay")
    keys = RunKeys("selfplay", run_id)
    store = LeagueStore(r, keys)
    state = store.load()
    assert state is not None
    assert state.learner_version > 0
    assert state.games_total > 0
    assert ParamStore(r, keys).latest_version() > 0
    assert store.meta()["running"] is False


def test_job_asking_for_missing_gpu_fails_fast(submit, redis_url: str, tmp_path: Path):
    """The 2-CPU, 0-GPU head can never place a 1-GPU learner: the job must fail, not hang."""
    run_dir = (tmp_path / "e2e-gpu").resolve()
    job = submit([
        "--config", "configs/tictactoe_cluster_test.yaml", "--set", "learner.num_gpus=1",
        "--redis-url", redis_url, "--run-dir", str(run_dir),
    ], FAIL_FAST_TIMEOUT_S)
    assert job.status == "FAILED", f"job {job.job_id} ended {job.status or 'not in time'}; client output:\n{job.output}"
    assert "learner.num_gpus is 1 but the largest node of this cluster has 0 GPU(s)" in job.output, job.output


def test_selfplay_submit_ships_a_game_module_of_ones_own(ray_head: Head, redis_url: str, tmp_path: Path):
    """`selfplay submit` as a user types it: the config checked here, the working directory and a
    game module from outside it (docs/custom_game.md's Sticks, shipped as py_modules) sent to the
    cluster, --run-dir and --resume auto passed on, the follow-up commands printed, the job trained."""
    from ray.job_submission import JobSubmissionClient

    from test_custom_game_doc import doc_file  # tests/ is on sys.path, as for fault_support

    games = tmp_path / "games"
    games.mkdir()
    (games / "sticks.py").write_text(doc_file("sticks.py"))
    run_dir = (tmp_path / "sticks-e2e").resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "RAY_API_SERVER"))}
    env.pop("REDIS_URL", None)
    env.update(ray_head.auth_env, PYTHONPATH=f"{REPO}{os.pathsep}{games}")  # the game imports here, from outside REPO
    argv = [
        sys.executable, "-m", "cluster.run.cli", "submit", "--address", ray_head.address,
        "--config", "configs/tictactoe_cluster_test.yaml", "--set", "game.name=sticks:env", "--set", "run.total_env_steps=6000",
        "--redis-url", redis_url, "--run-dir", str(run_dir), "--resume", "auto",
    ]
    job_id = ""
    try:
        done = subprocess.run(argv, env=env, cwd=str(REPO), timeout=JOB_TIMEOUT_S, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(done.stdout)  # shown with -s, and by pytest when the test fails
        found = re.search(r"^Submitted job (\S+): selfplay train (.*)$", done.stdout, re.MULTILINE)
        assert found, done.stdout
        job_id = found.group(1)
        assert found.group(2) == (
            "--config configs/tictactoe_cluster_test.yaml --set game.name=sticks:env --set run.total_env_steps=6000 "
            f"--run-dir {run_dir} --resume auto"
        )
        assert f"ray job logs --follow {job_id} --address {ray_head.address}" in done.stdout
        assert f"--run {run_dir.name}" in done.stdout
        assert done.returncode == 0 and "job status: SUCCEEDED" in done.stdout, done.stdout[-4000:]
    finally:
        if job_id:
            client = JobSubmissionClient(ray_head.address, headers={"Authorization": f"Bearer {ray_head.auth_env['RAY_AUTH_TOKEN']}"})
            if not client.get_job_status(job_id).is_terminal():
                client.stop_job(job_id)
                wait_for_job(client, job_id, timeout_s=60)
    store = LeagueStore(redis_connect(redis_url), RunKeys("selfplay", run_dir.name))
    state = store.load()
    assert state is not None and state.learner_version > 0 and state.games_total > 0
    assert store.meta()["game"] == "sticks:env" and store.meta()["running"] is False

"""Submit `selfplay train` to a running Ray cluster through the Ray Jobs API.

This is the engine behind a `selfplay submit` command: it packs the local checkout
as the job's working_dir (without the virtualenv, git history or run outputs),
forwards REDIS_URL, submits, and optionally follows the logs until the job ends.

    status = submit_job("http://HEAD:8265", ["--config", "configs/connect_four_cluster.yaml"])

Authentication is Ray's, not ours: when the cluster runs with token auth, the
client process needs RAY_AUTH_MODE=token plus the token in RAY_AUTH_TOKEN,
RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; JobSubmissionClient then sends it as a
bearer header (see docs/cluster.md). We never copy the token into the job.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shlex
import shutil
import site
import socket
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO
from urllib.parse import urlsplit

from ray.exceptions import AuthenticationError
from ray.job_submission import JobStatus, JobSubmissionClient

# Paths (gitignore syntax) never shipped to the cluster. The virtualenv alone can be
# gigabytes and Ray rejects working_dir packages over its size limit; run outputs
# and caches are local artefacts the job must not see.
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".venv",
    ".git",
    "runs/",
    "__pycache__",
    ".pytest_cache",
    "*.egg-info",
)

# Local environment variables forwarded to the job when set. REDIS_URL may carry a
# password: it becomes part of the job's runtime_env, which anyone with dashboard
# access can read (such a person can run arbitrary code on the cluster anyway).
PASSTHROUGH_ENV_VARS: tuple[str, ...] = ("REDIS_URL",)

# Ray lets these override any address passed to JobSubmissionClient.
_RAY_ADDRESS_ENV_VARS: tuple[str, ...] = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")


PROJECT_PACKAGES: tuple[str, ...] = ("actors", "cluster", "learner", "league")
"""This project's top-level packages: the working directory (or the image) carries them."""


class ClusterConnectionError(ConnectionError):
    """The Ray dashboard / Jobs API could not be reached or refused the client."""


def train_args(config: str, sets: list[str] | None = None, run_dir: str = "", resume: bool | str = False) -> list[str]:
    """The arguments after `selfplay train` for a job: --config, each --set, --run-dir, --resume [auto]."""
    args = ["--config", config]
    for s in sets or []:
        args += ["--set", s]
    if run_dir:
        args += ["--run-dir", run_dir]
    if resume == "auto":
        args += ["--resume", "auto"]
    elif resume:
        args.append("--resume")
    return args


def config_in_working_dir(config: str, working_dir: str) -> str:
    """The config file's path as the job sees it: relative to the shipped working directory, which
    must hold it (the job runs in a copy of that directory, not on this machine's disk)."""
    path, root = os.path.realpath(config), os.path.realpath(working_dir)
    if os.path.commonpath([path, root]) != root:
        raise ValueError(
            f"config file {config} is outside the working directory {working_dir} that is shipped to the cluster: "
            "move it into that directory, or pass --working-dir a folder holding both"
        )
    return os.path.relpath(path, root)


def _installed(path: str) -> bool:
    """Whether `path` lies in an installed site-packages (there, the image must provide it)."""
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")} | set(site.getsitepackages())
    roots.add(site.getusersitepackages())
    return any(os.path.commonpath([path, os.path.realpath(r)]) == os.path.realpath(r) for r in roots if os.path.isdir(r))


def game_py_modules(game_name: str, working_dir: str) -> list[str]:
    """The local module to ship as the job's py_modules for a game given as an import path
    ('mygame:env', 'mypkg.games:make'): its top-level package folder, or its single .py file.
    Nothing for a built-in game, this project's own packages, a module that sits at the top of the
    working directory (shipped with it, and on the job's PYTHONPATH), or one installed in
    site-packages (the cluster's image must have it: docs/custom_game.md)."""
    module_name, colon, _ = game_name.partition(":")
    if not colon and "." not in module_name:
        return []  # a built-in PettingZoo or mpe2 name
    top = module_name.split(".")[0]
    if top in PROJECT_PACKAGES:
        return []
    found = importlib.util.find_spec(top)
    if found is None:
        return []  # not importable here: the local config check has said so already
    if found.submodule_search_locations:
        path = list(found.submodule_search_locations)[0]
    elif found.origin and found.origin.endswith(".py"):
        path = found.origin
    else:
        return []  # a built-in or compiled module: only an image can carry it
    path, root = os.path.realpath(path), os.path.realpath(working_dir)
    if os.path.dirname(path) == root or _installed(path):
        return []
    return [path]


def packaged_py_modules(paths: list[str], scratch: str) -> list[str]:
    """`paths` as Ray's job client can upload them: folders as they are, and each single-file
    module `name.py` copied into a package folder `scratch/name/__init__.py` (imported as `name`
    all the same). Ray 2.60's JobSubmissionClient packs every local py_modules entry as a folder
    and fails on a .py file ("must be an existing directory")."""
    out = []
    for path in paths:
        if os.path.isfile(path) and path.endswith(".py"):
            folder = os.path.join(scratch, os.path.basename(path)[: -len(".py")])
            os.makedirs(folder, exist_ok=False)
            shutil.copyfile(path, os.path.join(folder, "__init__.py"))
            path = folder
        out.append(path)
    return out


def follow_up_lines(address: str, job_id: str, run_id: str = "") -> list[str]:
    """The commands to follow, stop and watch a submitted job."""
    league = f"selfplay league --redis-url \"$REDIS_URL\" {f'--run {run_id} ' if run_id else ''}--watch 10"
    return [
        f"Follow its logs: ray job logs --follow {job_id} --address {address}",
        f"Stop it:         ray job stop {job_id} --address {address}   (it writes a checkpoint first)",
        f"Its league:      {league}   (the run's Redis, as this machine reaches it)",
    ]


def build_entrypoint(entrypoint_args: list[str]) -> str:
    """Shell command the job runs: `selfplay train` followed by the quoted args."""
    if entrypoint_args and entrypoint_args[0] == "train":
        raise ValueError(
            "entrypoint_args are the arguments after `selfplay train`; "
            f"drop the leading 'train' from {entrypoint_args!r}."
        )
    # The job supervisor runs the entrypoint through a shell, so quote each arg.
    return shlex.join(["selfplay", "train", *entrypoint_args])


def build_runtime_env(
    working_dir: str = ".",
    env: Mapping[str, str] | None = None,
    runtime_env_extra: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The runtime_env for the job: working_dir, excludes and env_vars.

    env_vars are PASSTHROUGH_ENV_VARS found in `environ` (default: os.environ),
    then `env` on top. In `runtime_env_extra`, "excludes" extend DEFAULT_EXCLUDES,
    "env_vars" are merged last, and any other key (pip, py_modules, ...) is
    passed through unchanged.
    """
    environ = os.environ if environ is None else environ
    path = os.path.abspath(working_dir)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"working_dir {working_dir!r} is not a directory; pass the repository root "
            "(the folder holding pyproject.toml and configs/)."
        )
    extra = dict(runtime_env_extra or {})
    if "working_dir" in extra:
        raise ValueError("Set the working directory with working_dir=, not in runtime_env_extra.")

    env_vars = {name: environ[name] for name in PASSTHROUGH_ENV_VARS if environ.get(name)}
    env_vars.update(env or {})
    env_vars.update(extra.pop("env_vars", None) or {})
    bad = sorted(k for k, v in env_vars.items() if not isinstance(v, str))
    if bad:
        raise TypeError(f"runtime_env env_vars must be strings; convert the values of {bad}.")

    extra_excludes = list(extra.pop("excludes", None) or [])
    runtime_env: dict[str, Any] = {
        "working_dir": path,
        "excludes": [*DEFAULT_EXCLUDES, *extra_excludes],
    }
    if env_vars:
        runtime_env["env_vars"] = env_vars
    runtime_env.update(extra)
    return runtime_env


def _unreachable(address: str, reason: str) -> ClusterConnectionError:
    return ClusterConnectionError(
        f"Cannot reach the Ray Jobs API at {address} ({reason}). Check that the cluster "
        "is up and that the address is the dashboard address, http://HEAD:8265 (for "
        "`ray up`: `ray get-head-ip deploy/ray-cluster.yaml`; for KubeRay: "
        "`kubectl port-forward svc/<cluster>-head-svc 8265:8265`), and that port 8265 "
        "is reachable from this machine. If the cluster uses token auth, set "
        "RAY_AUTH_MODE=token and provide the token (RAY_AUTH_TOKEN or ~/.ray/auth_token)."
    )


def _check_reachable(address: str, timeout_s: float) -> None:
    """Fail fast with a clear message; Ray's own client has no connect timeout."""
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"Address {address!r} is not a dashboard URL; use http://HEAD:8265 "
            "(the Ray dashboard / Jobs API address, not ray:// or HEAD:6379)."
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise _unreachable(address, f"{type(exc).__name__}: {exc}") from exc


def connect(address: str, connect_timeout_s: float = 5.0) -> JobSubmissionClient:
    """A JobSubmissionClient for `address`, or a ClusterConnectionError saying what to fix."""
    for name in _RAY_ADDRESS_ENV_VARS:
        override = os.environ.get(name)
        if override and override.rstrip("/") != address.rstrip("/"):
            # Ray would silently submit to the env var's cluster instead.
            raise ValueError(
                f"{name}={override} is set and Ray would use it instead of {address}; "
                f"unset {name} or pass the same address."
            )
    _check_reachable(address, connect_timeout_s)
    try:
        return JobSubmissionClient(address)
    except ConnectionError as exc:
        raise _unreachable(address, str(exc)) from exc
    except AuthenticationError as exc:
        raise ClusterConnectionError(
            f"The Ray cluster at {address} rejected this client's credentials. Set "
            "RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN (or the file "
            "~/.ray/auth_token, or a file named by RAY_AUTH_TOKEN_PATH). Ray's message: "
            f"{exc}"
        ) from exc


def wait_for_job(
    client: JobSubmissionClient,
    job_id: str,
    timeout_s: float,
    poll_interval_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> JobStatus:
    """Poll until the job reaches a terminal status; TimeoutError after timeout_s.

    The job keeps running on the cluster after a timeout; only the waiting stops.
    """
    deadline = clock() + timeout_s
    while True:
        status = client.get_job_status(job_id)
        if status.is_terminal():
            return status
        remaining = deadline - clock()
        if remaining <= 0:
            raise TimeoutError(
                f"Job {job_id} is still {status} after {timeout_s:g}s. It keeps running; "
                f"check it with `ray job status {job_id}` or stop it with "
                f"`ray job stop {job_id}` (add --address http://HEAD:8265)."
            )
        sleep(min(poll_interval_s, remaining))


async def _tail_logs(client: JobSubmissionClient, job_id: str, out: TextIO) -> None:
    async for chunk in client.tail_job_logs(job_id):
        out.write(chunk)
        out.flush()


def follow_logs(client: JobSubmissionClient, job_id: str, out: TextIO | None = None) -> None:
    """Stream the job's logs to `out` (default stdout) until the job ends."""
    # tail_job_logs is an async generator over a websocket; run it to completion here.
    asyncio.run(_tail_logs(client, job_id, out or sys.stdout))


def submit_job(
    address: str,
    entrypoint_args: list[str],
    working_dir: str = ".",
    env: dict[str, str] | None = None,
    follow: bool = True,
    runtime_env_extra: dict | None = None,
    *,
    connect_timeout_s: float = 5.0,
    finish_timeout_s: float = 60.0,
    out: TextIO | None = None,
    run_id: str = "",
) -> JobStatus:
    """Submit `selfplay train <entrypoint_args>` and return the job's status.

    With follow=True, logs stream to `out` and the returned status is terminal
    (finish_timeout_s bounds the wait for it once the log stream closes). With
    follow=False the status is the one right after submission, usually PENDING.
    JobStatus is a str enum, so the result compares equal to "SUCCEEDED" etc. `run_id` (the run
    directory's name) goes into the printed `selfplay league` command.
    """
    out = out or sys.stdout
    entrypoint = build_entrypoint(entrypoint_args)
    runtime_env = build_runtime_env(working_dir, env, runtime_env_extra)
    client = connect(address, connect_timeout_s)
    with tempfile.TemporaryDirectory(prefix="selfplay-py-modules-") as scratch:  # read by the upload below
        if runtime_env.get("py_modules"):
            runtime_env["py_modules"] = packaged_py_modules(runtime_env["py_modules"], scratch)
        job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
    print(f"Submitted job {job_id}: {entrypoint}", file=out, flush=True)
    print("\n".join(follow_up_lines(address, job_id, run_id)), file=out, flush=True)
    if not follow:
        return client.get_job_status(job_id)
    follow_logs(client, job_id, out)
    status = wait_for_job(client, job_id, timeout_s=finish_timeout_s)
    print(f"Job {job_id} finished: {status}", file=out, flush=True)
    return status

"""A small in-process fake of the Ray dashboard's Jobs API (aiohttp, a ray[default] dependency), for
the submit tests: the real JobSubmissionClient talks to it over HTTP, so what goes over the wire
(the uploaded working_dir package, the submit request, the log websocket, status polling) is what
the tests see. Shared by tests/test_submit_unit.py and tests/test_submit_cli.py."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest
from aiohttp import web


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


def serve_fake_api():
    """A test fixture's body: `yield from serve_fake_api()` gives a started FakeJobsApi (its .url set)."""
    api = FakeJobsApi()
    url, stop = api.serve()
    api.url = url
    yield api
    stop()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with-block exits


def _project_tree(root: Path) -> Path:
    (root / "cluster").mkdir(parents=True)
    (root / "cluster" / "cli.py").write_text("print('hi')\n")
    (root / "configs").mkdir()
    (root / "configs" / "c.yaml").write_text("game: {}\n")
    for junk in (".venv/lib/big.bin", ".git/HEAD", "runs/r1/ckpt.pt", "cluster/__pycache__/x.pyc"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_bytes(b"x" * 16)
    return root


# The fixtures both submit test modules use (each imports them by name).
@pytest.fixture(autouse=True)
def no_ray_address_override(monkeypatch):
    # A RAY_ADDRESS in the developer's shell would redirect every client the tests make.
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_api():
    yield from serve_fake_api()

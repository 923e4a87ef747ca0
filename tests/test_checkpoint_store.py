"""Checkpoints in object storage (checkpoint.uri), against a real S3-compatible server (moto's server
mode, started here on a free port) reached through s3fs as a user's run would: each checkpoint under a
name of its own, then the pointer; a crash between the two leaves the previous checkpoint as the
latest; `--resume` reads it back with torch.load(weights_only=True)."""

from __future__ import annotations

import json
import secrets
import socket

import pytest

from tests.needs import needs

needs("s3fs", reason="checkpoints in S3 need the s3 extra: pip install -e '.[test]'")
moto_server = needs("moto.server", reason="the S3 tests start moto's server: pip install -e '.[test]'")

from actors.games import load_game  # noqa: E402
from cluster.events import CheckpointWritten, LearnerStarted, RunStarted  # noqa: E402
from cluster.run.cli import main  # noqa: E402
from cluster.run.resume import checkpoint_to_resume  # noqa: E402
from fault_support import EventWatch, small_config  # noqa: E402
from learner.checkpoint import Checkpoint, CheckpointError, decode_checkpoint, encode_checkpoint, model_spec  # noqa: E402
from learner.checkpoint_store import POINTER, ObjectCheckpoints, open_checkpoints  # noqa: E402
from learner.learner import Learner  # noqa: E402


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3 API on loopback; clients find it through AWS_ENDPOINT_URL_S3 (docs/cluster.md)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        yield endpoint
    server.stop()


@pytest.fixture
def bucket(s3_endpoint) -> str:
    name = f"ckpt-{secrets.token_hex(4)}"
    ObjectCheckpoints(f"s3://{name}").fs.mkdir(name)
    return name


def _payload(version: int) -> bytes:
    cfg = small_config()
    _, spec = load_game(cfg.game.name)
    learner = Learner(spec, cfg.model, cfg.ppo, cfg.learner)
    learner.version = version
    meta = model_spec(spec.name, spec.obs_shape, spec.num_actions, cfg.model)
    return encode_checkpoint(Checkpoint(version, learner.state_dict(), meta, cfg.to_dict(), {"env_steps": 10 * version, "games": version}))


def test_objects_under_names_of_their_own_then_the_pointer_and_only_the_newest_kept(bucket):
    store = open_checkpoints(f"s3://{bucket}/runs/r1/checkpoints", keep=2)
    assert isinstance(store, ObjectCheckpoints) and store.latest_version() is None
    written = [store.save(_payload(v), v) for v in (2, 4, 6)]
    assert all(w.startswith(f"s3://{bucket}/runs/r1/checkpoints/ckpt-v0000000") for w in written)
    assert store.latest_version() == 6 and store.versions() == [4, 6]  # version 2 deleted after the pointer moved
    pointer = json.loads(store.fs.cat_file(f"{bucket}/runs/r1/checkpoints/{POINTER}"))
    assert written[-1].endswith(pointer["object"]) and pointer["version"] == 6
    ckpt = decode_checkpoint(store.read(6), "s3 checkpoint")  # torch.load(weights_only=True)
    assert ckpt.version == 6 and ckpt.progress == {"env_steps": 60, "games": 6}
    assert decode_checkpoint(store.read(4)).version == 4


def test_a_crash_before_the_pointer_leaves_the_previous_checkpoint_as_the_latest(bucket, monkeypatch):
    store = open_checkpoints(f"s3://{bucket}/run", keep=3)
    store.save(_payload(2), 2)
    real_pipe = store.fs.pipe_file

    def crash_at_the_pointer(path, data, **kw):
        if path.endswith(POINTER):
            raise KeyboardInterrupt("the driver was killed here")
        return real_pipe(path, data, **kw)

    monkeypatch.setattr(store.fs, "pipe_file", crash_at_the_pointer)
    with pytest.raises(KeyboardInterrupt):
        store.save(_payload(4), 4)
    monkeypatch.undo()
    store.fs.pipe_file(f"{bucket}/run/ckpt-v00000006-deadbeef.pt", _payload(6)[:1000])  # a torn upload, never named
    reader = open_checkpoints(f"s3://{bucket}/run")  # a resumed driver
    assert reader.latest_version() == 2 and reader.versions() == [2]
    assert decode_checkpoint(reader.read(2)).version == 2
    reader.save(_payload(4), 4)  # the resumed run writes version 4 again: the orphans go
    names = sorted(p.rsplit("/", 1)[-1] for p in reader.fs.ls(f"{bucket}/run", detail=False))
    assert len(names) == 3 and names[-1] == POINTER and reader.versions() == [2, 4]


def test_a_damaged_pointer_or_a_missing_object_says_what_to_do(bucket):
    store = open_checkpoints(f"s3://{bucket}/run")
    store.save(_payload(2), 2)
    name = json.loads(store.fs.cat_file(f"{bucket}/run/{POINTER}"))["object"]
    store.fs.rm(f"{bucket}/run/{name}")
    with pytest.raises(CheckpointError, match=r"names ckpt-v00000002-\w+\.pt, which is gone; point it at an older checkpoint"):
        store.read(2)
    store.fs.pipe_file(f"{bucket}/run/{POINTER}", b"{\"vers")
    with pytest.raises(CheckpointError, match=r"pointer .*latest.json is unreadable .*delete it"):
        store.latest_version()


def test_resume_reads_the_newest_checkpoint_from_the_store_with_storage_options(bucket, s3_endpoint, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")  # the endpoint from checkpoint.storage_options instead
    cfg = small_config(f"checkpoint.uri=s3://{bucket}/run/checkpoints", f"checkpoint.storage_options={{endpoint_url: '{s3_endpoint}'}}")
    c = cfg.checkpoint
    store = open_checkpoints(c.uri, c.keep, c.storage_options)
    store.save(_payload(8), 8)
    _, spec = load_game(cfg.game.name)
    start = checkpoint_to_resume(cfg, spec, tmp_path / "run", store, "auto")
    assert start is not None and start.checkpoint_version == 8 and start.env_steps == 80
    assert checkpoint_to_resume(cfg, spec, tmp_path / "run", open_checkpoints(f"s3://{bucket}/elsewhere", 3, c.storage_options), "auto") is None


def test_a_run_directory_in_object_storage_is_refused_with_the_way_to_do_it(capsys, tmp_path):
    assert main(["train", "--config", "configs/tictactoe_smoke.yaml", "--run-dir", "s3://bucket/runs/c4"]) == 2
    err = capsys.readouterr().err
    assert "the run directory s3://bucket/runs/c4 must be local" in err and "--set checkpoint.uri=s3://BUCKET/PATH" in err


@pytest.mark.ray
def test_a_run_checkpoints_into_s3_and_a_retried_job_continues_from_there(local_ray, bucket, tmp_path):
    from cluster.run.trainer import run_training

    uri = f"s3://{bucket}/selfplay/run/checkpoints"
    cfg = small_config("run.max_versions=200", f"checkpoint.uri={uri}")

    def attempt(run_dir, versions: int) -> EventWatch:
        watch = EventWatch()
        watch.stop_when = lambda w: bool(w.of(LearnerStarted)) and w.version() >= w.of(LearnerStarted)[0].version + versions
        run_training(cfg, run_dir, log=lambda line: None, resume="auto", observers=[watch])
        return watch

    first = attempt(tmp_path / "node-a" / "run", 4)  # the job's first try, on one node
    written = first.of(CheckpointWritten)
    assert written and all(str(w.path).startswith(uri + "/ckpt-v") for w in written)
    assert not (tmp_path / "node-a" / "run" / "checkpoints").exists()
    stopped_at = open_checkpoints(uri).latest_version()
    assert stopped_at == written[-1].version >= 4
    # The retry runs on a node whose disk never saw the run: the checkpoint comes from S3. (The league
    # comes from the run's Redis: here that node's copy of the embedded Redis data.)
    import shutil

    shutil.copytree(tmp_path / "node-a" / "run" / "redis", tmp_path / "node-b" / "run" / "redis")
    second = attempt(tmp_path / "node-b" / "run", 2)
    [started] = second.of(RunStarted)
    assert started.resumed_from == stopped_at and second.of(LearnerStarted)[0].version == stopped_at
    assert open_checkpoints(uri).latest_version() > stopped_at

"""Secrets are written nowhere: the config as written (cluster/config.py written_config) has no
Redis password and no secret storage option; they come from the command line or the environment
on each start (a real password-protected redis-server). The whole run: tests/test_lifecycle_ray.py."""

from __future__ import annotations

import pytest

from cluster.config import written_config
from cluster.run.resume import config_changes
from cluster.stores.connection import RedisUnavailable, connect, resolve_url, with_password
from fault_support import small_config
from learner.checkpoint import CheckpointError
from learner.checkpoint_store import open_checkpoints


def test_the_written_config_has_no_password_and_no_secret_storage_option():
    cfg = small_config(
        "redis.url=redis://user:hunter2@redis.example:6379/0",
        "checkpoint.uri=memory://bucket/run",
        "checkpoint.storage_options={key: AKIA1, secret: s3cr3t, endpoint_url: 'http://minio:9000', client_kwargs: {aws_session_token: sessi0n}}",
    )
    written = written_config(cfg)
    assert written["redis"]["url"] == "redis://user:***@redis.example:6379/0"
    assert written["checkpoint"]["storage_options"] == {
        "key": "***", "secret": "***", "endpoint_url": "http://minio:9000", "client_kwargs": {"aws_session_token": "***"},
    }
    assert "hunter2" not in repr(written) and "s3cr3t" not in repr(written) and "sessi0n" not in repr(written)
    assert cfg.redis.url.endswith("hunter2@redis.example:6379/0")  # the run itself keeps what it was given
    assert written_config(written) == written  # idempotent: a checkpoint's config compares as written


def test_a_resume_with_the_password_given_again_reports_no_config_change():
    old = small_config("redis.url=redis://:old-password@h:6379/0").to_dict()  # a checkpoint of an older version held it
    new = small_config("redis.url=redis://:new-password@h:6379/0")
    assert config_changes(written_config(old), written_config(new)) == ()
    moved = small_config("redis.url=redis://:new-password@elsewhere:6379/0")
    assert config_changes(written_config(old), written_config(moved)) == ("redis.url: 'redis://:***@h:6379/0' -> 'redis://:***@elsewhere:6379/0'",)


def test_the_password_comes_from_redis_password_or_the_url_given_again(redis_server, monkeypatch):
    written = written_config(small_config(f"redis.url={redis_server.url}"))["redis"]["url"]
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(RedisUnavailable, match=r"password .* was removed .*--redis-url redis://:PASSWORD@.*REDIS_PASSWORD"):
        connect(written)
    monkeypatch.setenv("REDIS_PASSWORD", redis_server.password)
    assert connect(written).ping()
    bare = written.replace(":***@", "")
    assert with_password(bare) == redis_server.url and connect(bare).ping()  # a URL given without one
    assert with_password(redis_server.url) == redis_server.url  # a password in the URL wins
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert resolve_url(written) == redis_server.url  # a written config's URL gives way to REDIS_URL
    assert resolve_url("redis://other:6379/0") == "redis://other:6379/0"  # a configured URL with nothing removed wins, as before


def test_a_storage_option_written_as_stars_is_refused_with_what_to_do():
    pytest.importorskip("fsspec")
    with pytest.raises(CheckpointError, match=r"checkpoint.storage_options.client_kwargs.token was removed .*--set"):
        open_checkpoints("memory://bucket/run", 3, {"client_kwargs": {"token": "***"}})

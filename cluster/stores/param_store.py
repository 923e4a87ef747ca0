"""The Redis parameter store: versioned weights the learner publishes and actors poll.

- publish(): writes the weights blob and bumps the version key atomically (Lua), refusing a version
  that is not newer (the same weights again are a no-op, so a retried publish is safe), and trims
  old blobs to the last `keep_versions`.
- actors poll `latest_version()` (one GET of a small integer) and fetch the blob only on change.
- snapshots are separate keys written once with SET NX: once written they never change, so a past
  opponent can never be aliased to the live weights.
Weights are msgpack (learner/wire.py), never pickle.
"""

from __future__ import annotations

import numpy as np
import redis

from cluster.stores.keys import PUBLISH_WEIGHTS, RunKeys
from learner.wire import PayloadError, decode_weights, encode_weights

class StaleVersionError(ValueError):
    """A publish tried to go back in versions (e.g. two learners writing to one run)."""


class SnapshotConflictError(ValueError):
    """A snapshot id already holds different weights; snapshots are immutable."""


class ParamStore:
    def __init__(self, client: redis.Redis, keys: RunKeys, keep_versions: int = 4) -> None:
        self.r = client
        self.keys = keys
        self.keep_versions = keep_versions
        self._publish = client.register_script(PUBLISH_WEIGHTS)

    def publish(self, version: int, tensors: dict[str, np.ndarray], meta: dict | None = None) -> None:
        blob = encode_weights(tensors, version, meta)
        k = self.keys
        try:
            self._publish(keys=[k.param_version, k.weights_prefix, k.param_versions], args=[version, blob, self.keep_versions])
        except redis.ResponseError as exc:
            if "STALE" in str(exc):
                if self._holds(version, tensors):
                    return  # already published (a retry whose first reply was lost, or a resume): idempotent
                raise StaleVersionError(
                    f"refusing to publish version {version}: {exc}. Is another learner writing to run {k.run_id!r}?"
                ) from exc
            raise

    def _holds(self, version: int, tensors: dict[str, np.ndarray]) -> bool:
        """True if `version` is the latest published one and holds exactly these weights."""
        if self.latest_version() != version:
            return False
        got = self.fetch(version)
        return got is not None and list(got[1]) == list(tensors) and all(
            np.array_equal(got[1][k], v) and got[1][k].dtype == v.dtype for k, v in tensors.items()
        )

    def latest_version(self) -> int:
        """The newest published version, -1 when nothing is published yet. Cheap: one GET."""
        raw = self.r.get(self.keys.param_version)
        return -1 if raw is None else int(raw)

    def holds_weights(self, version: int) -> bool:
        """Whether the weights of `version` are still there (one EXISTS: a lost key is republished)."""
        return bool(self.r.exists(self.keys.weights(version)))

    def fetch(self, version: int | None = None) -> tuple[int, dict[str, np.ndarray]] | None:
        """Weights of `version` (default: latest); None if nothing is published or it was trimmed."""
        if version is None:
            version = self.latest_version()
            if version < 0:
                return None
        raw = self.r.get(self.keys.weights(version))
        if raw is None:
            return None
        try:
            got_version, tensors, _ = decode_weights(raw)
        except PayloadError as exc:
            raise PayloadError(f"weights v{version} in Redis ({self.keys.weights(version)}) cannot be read: {exc}") from exc
        return got_version, tensors

    def poll(self, known_version: int) -> tuple[int, dict[str, np.ndarray]] | None:
        """New weights if a version newer than `known_version` is published, else None."""
        latest = self.latest_version()
        if latest <= known_version:
            return None
        return self.fetch(latest)

    def write_snapshot(self, player_id: str, version: int, tensors: dict[str, np.ndarray]) -> None:
        """Store a frozen copy of weights under `player_id`. Writing the same bytes again is a no-op."""
        blob = encode_weights(tensors, version, {"player_id": player_id})
        key = self.keys.snapshot(player_id)
        if not self.r.set(key, blob, nx=True) and self.r.get(key) != blob:
            raise SnapshotConflictError(f"snapshot {player_id!r} already exists with different weights; snapshots never change")

    def snapshot_from_published(self, player_id: str, version: int) -> None:
        """Freeze the published weights of `version` as a snapshot (a byte copy, not a reference)."""
        got = self.fetch(version)
        if got is None:
            raise KeyError(f"version {version} is no longer in the parameter store (keeps {self.keep_versions})")
        self.write_snapshot(player_id, got[0], got[1])

    def snapshot_payload(self, player_id: str) -> bytes | None:
        """A snapshot's weights as stored (to keep a copy beside the checkpoints)."""
        return self.r.get(self.keys.snapshot(player_id))

    def restore_snapshot(self, player_id: str, payload: bytes) -> None:
        """Put back a snapshot's weights from a kept copy; checked first, written once (SET NX)."""
        decode_weights(payload)  # a damaged copy raises PayloadError here, before Redis holds it
        self.r.set(self.keys.snapshot(player_id), payload, nx=True)

    def fetch_snapshot(self, player_id: str) -> tuple[int, dict[str, np.ndarray]]:
        raw = self.r.get(self.keys.snapshot(player_id))
        if raw is None:
            raise KeyError(f"no snapshot {player_id!r} in run {self.keys.run_id!r}")
        version, tensors, _ = decode_weights(raw)
        return version, tensors

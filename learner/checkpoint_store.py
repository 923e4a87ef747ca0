"""Where checkpoints live: a local directory (learner/checkpoint.py's CheckpointDir) or an object
store reached through fsspec (s3://, gs://, az://, memory://, ...).

An object store has no atomic rename, so the promise "a crash never leaves a broken latest
checkpoint" is kept another way: each checkpoint is written under a name of its own
(ckpt-v<version>-<random>.pt), and only once that write has completed is a small pointer object,
latest.json, written to name it. Readers follow the pointer. A crash before the pointer is written
leaves the previous pointer, naming the previous complete checkpoint; the orphaned object is deleted
by a later save. Old checkpoints are deleted only after the pointer has moved past them.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Callable, Protocol

from learner.checkpoint import BLOBS, Checkpoint, CheckpointDir, CheckpointError, _blob_name, decode_checkpoint

POINTER = "latest.json"
_OBJECT = re.compile(r"^ckpt-v(\d{8})-([0-9a-f]+)\.pt$")


class CheckpointStore(Protocol):
    """What the driver and `--resume` need of the place checkpoints live."""

    where: str
    """The directory or URI, for messages."""

    def latest_version(self) -> int | None: ...
    def versions(self) -> list[int]:
        """Versions stored, oldest first (newest_readable falls back through them)."""

    def read(self, version: int) -> bytes: ...
    def save(self, data: bytes, version: int) -> str:
        """Write durably, then drop all but the newest `keep`; returns where it went."""

    def location(self, version: int) -> str:
        """Where the checkpoint of `version` is, for messages."""

    def save_blob(self, name: str, data: bytes) -> None:
        """Keep a named blob (a snapshot's weights) beside the checkpoints; never pruned."""

    def read_blob(self, name: str) -> bytes | None: ...


def is_uri(where: str | Path) -> bool:
    return isinstance(where, str) and "://" in where and not where.startswith("file://")


def open_checkpoints(where: str | Path, keep: int = 3, storage_options: dict | None = None, run_id: str = "") -> "CheckpointStore":
    """Checkpoints in a local directory (a path or file://) or under an fsspec URI (`run_id`: the run
    whose checkpoints these are; an object store holding another run's is refused at the first save)."""
    if is_uri(where):
        return ObjectCheckpoints(str(where), keep, storage_options or {}, run_id)
    return CheckpointDir(str(where).removeprefix("file://"), keep)


def _refuse_redacted(options: dict, where: str = "checkpoint.storage_options") -> None:
    """A secret written out as *** (cluster/config.py's written_config: a config.yaml given again)
    is not a credential: say how to give it."""
    for key, value in options.items():
        if isinstance(value, dict):
            _refuse_redacted(value, f"{where}.{key}")
        elif value == "***":
            raise CheckpointError(
                f"{where}.{key} was removed when the config was written out (secrets are never stored): give it again "
                f"with --set {where}.{key}=VALUE, or leave credentials to the store's environment variables (AWS_ACCESS_KEY_ID, ...)"
            )


class ObjectCheckpoints:
    """The checkpoints of one run under an fsspec URI: ckpt-v<version>-<random>.pt objects and the
    latest.json pointer to the newest complete one; the newest `keep` versions are kept."""

    def __init__(self, uri: str, keep: int = 3, storage_options: dict | None = None, run_id: str = "") -> None:
        try:
            import fsspec
        except ImportError as exc:
            raise CheckpointError(f"checkpoints in {uri} need fsspec and the store's backend: pip install -e '.[s3]' (or gcsfs, adlfs, ...)") from exc
        self.where, self.keep, self.run_id = uri.rstrip("/"), keep, run_id
        _refuse_redacted(storage_options or {})
        protocol = fsspec.utils.get_protocol(uri)
        try:
            # A fresh instance: fsspec caches them by options, and env settings (endpoint) may have changed.
            self.fs = fsspec.filesystem(protocol, skip_instance_cache=True, **(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise CheckpointError(f"cannot open {uri}: {exc}. Install the fsspec backend for {protocol}:// (s3: pip install -e '.[s3]')") from exc
        self.root = self.fs._strip_protocol(self.where)

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def _pointer(self) -> dict | None:
        try:
            raw = self.fs.cat_file(self._path(POINTER))
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
            if not (isinstance(doc.get("version"), int) and _OBJECT.match(doc.get("object", ""))):
                raise ValueError("missing version or object")
        except (ValueError, AttributeError) as exc:
            raise CheckpointError(
                f"the checkpoint pointer {self.where}/{POINTER} is unreadable ({exc}); delete it and write "
                f'{{"version": V, "object": "ckpt-v...pt"}} naming the newest complete checkpoint there'
            ) from exc
        return doc

    def _objects(self) -> dict[str, int]:
        """Checkpoint object name -> version, of everything stored (complete or orphaned)."""
        try:
            names = [p.rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]
        except FileNotFoundError:
            return {}
        return {n: int(m.group(1)) for n in names if (m := _OBJECT.match(n))}

    def latest_version(self) -> int | None:
        doc = self._pointer()
        return None if doc is None else doc["version"]

    def versions(self) -> list[int]:
        """Versions stored, up to the pointer's (an object past it was never completed)."""
        newest = self.latest_version()
        return [] if newest is None else sorted({v for v in self._objects().values() if v <= newest})

    def location(self, version: int) -> str:
        return f"{self.where}/{self._name(version)}"

    def _name(self, version: int) -> str:
        doc = self._pointer()
        if doc is not None and doc["version"] == version:
            return doc["object"]
        names = sorted(n for n, v in self._objects().items() if v == version)
        if not names:
            raise CheckpointError(f"no checkpoint of version {version} in {self.where}")
        return names[-1]

    def read(self, version: int) -> bytes:
        name = self._name(version)
        try:
            return self.fs.cat_file(self._path(name))
        except FileNotFoundError as exc:
            raise CheckpointError(
                f"{self.where}/{POINTER} names {name}, which is gone; point it at an older checkpoint that exists, or delete it to start afresh"
            ) from exc

    def save_blob(self, name: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(f"{BLOBS}/{_blob_name(name)}"), data)  # an object write is whole or absent

    def read_blob(self, name: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._path(f"{BLOBS}/{_blob_name(name)}"))
        except FileNotFoundError:
            return None

    def save(self, data: bytes, version: int) -> str:
        self._refuse_other_run(self._pointer())
        name = f"ckpt-v{version:08d}-{secrets.token_hex(4)}.pt"
        self.fs.pipe_file(self._path(name), data)  # complete (or absent) before the pointer names it
        doc = {"version": version, "object": name, "saved_at": time.time(), **({"run": self.run_id} if self.run_id else {})}
        self.fs.pipe_file(self._path(POINTER), json.dumps(doc).encode())
        now = self._pointer()
        if now is not None and now.get("object") == name:  # another writer moved the pointer meanwhile: delete nothing
            self._prune(version, name)
        return f"{self.where}/{name}"

    def _refuse_other_run(self, pointer: dict | None) -> None:
        """Two runs under one prefix would prune (and overwrite the pointer to) each other's checkpoints."""
        owner = (pointer or {}).get("run")
        if self.run_id and owner and owner != self.run_id:
            raise CheckpointError(
                f"{self.where} holds the checkpoints of run {owner!r}, not of {self.run_id!r}: give each run a checkpoint.uri "
                "of its own (e.g. s3://BUCKET/runs/RUN_ID)"
            )

    def _prune(self, newest: int, current: str) -> None:
        """Delete objects of versions older than the newest `keep`, and orphans of crashed saves: only
        names of the checkpoint pattern directly under this run's own prefix (the run's lease and the
        pointer's run keep other writers away from it)."""
        objects = self._objects()
        kept = sorted({v for v in objects.values() if v <= newest})[-self.keep :]
        # Besides old versions: objects of this version or later that the pointer does not name
        # (orphans of a save that crashed before its pointer, or an earlier save of this version).
        stale = [n for n, v in objects.items() if n != current and (v not in kept or v >= newest)]
        if stale:
            self.fs.rm([self._path(n) for n in stale])


def newest_readable(ckpts: CheckpointStore, log: Callable[[str], None] = print, below: int | None = None) -> tuple[int, bytes, Checkpoint] | None:
    """The newest checkpoint that reads and decodes (at most `below`, if given), with its version
    and payload; each newer one that does not is skipped, saying which and why. None when there is
    none at all; CheckpointError (the newest one's, naming how many were tried) when none reads."""
    versions = sorted(ckpts.versions(), reverse=True)
    if below is not None:
        versions = [v for v in versions if v <= below]
    first: CheckpointError | None = None
    for version in versions:
        source = f"checkpoint {ckpts.location(version)}"
        try:
            data = ckpts.read(version)
            return version, data, decode_checkpoint(data, source)
        except (CheckpointError, OSError) as exc:
            error = exc if isinstance(exc, CheckpointError) else CheckpointError(f"{source} cannot be read ({exc})")
            first = first or error
            log(f"skipped {source}: {error}; trying the one before it")
    if first is not None:
        raise CheckpointError(f"none of the {len(versions)} checkpoints in {ckpts.where} is readable; the newest: {first}") from first
    return None

"""Learner checkpoints: what a run needs to continue exactly where it stopped.

A checkpoint holds the learner's weights, optimizer state, version and RNG states (Learner.state_dict),
the game and network shape they belong to, the config of the run, and the driver's progress counters.
It is a torch file of tensors and plain Python types only, so it is read with
`torch.load(weights_only=True)`: opening a checkpoint never runs code.

Files are written atomically (a temporary file in the same directory, flushed and fsynced, then
renamed over the final name), so a crash mid-write leaves the previous checkpoint as the newest
complete one, never a broken newest one. The newest checkpoint is found by listing the directory;
temporary files never match the checkpoint name pattern.

The learner builds the payload and the driver writes it into the run directory, so checkpoints live
with the run even when the learner runs on another node of a cluster; or into an object store
(checkpoint.uri: learner/checkpoint_store.py), where they outlive the cluster.
"""

from __future__ import annotations

import io
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

FORMAT, FORMAT_V = "selfplay-checkpoint", 1
_NAME = re.compile(r"^ckpt-v(\d{8})\.pt$")
_SPEC_KEYS = ("game", "obs_dim", "num_actions", "hidden_sizes")


class CheckpointError(ValueError):
    """A checkpoint is unreadable or does not fit this run; the message says what to do."""


@dataclass(frozen=True)
class Checkpoint:
    version: int
    learner: dict
    """Learner.state_dict(): model, optimizer, RNG states, sample counters."""
    spec: dict
    """What the weights fit: learner/export.py's policy_meta (game, model, obs_shape, obs_dim, num_actions)."""
    config: dict
    """Config.to_dict() of the run that wrote it."""
    progress: dict
    """The driver's counters when it was written: env_steps, games."""
    saved_at: float = 0.0
    league: dict | None = None
    """The league when it was written (LeagueState.to_dict(): players, ratings, quality, payoff), so
    a run whose Redis lost everything resumes from the checkpoint alone; the snapshots' weights are
    kept beside the checkpoints (CheckpointStore.save_blob), written once each."""
    learners: dict | None = None
    """A run of several learners (one per role, actors/learners.py): {name: LearnerState}, and
    `version` is then the sum of their versions (it names the file and grows with every update of
    any learner), `learner` is empty and `spec` the first learner's. None for a run of one learner,
    whose checkpoint is exactly what it always was."""
    leagues: dict | None = None
    """With `learners`: each learner's league, {name: LeagueState.to_dict()}."""

    def learner_states(self) -> dict[str, "LearnerState"]:
        """Every learner's state by name; a one-learner checkpoint's is named ""."""
        if self.learners is None:
            return {"": LearnerState(self.version, self.learner, self.spec)}
        return dict(self.learners)

    def league_of(self, name: str) -> dict | None:
        return self.league if self.learners is None else (self.leagues or {}).get(name)


@dataclass(frozen=True)
class LearnerState:
    """One learner of a several-learner checkpoint: its version, Learner.state_dict() and spec."""

    version: int
    learner: dict
    spec: dict

    def to_dict(self) -> dict:
        return {"version": int(self.version), "learner": self.learner, "spec": self.spec}


def model_spec(game: str, obs_shape, num_actions: int, model, head: str = "categorical") -> dict:
    """What a checkpoint's weights fit. `obs_shape` may be a bare int; `model` a ModelConfig (or
    a tuple of MLP widths); `head` the game's policy head."""
    from learner.export import policy_meta  # the same record a policy file carries

    return policy_meta(game, model, obs_shape, num_actions, head)


def encode_checkpoint(ckpt: Checkpoint) -> bytes:
    import torch  # here, not at the top: the CLI imports CheckpointError without paying for torch

    buf = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "format_v": FORMAT_V,
            "version": int(ckpt.version),
            "learner": ckpt.learner,
            "spec": ckpt.spec,
            "config": ckpt.config,
            "progress": ckpt.progress,
            "saved_at": float(ckpt.saved_at or time.time()),
            **({"league": ckpt.league} if ckpt.league is not None else {}),
            **({"learners": {n: st.to_dict() for n, st in ckpt.learners.items()}} if ckpt.learners is not None else {}),
            **({"leagues": ckpt.leagues} if ckpt.leagues is not None else {}),
        },
        buf,
    )
    return buf.getvalue()


def decode_checkpoint(data: bytes, source: str = "checkpoint") -> Checkpoint:
    """Read a checkpoint payload; anything but a complete, well-formed one raises CheckpointError."""
    import torch

    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many unrelated types for corrupt or truncated files
        raise CheckpointError(
            f"{source} is corrupt or truncated ({type(exc).__name__}: {str(exc)[:200]}); "
            "delete it to resume from the previous checkpoint"
        ) from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not a selfplay checkpoint")
    if obj.get("format_v") != FORMAT_V:
        raise CheckpointError(f"{source} has format version {obj.get('format_v')!r}; this build reads v{FORMAT_V}")
    for key, tp in (("version", int), ("learner", dict), ("spec", dict), ("config", dict), ("progress", dict)):
        if not isinstance(obj.get(key), tp):
            raise CheckpointError(f"{source}: field {key!r} is missing or not a {tp.__name__}")
    missing = [k for k in _SPEC_KEYS if k not in obj["spec"]]
    if missing:
        raise CheckpointError(f"{source}: spec lacks {missing}")
    for key in ("league", "learners", "leagues"):
        if obj.get(key) is not None and not isinstance(obj[key], dict):
            raise CheckpointError(f"{source}: field {key!r} is not a dict")
    learners = None
    if obj.get("learners") is not None:
        learners = {}
        for name, st in obj["learners"].items():
            if not (isinstance(name, str) and isinstance(st, dict) and isinstance(st.get("version"), int)
                    and isinstance(st.get("learner"), dict) and isinstance(st.get("spec"), dict)):
                raise CheckpointError(f"{source}: learner {name!r} is not a version, a learner state and a spec")
            learners[name] = LearnerState(st["version"], st["learner"], st["spec"])
    return Checkpoint(
        obj["version"], obj["learner"], obj["spec"], obj["config"], obj["progress"], float(obj.get("saved_at", 0.0)),
        obj.get("league"), learners, obj.get("leagues"),
    )


def check_compatible(ckpt: Checkpoint, spec: dict | dict[str, dict], source: str = "checkpoint") -> None:
    """Refuse a checkpoint whose weights cannot fit the network this config builds, naming every
    difference. `spec`: model_spec's record, or {learner name: record} for a run's learners."""
    specs = spec if "game" not in spec else {"": spec}
    states = ckpt.learner_states()
    if sorted(states) != sorted(specs):
        names = lambda d: sorted(d) if sorted(d) != [""] else "one learner"  # noqa: E731
        raise CheckpointError(
            f"{source} holds learners {names(states)}, this config's game trains {names(specs)}. Resume with the run's "
            "own config (config.yaml in its run directory), or start a new run in another --run-dir."
        )
    for name, ours in specs.items():
        _check_spec(states[name].spec, ours, source + (f" (learner {name})" if name else ""))


def _check_spec(saved: dict, spec: dict, source: str) -> None:
    from learner.arch import head_from_meta, model_from_meta

    diffs = [f"{k}: checkpoint {saved.get(k)!r}, config {spec[k]!r}" for k in ("game", "obs_dim", "num_actions") if saved.get(k) != spec[k]]
    if head_from_meta(saved) != head_from_meta(spec):
        diffs.append(f"policy head: checkpoint {head_from_meta(saved)}, game {head_from_meta(spec)}")
    theirs, ours = model_from_meta(saved), model_from_meta(spec)
    a, b = theirs.to_dict(), ours.to_dict()
    used = ours.fields_in_use() | theirs.fields_in_use()
    diffs += [f"model.{k}: checkpoint {a[k]!r}, config {b[k]!r}" for k in a if k in used and a[k] != b[k]]
    if diffs:
        raise CheckpointError(
            f"{source} does not fit this config ({'; '.join(diffs)}). Resume with the run's own config "
            "(config.yaml in its run directory), or start a new run in another --run-dir."
        )


def resume_version(checkpointed: int, published: int) -> int:
    """The version a resumed learner continues from.

    After a clean stop the checkpoint is the newest state. After a crash the parameter store may
    hold versions trained after the last checkpoint: their weights died with the learner, but
    actors and snapshots have seen their numbers, so the learner continues after them and a
    version number never names two different sets of weights.
    """
    return checkpointed if published <= checkpointed else published + 1


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the complete new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename itself durable
    finally:
        os.close(fd)


BLOBS = "snapshots"
"""The folder (or prefix) beside the checkpoints where snapshot weights are kept, one file each."""


def _blob_name(name: str) -> str:
    """A blob's file name: a player id, a role's (`adversary/v000010`) kept in the role's folder."""
    parts = name.split("/")
    if len(parts) > 2 or any(not re.fullmatch(r"[A-Za-z0-9_.-]+", p) or p.startswith(".") for p in parts):
        raise ValueError(f"blob name {name!r} must be letters, digits, _ . - (a league player id, or role/id)")
    return f"{name}.msgpack"


class CheckpointDir:
    """The checkpoints of one run: ckpt-v<version>.pt files, the newest `keep` kept."""

    def __init__(self, path: str | Path, keep: int = 3) -> None:
        self.path = Path(path)
        self.keep = keep

    @property
    def where(self) -> str:
        return str(self.path)

    def location(self, version: int) -> str:
        return str(self.file(version))

    def versions(self) -> list[int]:
        if not self.path.is_dir():
            return []
        found = (_NAME.match(p.name) for p in self.path.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def file(self, version: int) -> Path:
        return self.path / f"ckpt-v{version:08d}.pt"

    def latest(self) -> Path | None:
        versions = self.versions()
        return self.file(versions[-1]) if versions else None

    def latest_version(self) -> int | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def read(self, version: int) -> bytes:
        return self.file(version).read_bytes()

    def save_blob(self, name: str, data: bytes) -> None:
        """Keep a named blob beside the checkpoints (a snapshot's weights), atomically; never pruned."""
        target = self.path / BLOBS / _blob_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)

    def read_blob(self, name: str) -> bytes | None:
        path = self.path / BLOBS / _blob_name(name)
        return path.read_bytes() if path.is_file() else None

    def save(self, data: bytes, version: int) -> Path:
        """Write atomically, then delete all but the newest `keep` (only after the new one is durable)."""
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.file(version)
        atomic_write(target, data)
        for old in self.versions()[: -self.keep]:
            self.file(old).unlink(missing_ok=True)
        return target

"""Where a run starts: fresh, or from its newest checkpoint with the league kept in Redis, or
(`--resume auto`) whichever of the two the run directory and Redis call for.

Everything is checked before anything is written: a refused resume changes nothing. The checkpoint
must fit this config's network, Redis must still hold the run's league and weights that fit, and
the version to continue from is the newer of the checkpoint's and the parameter store's (versions
trained after the last checkpoint are lost, and said so).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from cluster.config import Config, written_config
from cluster.stores.param_store import ParamStore
from league.league import SNAPSHOT, LeagueState
from learner.wire import PayloadError
from learner.checkpoint import check_compatible, model_spec, resume_version
from learner.checkpoint_store import CheckpointStore, newest_readable
from learner.model import InferencePolicy


class RunError(RuntimeError):
    """The run cannot start or continue; the message says what to do."""


@dataclass(frozen=True)
class StartPoint:
    """Where a run starts: fresh (version 0) or from a checkpoint, whose counters it continues."""

    version: int = 0
    checkpoint: bytes | None = None
    checkpoint_version: int = 0
    env_steps: int = 0
    games: int = 0
    train_seconds: float = 0.0  # wall time trained before this start (run.max_seconds counts it)
    config_changes: tuple[str, ...] = ()  # "key: old -> new" against the checkpoint's config
    league: dict | None = None  # the league the checkpoint carries (LeagueState.to_dict()), if any
    learners: tuple[tuple[str, int, dict | None], ...] = ()
    """A run of several learners: (name, its version in the checkpoint, its league) per learner."""
    versions: tuple[tuple[str, int], ...] = ()
    """A run of several learners: the version each continues from (empty: `version` for the one)."""
    file_version: int = -1
    """In one learner's view of a several-learner checkpoint: the checkpoint file's own version."""

    def for_learner(self, name: str) -> "StartPoint":
        """One learner's view: its checkpointed version and league (this start for a run of one)."""
        for n, version, league in self.learners:
            if n == name:
                return dataclasses.replace(
                    self, checkpoint_version=version, version=version, league=league, learners=(), file_version=self.checkpoint_version
                )
        return self

    def with_versions(self, versions: dict[str, int]) -> "StartPoint":
        """This start with each learner's version to continue from (one learner: `version` is its)."""
        if list(versions) == [""]:
            return dataclasses.replace(self, version=versions[""], versions=())
        return dataclasses.replace(self, versions=tuple(versions.items()), version=sum(versions.values()))

    def version_of(self, name: str) -> int:
        return dict(self.versions).get(name, self.version)

    def learner_versions(self, names) -> int | dict[str, int]:
        """What a learner service starts from: one version, or {name: version}."""
        names = list(names)
        return self.version if names == [""] else {n: self.version_of(n) for n in names}


def checkpoint_to_resume(cfg: Config, learners, run_dir: Path, ckpts: CheckpointStore, resume: bool | str, log=print) -> StartPoint | None:
    """The newest checkpoint when resuming, checked against this config; refuses to start a fresh
    run over an existing one. `resume="auto"`: the newest checkpoint if there is one, else None (a
    fresh start, or a league without a checkpoint: see league_without_checkpoint). Reads only: a
    refused resume changes nothing."""
    latest = ckpts.latest_version()
    if resume == "auto":
        resume = latest is not None
    if not resume:
        if latest is not None:
            raise RunError(
                f"{run_dir} already holds a run (checkpoint {ckpts.location(latest)}); continue it with --resume, or choose another --run-dir"
            )
        return None
    if latest is None:
        raise RunError(f"--resume: no checkpoint in {ckpts.where}; start the run without --resume, or name the right --run-dir")
    # A corrupt or truncated newest checkpoint falls back to the newest readable one, said in the log.
    version, data, ckpt = newest_readable(ckpts, log)
    source = f"checkpoint {ckpts.location(version)}"
    specs = {d.name: model_spec(d.spec.name, d.spec.obs_shape, d.spec.num_actions, cfg.model, d.spec.head) for d in _learner_defs(learners)}
    check_compatible(ckpt, specs if list(specs) != [""] else specs[""], source)
    p = ckpt.progress
    changes = config_changes(written_config(ckpt.config), written_config(cfg))  # both as written: a password is no change
    several = tuple((n, st.version, ckpt.league_of(n)) for n, st in ckpt.learner_states().items()) if ckpt.learners is not None else ()
    return StartPoint(
        ckpt.version, data, ckpt.version, int(p.get("env_steps", 0)), int(p.get("games", 0)), float(p.get("train_seconds", 0.0)), changes,
        ckpt.league, several,
    )


def _learner_defs(learners):
    """A run's learners (actors/learners.py), or a game's spec for the one learner of a game without roles."""
    from actors.learners import learner_set

    return learner_set(learners) if hasattr(learners, "obs_shape") else learners


def config_changes(old: dict, new: dict, prefix: str = "") -> tuple[str, ...]:
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return tuple(out)


def league_to_resume(
    cfg, spec, run_id, run_dir, params: ParamStore, existing, start: StartPoint, log, ckpts: CheckpointStore | None = None, label: str = "",
    owner_params: dict[str, ParamStore] | None = None,
) -> tuple[LeagueState, StartPoint]:
    """Check that Redis still holds the run's league and weights that fit, and pick the version to
    continue from. A Redis that lost the run (no persistence, a new instance) is refilled from the
    checkpoint's league and the snapshot weights kept beside it, if the checkpoint carries one."""
    if existing is None and start.league is not None and ckpts is not None:
        existing = league_from_checkpoint(run_id, params, ckpts, start, log, owner_params)
    elif existing is None:
        raise RunError(
            f"run {run_id!r} has no league in this Redis, and its checkpoint carries none (written by an older version): "
            f"resume with the Redis the run used (its embedded data in {run_dir / 'redis'}, or the same --redis-url)"
        )
    _check_published(cfg, spec, run_id, params)
    version = resume_version(start.checkpoint_version, params.latest_version())
    who = f"learner {label}" if label and label != "latest" else "learner"
    log(
        f"resuming run {run_id} from checkpoint {checkpoint_name(start)} at {who} version {start.checkpoint_version} "
        f"({start.env_steps:,} env steps, {start.games:,} games); league: {len(existing.players)} players, "
        f"{existing.games_total:,} games"
    )
    if start.config_changes:
        log("config changed since the checkpoint: " + "; ".join(start.config_changes))
    if version != start.checkpoint_version:
        log(
            f"the parameter store already holds v{version - 1}: versions {start.checkpoint_version + 1}..{version - 1} "
            f"were trained after the last checkpoint and are lost; continuing as v{version}"
        )
    return existing, dataclasses.replace(start, version=version)


def league_from_checkpoint(
    run_id: str, params: ParamStore, ckpts: CheckpointStore, start: StartPoint, log, owner_params: dict[str, ParamStore] | None = None
) -> LeagueState:
    """The checkpoint's league, its snapshots' weights put back into Redis from the copies kept
    beside the checkpoints (an exploiter's snapshot into its own store: `owner_params`, by name).
    Returned unsaved (the caller saves it). Writes only snapshot keys, once each (SET NX): a
    refused or repeated restore loses nothing."""
    state = LeagueState.from_dict(start.league)
    owners = {p.id: p.owner for p in state.players.values() if p.kind == SNAPSHOT}
    snapshots = list(owners)
    missing = []
    for pid in snapshots:
        payload = ckpts.read_blob(pid)
        if payload is None:
            missing.append(pid)
            continue
        try:
            (owner_params or {}).get(owners[pid], params).restore_snapshot(pid, payload)
        except PayloadError as exc:
            raise RunError(f"the kept weights of snapshot {pid} in {ckpts.where} are damaged ({exc}); the league cannot be restored") from exc
    if missing:
        raise RunError(
            f"{len(missing)} snapshots named by the checkpoint's league have no kept weights in {ckpts.where} "
            f"(e.g. {', '.join(missing[:3])}); restore them there, or resume with the Redis the run used"
        )
    state.mark_all_changed()
    log(
        f"Redis holds no league for run {run_id}: restored it from checkpoint {checkpoint_name(start)} "
        f"({len(state.players)} players, {state.games_total:,} games, {len(snapshots)} snapshots' weights); "
        "games reported after that checkpoint are lost"
    )
    return state


def league_without_checkpoint(cfg, spec, run_id, params: ParamStore, existing: LeagueState, log) -> tuple[LeagueState, StartPoint]:
    """`--resume auto` for a run that stopped before its first checkpoint: its league goes on with a
    learner started afresh, numbered past every published version (their weights are lost)."""
    _check_published(cfg, spec, run_id, params)
    version = params.latest_version() + 1
    log(
        f"run {run_id} has a league ({len(existing.players)} players, {existing.games_total:,} games) but no checkpoint "
        f"yet: it stopped before its first. Its league goes on; its learner starts afresh as v{version}"
    )
    return existing, StartPoint(version=version)


def _check_published(cfg, spec, run_id, params: ParamStore) -> None:
    """Refuse a run whose weights in Redis do not fit this config (corrupt ones raise PayloadError)."""
    published = params.fetch()
    if published is not None:
        try:
            InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, head=spec.head).load(published[1], published[0])
        except ValueError as exc:
            raise RunError(f"weights of run {run_id!r} in Redis (v{published[0]}) do not fit this config: {exc}") from exc


def checkpoint_name(start: StartPoint) -> str:
    return f"ckpt-v{start.file_version if start.file_version >= 0 else start.checkpoint_version:08d}.pt"

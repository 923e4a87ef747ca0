"""The run's configuration: the composed Config, loaded strictly from YAML.

Each component owns its section, a small dataclass whose fields are documented where they are
declared: model, ppo and learner in learner/, league in league/, game, rollout and eval in actors/;
redis, run and checkpoint, which only the system around them reads, here. This module composes them
and is the one place that loads, overrides and validates a config. Loading is strict on purpose: an unknown or
misspelt key, or a value of the wrong type, raises ConfigError naming the key, because a typo that
is silently ignored can waste a multi-day run.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from actors.config import EvalConfig, GameConfig, RolloutConfig
from actors.references import ReferencePathError, check_reference_names
from actors.scripted import references_for
from league.config import LeagueConfig
from league.sampling import SAMPLERS
from learner.arch import ModelConfig, augment_group
from learner.config import AUTOCAST_MODES, LearnerConfig, PPOConfig


class _Loader(yaml.SafeLoader):
    """SafeLoader read as YAML 1.2's core schema where PyYAML (YAML 1.1) differs in ways that
    matter to a config: 1e-3 (exponent, no dot) is a float, and only true/false are booleans, so
    `--set game.native=yes` is the string 'yes' (refused for a bool key), not a silent true."""


_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key and what to do."""


@dataclass(frozen=True)
class RedisConfig:
    url: str = ""
    """redis:// or rediss:// URL. Empty: REDIS_URL, else an embedded redis-server. Its password is
    never written out (config.yaml, run metadata, checkpoints hold redis://:***@host...): give the
    URL again with --redis-url on each start, or the password alone in REDIS_PASSWORD."""
    key_prefix: str = "selfplay"
    """Prefix of every key this project writes, so one Redis can hold several runs."""
    keep_versions: int = 4
    """Published weight versions kept for actors (snapshots are kept forever)."""


@dataclass(frozen=True)
class RunConfig:
    total_env_steps: int = 200_000
    """Stop after this many environment steps (all agents' moves)."""
    max_versions: int = 0
    """Also stop at this learner version (0 = no limit)."""
    max_seconds: float = 0.0
    """Also stop after this many seconds of training (wall time, added up across --resume; 0 = no
    limit). The run ends as at total_env_steps: checkpoint, final match, league table."""
    seed: int = 0
    """Base seed; actor and env seeds derive from (seed, actor index, env index)."""
    run_id: str = ""
    """Name of the run (keys in Redis); empty = derived from the run directory name."""
    run_dir: str = ""
    """Directory for checkpoints, logs and the embedded Redis' data; empty = runs/<game>-<time>."""
    log_every_s: float = 5.0
    """Seconds between progress lines."""
    eval_games: int = 100
    """Games against the random player played at the end of the run for the final table."""
    lease_ttl_s: float = 30.0
    """The run's lease in Redis (cluster/stores/lease.py) expires this many seconds after its last
    renewal (every third of it): a second driver of the run is refused while it is held, and a driver
    that died frees its run this long after."""
    ray_address: str = ""
    """Ray cluster to join ('auto', ray://...); empty = join the cluster when run as a Ray job, else a private local Ray."""


@dataclass(frozen=True)
class CheckpointConfig:
    every_versions: int = 10
    """Write a learner checkpoint every this many learner versions; one is always written on a clean stop."""
    keep: int = 3
    """Checkpoints kept in the run directory; older ones are deleted once a newer one is safely written."""
    dir_name: str = "checkpoints"
    """Sub-directory of the run directory holding them (`selfplay train --resume` reads the newest)."""
    uri: str = ""
    """Where checkpoints go instead: a local directory, or an object store or other fsspec URI
    (s3://bucket/path, gs://bucket/path, az://..., memory://...; needs `pip install -e ".[s3]"` or
    the fsspec backend of that store). Empty: RUN_DIR/dir_name. In an object store each checkpoint is
    written under a name of its own, then a small pointer (latest.json) to it; readers follow the pointer."""
    storage_options: dict = field(default_factory=dict)
    """Options for the fsspec filesystem of `uri` (e.g. {endpoint_url: http://minio:9000} for s3fs);
    credentials are better left to the store's own environment variables (AWS_ACCESS_KEY_ID, ...):
    options that look like secrets (key, secret, token, password, credentials...) are written out
    as "***" and must be given again (--set) on each start."""


@dataclass(frozen=True)
class Config:
    game: GameConfig = field(default_factory=GameConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    league: LeagueConfig = field(default_factory=LeagueConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    run: RunConfig = field(default_factory=RunConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    def to_dict(self) -> dict:
        return _to_plain(dataclasses.asdict(self))

    def replace(self, section: str, **changes: Any) -> "Config":
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


REDACTED = "***"
"""What a secret is replaced with wherever a config is written out."""
_SECRET_OPTION = re.compile(r"key|secret|token|passw|credential|sas|auth|session", re.IGNORECASE)


def written_config(cfg: "Config | dict") -> dict:
    """The config as it is written anywhere (RUN_DIR/config.yaml, the run metadata in Redis, every
    checkpoint, resume logs): redis.url without its password and checkpoint.storage_options without
    secret-looking values. The one function every write point uses, so no site can forget; secrets
    come from the command line or the environment on each start instead (docs/cluster.md)."""
    from cluster.stores.connection import redact

    data = _to_plain(cfg.to_dict() if isinstance(cfg, Config) else cfg)
    redis_section, ckpt = data.get("redis"), data.get("checkpoint")
    if isinstance(redis_section, dict) and isinstance(redis_section.get("url"), str):
        redis_section["url"] = redact(redis_section["url"])
    if isinstance(ckpt, dict) and isinstance(ckpt.get("storage_options"), dict):
        ckpt["storage_options"] = _redact_options(ckpt["storage_options"])
    return data


def write_config_file(run_dir: Path, cfg: "Config") -> Path:
    """RUN_DIR/config.yaml, as written_config has it, atomically (a crash leaves the old file or the
    new one, never a part: a resume reads it)."""
    from learner.checkpoint import atomic_write

    path = Path(run_dir) / "config.yaml"
    atomic_write(path, yaml.safe_dump(written_config(cfg), sort_keys=False).encode())
    return path


def _redact_options(options: dict) -> dict:
    return {
        k: _redact_options(v) if isinstance(v, dict) else (REDACTED if _SECRET_OPTION.search(str(k)) and v not in (None, "") else v)
        for k, v in options.items()
    }


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting only where lossless (int -> float)."""
    origin = typing.get_origin(tp)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            hint = " (only true and false are booleans, as in YAML 1.2)" if isinstance(value, str) else ""
            raise ConfigError(f"{where}: expected true or false, got {value!r}{hint}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is tuple and typing.get_args(tp)[:1] == (str,):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if tp is tuple or origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where}: expected a list of integers, got {value!r}")
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: unsupported annotation {tp}")  # keep configs to plain types
    raise ConfigError(f"{where}: unsupported annotation {tp}")


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s}; valid keys{' in ' + where if where else ''}: "
            + ", ".join(sorted(names))
        )
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key)
        else:
            kwargs[name] = _coerce(value, tp, key)
    return cls(**kwargs)


def config_from_dict(data: dict) -> Config:
    cfg = _build(Config, data or {}, "")
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Cross-field checks that types alone cannot express."""
    checks = [
        (cfg.ppo.minibatch_size <= cfg.ppo.batch_size, "ppo.minibatch_size must be <= ppo.batch_size"),
        (cfg.ppo.batch_size > 0 and cfg.ppo.minibatch_size > 0, "ppo.batch_size and minibatch_size must be > 0"),
        (cfg.ppo.epochs >= 1, "ppo.epochs must be >= 1"),
        (0.0 <= cfg.ppo.gamma <= 1.0, "ppo.gamma must be in [0, 1]"),
        (0.0 <= cfg.ppo.gamma_end <= 1.0, "ppo.gamma_end must be in [0, 1] (0: gamma stays constant)"),
        (cfg.ppo.gamma_end == 0.0 or cfg.ppo.schedule_versions > 0,
         "ppo.gamma_end needs ppo.schedule_versions > 0: the versions over which gamma moves to it"),
        (0.0 <= cfg.ppo.gae_lambda <= 1.0, "ppo.gae_lambda must be in [0, 1]"),
        (cfg.ppo.max_policy_lag >= 0, "ppo.max_policy_lag must be >= 0"),
        (cfg.ppo.schedule_versions >= 0, "ppo.schedule_versions must be >= 0 (0: constant lr and ent_coef)"),
        (cfg.ppo.lr_end_factor > 0 and cfg.ppo.ent_end_factor >= 0, "ppo.lr_end_factor must be > 0 and ppo.ent_end_factor >= 0"),
        (cfg.ppo.target_kl >= 0, "ppo.target_kl must be >= 0 (0: off)"),
        (cfg.rollout.num_actors >= 1, "rollout.num_actors must be >= 1"),
        (cfg.rollout.envs_per_actor >= 1, "rollout.envs_per_actor must be >= 1"),
        (cfg.rollout.segment_length >= 1, "rollout.segment_length must be >= 1"),
        (cfg.rollout.max_inflight >= 1, "rollout.max_inflight must be >= 1"),
        (cfg.rollout.send_segments >= 1, "rollout.send_segments must be >= 1 (1: every tick's segments sent as they are cut)"),
        (cfg.rollout.send_max_age_s >= 0, "rollout.send_max_age_s must be >= 0"),
        (cfg.rollout.opponent_cache >= 1, "rollout.opponent_cache must be >= 1 (idle opponents kept besides those in play)"),
        (cfg.rollout.opening_random_moves >= 0, "rollout.opening_random_moves must be >= 0 (0: off)"),
        (0.0 <= cfg.rollout.random_move_prob < 1.0, "rollout.random_move_prob must be in [0, 1) (0: off)"),
        (cfg.learner.device in ("auto", "cpu", "cuda"), "learner.device must be auto, cpu or cuda"),
        (cfg.learner.autocast in AUTOCAST_MODES, f"learner.autocast must be one of {', '.join(AUTOCAST_MODES)}"),
        (cfg.learner.publish_every >= 1, "learner.publish_every must be >= 1"),
        (cfg.learner.queue_segments >= 0, "learner.queue_segments must be >= 0 (0: one batch)"),
        (cfg.learner.queue_bytes >= 0, "learner.queue_bytes must be >= 0 (0: derived from queue_segments)"),
        (cfg.league.snapshot_every >= 1, "league.snapshot_every must be >= 1"),
        (0.0 <= cfg.league.latest_prob <= 1.0, "league.latest_prob must be in [0, 1]"),
        (0.0 <= cfg.game.team_spirit <= 1.0, "game.team_spirit must be in [0, 1] (OpenAI Five's tau)"),
        (cfg.redis.keep_versions >= 2, "redis.keep_versions must be >= 2 (actors may be fetching the previous one)"),
        (cfg.checkpoint.every_versions >= 1, "checkpoint.every_versions must be >= 1"),
        (cfg.checkpoint.keep >= 1, "checkpoint.keep must be >= 1"),
        (cfg.rollout.max_restarts >= 0, "rollout.max_restarts must be >= 0"),
        (cfg.learner.max_restarts >= 0, "learner.max_restarts must be >= 0"),
        (cfg.learner.restart_window_s > 0 and cfg.rollout.restart_window_s > 0, "learner.restart_window_s and rollout.restart_window_s must be > 0"),
        (cfg.learner.call_timeout_s > 0, "learner.call_timeout_s must be > 0"),
        (cfg.checkpoint.dir_name not in ("", ".", "..", "redis") and "/" not in cfg.checkpoint.dir_name,
         "checkpoint.dir_name must be a plain directory name other than 'redis'"),
        (math.isfinite(cfg.ppo.lr) and cfg.ppo.lr > 0, "ppo.lr must be a finite number > 0"),
        (cfg.run.total_env_steps > 0, "run.total_env_steps must be > 0"),
        (cfg.run.max_seconds >= 0, "run.max_seconds must be >= 0 (0: no time limit)"),
        (cfg.run.lease_ttl_s >= 3, "run.lease_ttl_s must be >= 3 (the lease is renewed every third of it)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for section in ("learner", "rollout", "eval"):
        _check_resources(f"{section}.resources", getattr(cfg, section).resources)
    check_model_fits(cfg)
    if cfg.league.sampler not in SAMPLERS:
        raise ConfigError(f"league.sampler {cfg.league.sampler!r} is unknown; choose one of {', '.join(SAMPLERS)}")
    _validate_eval(cfg)
    _validate_exploiters(cfg)


def _validate_exploiters(cfg: Config) -> None:
    """Exploiter counts and share; whether the game has roles is checked by cluster/plan.py."""
    lg = cfg.league
    if lg.main_exploiters < 0 or lg.league_exploiters < 0:
        raise ConfigError("league.main_exploiters and league.league_exploiters must be >= 0 (0: none)")
    n = lg.main_exploiters + lg.league_exploiters
    if not n:
        return
    if not 0.0 < lg.exploiter_share < 1.0:
        raise ConfigError(f"league.exploiter_share must be in (0, 1) with exploiters; got {lg.exploiter_share!r}")
    if lg.exploiter_reset_versions < 1 or lg.exploiter_reset_min_games < 0 or not 0.0 < lg.exploiter_reset_win_rate <= 1.0:
        raise ConfigError("league.exploiter_reset_versions must be >= 1, exploiter_reset_min_games >= 0 and exploiter_reset_win_rate in (0, 1]")
    slots = cfg.rollout.num_actors * cfg.rollout.envs_per_actor
    if int(slots * lg.exploiter_share) < n:
        raise ConfigError(
            f"league.exploiter_share {lg.exploiter_share} of {slots} game slots (rollout.num_actors x envs_per_actor) gives "
            f"{int(slots * lg.exploiter_share)} slots to {n} exploiters; every exploiter needs one: raise the share or the slots"
        )


def _check_resources(key: str, resources: dict) -> None:
    """A role's custom Ray resources: names of the operator's choosing with positive amounts;
    CPUs, GPUs and memory have keys of their own."""
    for name, amount in resources.items():
        if not isinstance(name, str) or name in ("CPU", "GPU", "memory", "object_store_memory"):
            raise ConfigError(f"{key}: {name!r} is not a custom resource name (CPUs and GPUs are set by their own keys)")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount > 0:
            raise ConfigError(f"{key}.{name}: expected a number > 0, got {amount!r}")


def check_model_fits(cfg: Config, spec: Any = None) -> None:
    """The model section on its own, and, given a game's spec (obs_shape, num_actions, head, name),
    whether it can play that game: conv on flat observations, a symmetry the board does not
    have, or conv or a symmetry for a Box game, is refused before anything starts."""
    try:
        cfg.model.check(*((spec.obs_shape, spec.num_actions, spec.head) if spec is not None else ()))
        augment_group(cfg.ppo.augment, cfg.model, *((spec.obs_shape, spec.num_actions, spec.head) if spec is not None else ()))
    except ValueError as exc:
        raise ConfigError(f"{exc}{f' (game {spec.name})' if spec is not None else ''}") from exc
    if spec is not None and spec.continuous and cfg.rollout.opening_random_moves > 0:
        raise ConfigError(f"rollout.opening_random_moves needs a Discrete action space; game {spec.name} has a Box one: set it to 0")
    if spec is not None and spec.continuous and cfg.rollout.random_move_prob > 0:
        raise ConfigError(f"rollout.random_move_prob needs a Discrete action space; game {spec.name} has a Box one: set it to 0")


def _validate_eval(cfg: Config) -> None:
    ev, known = cfg.eval, references_for(cfg.game.name)
    checks = [
        (ev.num_evaluators >= 0, "eval.num_evaluators must be >= 0 (0 disables evaluators)"),
        (ev.games_per_pair >= 1, "eval.games_per_pair must be >= 1"),
        (ev.snapshots_per_round >= 0, "eval.snapshots_per_round must be >= 0"),
        (ev.snapshot_pick in ("uncertain", "newest"), "eval.snapshot_pick must be uncertain or newest"),
        (ev.interval_s >= 0, "eval.interval_s must be >= 0"),
        (ev.exploitability_every >= 0, "eval.exploitability_every must be >= 0 (0: never)"),
        (0.0 < cfg.league.payoff_decay <= 1.0, "league.payoff_decay must be in (0, 1]"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    unknown_train = [r for r in cfg.league.train_references if r not in known]
    if unknown_train:
        raise ConfigError(
            f"league.train_references {unknown_train} are not reference players of {cfg.game.name}; choose from {', '.join(known)}"
            " (players named by import path rate, in eval.references; they do not train)"
        )
    try:  # a user's own players, by import path, are imported here so a wrong one fails before the run
        check_reference_names(ev.references, known, "eval.references", cfg.game.name)
    except ReferencePathError as exc:
        raise ConfigError(str(exc)) from exc


def parse_override(text: str) -> tuple[list[str], Any]:
    """'ppo.lr=1e-3' -> (['ppo', 'lr'], 0.001). Values are parsed as YAML scalars/lists."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if len(path) < 2:
        raise ConfigError(f"override {text!r} must name a section and a key, e.g. ppo.lr=0.001")
    try:
        value = _yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {exc}") from exc
    return path, value


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config file (or the defaults when path is None) and apply key=value overrides."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        try:
            data = _yaml(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(p)!r} must be a mapping of sections")
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {k} is not a section")
        node[keys[-1]] = value
    return config_from_dict(data)

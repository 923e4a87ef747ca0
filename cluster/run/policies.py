"""Finding a trained policy by the name a person gives it: a policy file, a learner checkpoint, or a
league player (`latest`, a snapshot id such as `v000120`) of a run in Redis.

`selfplay evaluate`, `play`, `export` and the dashboard's play page all load policies through here.
"""

from __future__ import annotations

import argparse

from cluster.config import ConfigError
from cluster.stores.keys import RunKeys
from learner.model import InferencePolicy


def load_named_policy(args: argparse.Namespace) -> InferencePolicy:
    """`args.policy` as a file, or as a league player of the run named by args.redis_url / run_dir /
    run / prefix (the options `_add_run_args` in cli.py declares)."""
    from pathlib import Path

    from cluster.stores.connection import resolve_url
    from learner.export import load_policy

    if Path(args.policy).is_file():
        return load_policy(args.policy)
    if args.run_dir or args.redis_url or resolve_url(""):
        return _league_policy_of_args(args)
    raise ConfigError(
        f"{args.policy!r} is not a file; to use a league player (e.g. v000040 or latest), say which run "
        "holds it with --run-dir DIR or --redis-url URL"
    )


def _league_policy_of_args(args: argparse.Namespace) -> InferencePolicy:
    # The CLI's helpers that find a run (--redis-url / --run-dir); imported here, late, as cli.py
    # imports this module late too. Moving them here would be tidier, and is left for when cli.py's
    # league commands are not being reworked.
    from cluster.run.cli import _pick_run, open_run_redis
    from cluster.stores.connection import connect

    with open_run_redis(args.redis_url, args.run_dir) as url:
        client = connect(url)
        run_id = _pick_run(client, args.prefix, args.run)
        return LeaguePolicies(client, RunKeys(args.prefix, run_id)).load(args.policy)


class LeaguePolicies:
    """The playable players of one run: `latest` (the newest published weights) and its snapshots.

    Reads only the run's metadata and weights keys, so it works on a live run (each load of
    `latest` gets the weights of that moment) and on a finished one."""

    def __init__(self, client, keys: RunKeys) -> None:
        from cluster.stores.league_store import LeagueStore
        from cluster.stores.param_store import ParamStore

        self.client, self.keys = client, keys
        self._meta_store = LeagueStore(client, keys)
        self.params = ParamStore(client, keys)

    def game(self) -> str:
        meta = self._meta_store.meta() or {}
        return meta.get("game") or (meta.get("config") or {}).get("game", {}).get("name", "")

    def players(self) -> list[str]:
        """`latest` (when weights were published) and every snapshot, newest first."""
        pattern = self.keys.snapshot("*")
        head = pattern[:-1]
        snaps = sorted((k.decode() if isinstance(k, bytes) else k)[len(head):] for k in self.client.scan_iter(match=pattern))
        latest = ["latest"] if self.params.latest_version() >= 0 else []
        return latest + snaps[::-1]

    def load(self, player: str) -> InferencePolicy:
        from actors.games import load_game, refuse_roles
        from learner.arch import model_from_meta
        from learner.export import build_policy, policy_meta

        run_id = self.keys.run_id
        if player == "latest":
            got = self.params.fetch()
            if got is None:
                raise ConfigError(f"run {run_id!r} has no published weights yet")
        else:
            try:
                got = self.params.fetch_snapshot(player)
            except KeyError as exc:
                raise ConfigError(f"{exc.args[0]}; `selfplay league` lists the run's players") from exc
        version, tensors = got
        meta = self._meta_store.meta() or {}
        cfg = meta.get("config") or {}
        game = self.game()
        model = cfg.get("model") or {}
        if not game or not model.get("hidden_sizes"):
            raise ConfigError(f"run {run_id!r} does not record its game and network shape; use a policy file instead")
        _, spec = load_game(game, cfg.get("game", {}).get("kwargs") or {})
        refuse_roles(spec, "loading a run's latest policy")
        return build_policy(tensors, version, policy_meta(game, model_from_meta({"model": model}), spec.obs_shape, spec.num_actions, spec.head))

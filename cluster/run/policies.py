"""Finding a trained policy by the name a person gives it: a policy file, a learner checkpoint, or a
league player (`latest`, a snapshot id such as `v000120`) of a run in Redis, with its game.

`selfplay evaluate`, `play`, `export` and the dashboard's play page all load policies through here.

Two rules hold on every path (docs/play_and_export.md):
- A game name read from Redis or from a policy file is data: it is imported only when it is a
  built-in game or a name the user gave (`--game`, `--config`): `trusted_games` collects those, and
  every load_game here passes them (actors/games.py check_trusted_game).
- In a game with roles (actors/roles.py) a policy plays one role: `--role` says which (a policy file
  that records its role says so itself), and the network is built with that role's shapes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable, Collection

from actors.games import GameError, GameSlot, GameSpec, load_game
from cluster.config import ConfigError
from cluster.stores.keys import RunKeys
from learner.model import InferencePolicy


@dataclass(frozen=True)
class GameRef:
    """A game as a run's metadata or a policy file names it: what load_game takes."""

    name: str
    kwargs: dict = field(default_factory=dict)
    sides: dict | None = None
    roles: dict | None = None

    def load(self, trusted: Collection[str]) -> tuple[Callable[[], GameSlot], GameSpec]:
        return load_game(self.name, self.kwargs or None, sides=self.sides or None, roles=self.roles or None, trusted=trusted)


def file_game_ref(meta: dict, game: str, source: str) -> GameRef:
    """The game a policy file's policy plays: `game` (--game, or the file's own) set up as the
    policy learned it (the env's kwargs, sides, roles: learner/export.py policy_meta), unless --game
    names another game, which is then played as built."""
    from learner.export import game_setup

    return GameRef(game, **game_setup(meta, source)) if game == meta.get("game") else GameRef(game)


@dataclass(frozen=True)
class NamedPolicy:
    """A policy with the game it plays, loaded; `role` is "" in a game without roles."""

    policy: InferencePolicy
    game: str
    make_slot: Callable[[], GameSlot]
    spec: GameSpec
    """The whole game's spec (its roles included); `role_spec` is what this policy's network sees."""
    role: str = ""

    @property
    def role_spec(self) -> GameSpec:
        return self.spec.role(self.role) if self.role else self.spec


def trusted_games(args: argparse.Namespace) -> tuple[str, ...]:
    """The game names the user wrote for this command: --game, and --config's game.name."""
    from cluster.config import load_config

    names = [args.game] if getattr(args, "game", "") else []
    if getattr(args, "config", ""):
        names.append(load_config(args.config).game.name)
    return tuple(names)


def resolve_role(spec: GameSpec, asked: str, recorded: str = "", who: str = "a policy plays") -> str:
    """The role a policy plays: `asked` (--role) or `recorded` (its file's meta); "" for a game
    without roles. GameError when a game with roles gets none, a game without roles gets one, or
    they disagree."""
    names = [r.name for r in spec.roles]
    if not names:
        if asked:
            raise GameError(f"game {spec.name!r} has no roles (all its sides observe and act alike): drop --role {asked}")
        return ""
    role = asked or recorded
    if not role:
        raise GameError(
            f"game {spec.name!r} has roles {', '.join(names)}, and {who} one of them: pass --role ROLE "
            f"(e.g. --role {names[0]})"
        )
    if role not in names:
        raise GameError(f"game {spec.name!r} has no role {role!r}; its roles are {', '.join(names)}")
    if asked and recorded and asked != recorded:
        raise GameError(f"this policy plays role {recorded!r} of {spec.name}, not {asked!r}: pass --role {recorded} or another policy")
    return role


def check_fits(policy: InferencePolicy, spec: GameSpec, what: str) -> None:
    """GameError when `policy`'s network does not take `spec`'s observations or make its actions."""
    if policy.net.obs_dim != spec.obs_dim or policy.net.num_actions != spec.num_actions:
        raise GameError(
            f"{what} ({policy.net.obs_dim} inputs, {policy.net.num_actions} actions) does not fit {spec.name} "
            f"({spec.obs_dim} inputs, {spec.num_actions} actions): pass the game (and --role) it was trained for"
        )


def load_named_policy(
    args: argparse.Namespace, who: str = "a policy plays", check: Callable[[InferencePolicy], None] | None = None
) -> NamedPolicy:
    """`args.policy` as a file, or as a league player of the run named by args.redis_url / run_dir /
    run / prefix (the options `_add_run_args` in cli.py declares); args.role picks the role.
    `check(policy)` raises for a policy the command cannot use: run on a file before its game loads."""
    from pathlib import Path

    from cluster.stores.connection import resolve_url
    from learner.export import load_policy

    trusted = trusted_games(args)
    role = getattr(args, "role", "") or ""
    if Path(args.policy).is_file():
        policy = load_policy(args.policy)
        if check:
            check(policy)
        game = args.game or policy.meta.get("game", "")
        if not game:
            raise ConfigError(f"{args.policy} does not say which game it plays; pass --game NAME (e.g. connect_four_v3)")
        make_slot, spec = file_game_ref(policy.meta, game, str(args.policy)).load(trusted)
        role = resolve_role(spec, role, policy.meta.get("role", ""), who)
        named = NamedPolicy(policy, game, make_slot, spec, role)
        check_fits(policy, named.role_spec, f"policy {args.policy}")
        return named
    if args.run_dir or args.redis_url or resolve_url(""):
        named = _league_policy_of_args(args, trusted, role, who)
        if check:
            check(named.policy)
        return named
    raise ConfigError(
        f"{args.policy!r} is not a file; to use a league player (e.g. v000040 or latest), say which run "
        "holds it with --run-dir DIR or --redis-url URL"
    )


def _league_policy_of_args(args: argparse.Namespace, trusted: Collection[str], role: str, who: str) -> NamedPolicy:
    # The CLI's helpers that find a run (--redis-url / --run-dir); imported here, late, as cli.py
    # imports this module late too. Moving them here would be tidier, and is left for when cli.py's
    # league commands are not being reworked.
    from cluster.run.cli import _pick_run, open_run_redis
    from cluster.stores.connection import connect

    with open_run_redis(args.redis_url, args.run_dir) as url:
        client = connect(url)
        run_id = _pick_run(client, args.prefix, args.run)
        return LeaguePolicies(client, RunKeys(args.prefix, run_id), trusted).load_named(args.policy, role, who=who)


class LeaguePolicies:
    """The playable players of one run: `latest` (the newest published weights) and its snapshots.

    Reads only the run's metadata and weights keys, so it works on a live run (each load of
    `latest` gets the weights of that moment) and on a finished one. The run's game is imported only
    if it is built in or in `trusted` (the names the user gave: module docstring)."""

    def __init__(self, client, keys: RunKeys, trusted: Collection[str] = ()) -> None:
        from cluster.stores.league_store import LeagueStore

        self.client, self.keys, self.trusted = client, keys, tuple(trusted)
        self._meta_store = LeagueStore(client, keys)

    def _meta(self) -> dict:
        return self._meta_store.meta() or {}

    def game(self) -> str:
        meta = self._meta()
        return meta.get("game") or (meta.get("config") or {}).get("game", {}).get("name", "")

    def game_ref(self) -> GameRef:
        """The run's game as its config gave it (name, kwargs, sides, roles)."""
        game_cfg = (self._meta().get("config") or {}).get("game") or {}
        name = self.game()
        if not name:
            raise ConfigError(f"run {self.keys.run_id!r} does not record its game; use a policy file instead")
        return GameRef(name, game_cfg.get("kwargs") or {}, game_cfg.get("sides"), game_cfg.get("roles"))

    def param_store(self, role: str = ""):
        from cluster.stores.param_store import ParamStore

        return ParamStore(self.client, self.keys.for_role(role))

    def players(self) -> list[str]:
        """`latest` (when weights were published) and every snapshot, newest first."""
        pattern = self.keys.snapshot("*")
        head = pattern[:-1]
        snaps = sorted((k.decode() if isinstance(k, bytes) else k)[len(head):] for k in self.client.scan_iter(match=pattern))
        latest = ["latest"] if self.param_store().latest_version() >= 0 else []
        return latest + snaps[::-1]

    def load(self, player: str) -> InferencePolicy:
        return self.load_named(player).policy

    def load_named(self, player: str, role: str = "", loaded: tuple | None = None, who: str = "a policy plays") -> NamedPolicy:
        """`player` (`latest` or a snapshot id) of `role` (required in a game with roles), with its
        game; `loaded`: the game's (make_slot, spec) when the caller has loaded it already."""
        from learner.arch import model_from_meta
        from learner.export import build_policy, policy_meta

        model = (self._meta().get("config") or {}).get("model") or {}
        ref = self.game_ref()
        if not model.get("hidden_sizes"):
            raise ConfigError(f"run {self.keys.run_id!r} does not record its network shape; use a policy file instead")
        game = ref.name
        make_slot, spec = loaded or ref.load(self.trusted)
        role = resolve_role(spec, role, who=who)
        version, tensors = self._weights(player, role)
        rspec = spec.role(role) if role else spec
        pmeta = policy_meta(game, model_from_meta({"model": model}), rspec.obs_shape, rspec.num_actions, rspec.head, role)
        return NamedPolicy(build_policy(tensors, version, pmeta), game, make_slot, spec, role)

    def _weights(self, player: str, role: str):
        """(version, tensors) of `player`; a role's snapshot may be named bare (v000010) or in full (adversary/v000010)."""
        from actors.roles import ROLE_SEP, role_player

        run_id = self.keys.run_id
        params = self.param_store(role)
        if player in ("latest", role_player(role, "latest") if role else "latest"):
            got = params.fetch()
            if got is None:
                raise ConfigError(f"run {run_id!r} has no published weights{f' of role {role}' if role else ''} yet")
            return got
        if role and ROLE_SEP not in player:
            player = role_player(role, player)
        elif role and not player.startswith(role_player(role, "")):
            raise ConfigError(f"player {player!r} is not one of role {role!r}; pass --role for its role, or name one of {role}'s players")
        try:
            return params.fetch_snapshot(player)
        except KeyError as exc:
            raise ConfigError(f"{exc.args[0]}; `selfplay league` lists the run's players") from exc

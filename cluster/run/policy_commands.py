"""`selfplay evaluate`, `play` and `export`: what they do with a policy once cluster/run/policies.py
has found it (and its game, and in a game with roles its role).

In a game with roles (actors/roles.py) a policy plays one role: evaluate plays it against the other
roles' reference players (actors/role_match.py), export writes that role's network, and play seats
the person in one role against the other roles' players. docs/play_and_export.md is the user's guide.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from actors.evaluate import Agent
from actors.games import GameError
from cluster.config import ConfigError
from cluster.run.policies import NamedPolicy, check_fits, load_named_policy, resolve_role


def evaluate(args: argparse.Namespace) -> int:
    from actors.evaluate import play_match
    from actors.references import ReferencePathError, with_imported
    from actors.scripted import references_for
    from learner.export import load_policy

    named = load_named_policy(args)
    if named.role:
        return _evaluate_role(args, named)
    game, spec = named.game, named.spec
    try:
        refs = with_imported(references_for(game, spec), [args.opponent])  # package.module:function too
    except ReferencePathError as exc:
        raise ConfigError(str(exc)) from exc
    if args.opponent in refs:
        opponent = Agent(scripted=refs[args.opponent])
    elif Path(args.opponent).is_file():
        other = load_policy(args.opponent)
        check_fits(other, spec, f"opponent {args.opponent}")
        opponent = Agent(policy=other, greedy=args.greedy)
    else:
        raise ConfigError(f"opponent {args.opponent!r} is neither a reference of {game} ({', '.join(refs)}) nor a policy file")
    r = play_match(named.make_slot, Agent(policy=named.policy, greedy=args.greedy), opponent, args.games, seed=args.seed)
    lo, hi = r.confidence_interval()
    print(f"{args.policy} vs {args.opponent} on {game}, {r.games} games (seats alternate)")
    print(f"W {r.wins}  D {r.draws}  L {r.losses}   score {r.score:.3f}  95% CI [{lo:.3f}, {hi:.3f}]")
    return 0


def _other_role_agents(args: argparse.Namespace, named: NamedPolicy) -> dict[str, tuple[str, Agent]]:
    """Per other role: (what plays it, its agent). `--opponent` is a reference every other role has
    (random always), or a policy file of one other role (its file says which; the rest play random)."""
    from actors.scripted import references_for
    from learner.export import load_policy

    spec = named.spec
    others = [r.name for r in spec.roles if r.name != named.role]
    refs = {o: references_for(named.game, spec.role(o)) for o in others}
    if all(args.opponent in refs[o] for o in others):
        return {o: (args.opponent, Agent(scripted=refs[o][args.opponent])) for o in others}
    if not Path(args.opponent).is_file():
        shared = sorted(set.intersection(*(set(r) for r in refs.values())))
        raise ConfigError(f"opponent {args.opponent!r} is neither a reference of roles {', '.join(others)} ({', '.join(shared)}) nor a policy file")
    policy = load_policy(args.opponent)
    recorded = policy.meta.get("role", "")
    if not recorded and len(others) > 1:
        raise ConfigError(f"policy {args.opponent} does not record its role, and {named.game} has roles {', '.join(others)} besides {named.role}")
    role = resolve_role(spec, "", recorded or others[0])
    if role == named.role:
        raise ConfigError(f"opponent {args.opponent} plays role {role}, the evaluated policy's own: give a policy of {', '.join(others)}")
    check_fits(policy, spec.role(role), f"opponent {args.opponent} (role {role})")
    out = {o: ("random", Agent(scripted=refs[o]["random"])) for o in others}
    out[role] = (args.opponent, Agent(policy=policy, greedy=args.greedy))
    return out


def _evaluate_role(args: argparse.Namespace, named: NamedPolicy) -> int:
    """The role's policy against the other roles' players: each role's mean return per game, and
    where the game has two sides (win, draw or loss) the role's score with its 95% interval."""
    from actors.role_match import Seat, role_match, role_outcomes
    from actors.roles import role_player

    spec, role = named.spec, named.role
    seats = {role: Seat(role_player(role, "evaluated"), named.policy.version, Agent(policy=named.policy, greedy=args.greedy))}
    against = _other_role_agents(args, named)
    for o, (label, agent) in against.items():
        seats[o] = Seat(role_player(o, Path(label).name), -1, agent)
    r = role_match(named.make_slot, spec, seats, args.games, seed=args.seed, game_id="evaluate")
    vs = ", ".join(f"{o} {label}" for o, (label, _) in against.items())
    print(f"{args.policy} (role {role}) vs {vs} on {named.game}, {r.games} games")
    print("mean return per game: " + ", ".join(f"{k} {v:.3f}" for k, v in r.mean_return.items()))
    if spec.num_sides == 2:  # a placement among more sides is not a win or a loss
        m = role_outcomes(r, spec, role)
        lo, hi = m.confidence_interval()
        print(f"{role}: W {m.wins}  D {m.draws}  L {m.losses}   score {m.score:.3f}  95% CI [{lo:.3f}, {hi:.3f}]")
    return 0


def export(args: argparse.Namespace) -> int:
    from actors.evaluate import sample_positions
    from actors.role_match import sample_role_positions
    from learner.onnx_export import check_exportable, export_checked, require_onnx

    if args.format == "policy":
        return _export_policy_file(args)
    require_onnx()  # before any loading: a missing extra is the first thing to hear about
    named = load_named_policy(args, check=check_exportable)
    policy, game = named.policy, named.game
    if named.role:
        obs, mask = sample_role_positions(named.make_slot, named.spec, named.role, args.positions, seed=args.seed)
    else:
        obs, mask = sample_positions(named.make_slot, args.positions, seed=args.seed)
    parity = export_checked(policy, args.out, obs, mask, tolerance=args.tolerance)
    of_role = f" (role {named.role}, obs shape {tuple(named.role_spec.obs_shape)})" if named.role else ""
    print(f"wrote {args.out}{of_role}: inputs obs float32 [batch, {policy.net.obs_dim}], mask bool [batch, {policy.net.num_actions}]; "
          f"outputs probs, value")
    print(f"onnxruntime vs torch on {parity.positions} positions of {game}: max abs difference "
          f"probs {parity.max_abs_diff_probs:.3g}, value {parity.max_abs_diff_value:.3g} (tolerance {args.tolerance:g})")
    return 0


def _export_policy_file(args: argparse.Namespace) -> int:
    """A run's player (or a checkpoint) as a policy file: its weights and meta, the role included."""
    from learner.export import save_policy
    from learner.model import state_dict_numpy

    named = load_named_policy(args)
    policy = named.policy
    save_policy(args.out, state_dict_numpy(policy.net), policy.version, policy.meta)
    of_role = f", role {named.role}" if named.role else ""
    print(f"wrote {args.out}: {named.game}{of_role}, version {policy.version}, obs shape {tuple(policy.net.obs_shape)}, "
          f"{policy.net.num_actions} actions")
    return 0


def play(args: argparse.Namespace) -> int:
    from actors.human import HumanMatch, board_for, refuse_unplayable
    from cluster.run.policies import trusted_games

    if args.role:
        return _play_role(args)
    named = load_named_policy(args, who="you play")
    if named.spec.roles:
        raise GameError(f"you play one role of {named.game} ({', '.join(r.name for r in named.spec.roles)}): pass --role ROLE")
    if args.web:
        from cluster.ui.play import FixedPolicies, serve_play

        serve_play(FixedPolicies(named.game, {args.policy: named.policy}), args.host, args.port)
        return 0
    refuse_unplayable(named.spec, named.make_slot().simultaneous)
    make_slot, board = board_for(named.game, trusted=trusted_games(args))
    match = HumanMatch(make_slot, named.policy, human_seat=1 if args.second else 0, greedy=not args.sample, seed=args.seed)
    return _play_match(match, board)


def _play_match(match, board) -> int:
    from actors.human import play_in_terminal

    try:
        play_in_terminal(match, board, input, lambda text: print(text, flush=True))
    except KeyboardInterrupt:
        print("\ninterrupted: game abandoned")
        return 130
    return 0


def _play_role(args: argparse.Namespace) -> int:
    """You play a seat of --role; every other seat is played by the players POLICY names (module
    docstring of cluster/run/policies.py; docs/play_and_export.md), the rest by random players."""
    from actors.human import RoleHumanMatch, board_for, refuse_unplayable
    from actors.scripted import references_for
    from cluster.run.policies import trusted_games

    if args.web:
        raise GameError("the browser's play page draws connect four and tic-tac-toe, which have no roles: play in the terminal")
    game, ref, make_slot, spec, agents = _role_players(args)  # checks --role against the game's roles
    role = args.role
    refuse_unplayable(spec, make_slot().simultaneous)
    for r in spec.roles:
        agents.setdefault(r.name, ("random", Agent(scripted=references_for(game, spec.role(r.name))["random"])))
    make_slot, board = board_for(game, ref.kwargs, trusted_games(args), ref.sides, ref.roles)  # it loaded once: trusted
    match = RoleHumanMatch(make_slot, spec, role, {r: a for r, (_, a) in agents.items()}, seat=1 if args.second else 0, seed=args.seed)
    print(f"you play {spec.agents[match.human_seat]} (role {role}); " + ", ".join(f"{r}: {label}" for r, (label, _) in agents.items()))
    return _play_match(match, board)


def _role_players(args: argparse.Namespace):
    """(game, GameRef, make_slot, spec, {role: (label, Agent)}) for `selfplay play POLICY --role R`:
    POLICY `random` (no run: every other seat random; needs --game), a policy file (it plays its
    role), or a run's `latest` (every role's latest) or one role's snapshot (`hunter/v000010`)."""
    from actors.roles import ROLE_SEP
    from cluster.run.cli import _pick_run, open_run_redis
    from cluster.run.policies import GameRef, LeaguePolicies, file_game_ref, trusted_games
    from cluster.stores.connection import connect, resolve_url
    from cluster.stores.keys import RunKeys
    from learner.export import load_policy

    trusted, greedy = trusted_games(args), not args.sample
    if args.policy == "random" and not Path(args.policy).is_file():
        if not args.game:
            raise ConfigError("with POLICY random, say which game: --game NAME")
        ref = GameRef(args.game)
        make_slot, spec = ref.load(trusted)
        resolve_role(spec, args.role, who="you play")
        return args.game, ref, make_slot, spec, {}
    if Path(args.policy).is_file():
        policy = load_policy(args.policy)
        game = args.game or policy.meta.get("game", "")
        if not game:
            raise ConfigError(f"{args.policy} does not say which game it plays; pass --game NAME")
        ref = file_game_ref(policy.meta, game, str(args.policy))
        make_slot, spec = ref.load(trusted)
        resolve_role(spec, args.role, who="you play")
        others = [r.name for r in spec.roles if r.name != args.role]
        role = resolve_role(spec, "", policy.meta.get("role", "") or (others[0] if len(others) == 1 else ""))
        check_fits(policy, spec.role(role), f"policy {args.policy} (role {role})")
        return game, ref, make_slot, spec, {role: (args.policy, Agent(policy=policy, greedy=greedy))}
    if not (args.run_dir or args.redis_url or resolve_url("")):
        raise ConfigError(f"{args.policy!r} is not a file, nor random; for a run's players say which run with --run-dir DIR or --redis-url URL")
    with open_run_redis(args.redis_url, args.run_dir) as url:
        client = connect(url)
        source = LeaguePolicies(client, RunKeys(args.prefix, _pick_run(client, args.prefix, args.run)), trusted)
        ref = source.game_ref()
        make_slot, spec = ref.load(trusted)
        resolve_role(spec, args.role, who="you play")
        names = [r.name for r in spec.roles]
        if args.policy != "latest" and args.policy.split(ROLE_SEP, 1)[0] not in names:
            raise ConfigError(f"name a snapshot with its role ({', '.join(n + ROLE_SEP + 'v000010' for n in names)}), or latest")
        players = {r: args.policy if args.policy.startswith(r + ROLE_SEP) else "latest" for r in names}
        loaded = {r: source.load_named(p, r, (make_slot, spec)).policy for r, p in players.items()}
    return ref.name, ref, make_slot, spec, {r: (players[r], Agent(policy=pol, greedy=greedy)) for r, pol in loaded.items()}

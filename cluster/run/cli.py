"""`selfplay` command line: train, league (and more subcommands registered below)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from actors.games import GameError
from actors.replay import ReplayError
from cluster.config import ConfigError, load_config
from cluster.run.jobs_cli import SubmitError, add_config_parser, add_submit_parser
from cluster.stores.connection import RedisUnavailable, resolve_url
from cluster.stores.lease import LeaseError
from learner.checkpoint import CheckpointError
from learner.onnx_export import ExportError
from learner.wire import PayloadError

USER_ERRORS = (ConfigError, GameError, RedisUnavailable, LeaseError, PayloadError, CheckpointError, FileNotFoundError, ExportError, ReplayError, SubmitError)


def _train(args: argparse.Namespace) -> int:
    from cluster.run.resume import RunError
    from cluster.run.trainer import run_training

    overrides = list(args.set or [])
    if args.redis_url:
        overrides.append(f"redis.url={args.redis_url}")
    cfg = load_config(args.config, overrides)
    try:  # the run dir as given: a URI must reach run_training intact (Path() would fold its "//")
        result = run_training(cfg, args.run_dir or None, resume=args.resume)
    except RunError as exc:
        raise ConfigError(str(exc)) from exc
    print()
    print(format_league(result.table))
    return 0


@contextmanager
def open_run_redis(redis_url: str, run_dir: str) -> Iterator[str]:
    """A URL to read a run from: --redis-url / REDIS_URL, or the embedded Redis data of --run-dir."""
    url = resolve_url(redis_url)
    if url:
        yield url
        return
    if not run_dir:
        raise ConfigError("say where the run is: --redis-url URL (or REDIS_URL), or --run-dir DIR of a local run")
    data = Path(run_dir) / "redis"
    if not data.is_dir():
        raise ConfigError(f"{run_dir} has no embedded Redis data ({data}); pass --redis-url for a run that used an external Redis")
    from cluster.stores.embedded_redis import EmbeddedRedis, live_server_url

    live = live_server_url(data)
    if live:  # the run is going on: read it from its own server
        yield live
        return
    with EmbeddedRedis(data) as r:  # a finished run: serve its data while we read it
        yield r.url


def _pick_run(client, prefix: str, wanted: str) -> str:
    from cluster.stores.league_store import list_runs

    runs = list_runs(client, prefix)
    if wanted:
        if wanted not in runs:
            raise ConfigError(f"no run {wanted!r} in this Redis; runs: {', '.join(runs) or 'none'}")
        return wanted
    if not runs:
        raise ConfigError("this Redis holds no selfplay runs yet")
    return runs[-1]


def format_elo(p) -> str:
    return f"{p.elo:.0f}" if p.elo_stderr is None else f"{p.elo:.0f} ± {p.elo_stderr:.0f}"


def format_table(players) -> str:
    """One row per player, in the order given; Elo with its standard error. A league with exploiters'
    snapshots also shows each one's win rate against the main agent when it was taken ("vs main")."""
    players = list(players)
    w = max([12, *(len(p.id) for p in players)])  # exploiters' ids (main_exploiter/v000040) are longer
    main = any(getattr(p, "vs_main", None) is not None for p in players)
    rows = [f"{'player':<{w}} {'kind':<10} {'version':>7} {'Elo':>11} {'games':>7} {'win% vs random':>15}" + (f" {'win% vs main':>13}" if main else "")]
    for p in players:
        wr = p.win_rate_vs_random()
        row = (
            f"{p.id:<{w}} {p.kind:<10} {p.version if p.version >= 0 else '-':>7} {format_elo(p):>11} {p.games:7d} "
            f"{'-' if wr is None else f'{100 * wr:.1f}':>15}"
        )
        if main:
            row += f" {'-' if p.vs_main is None else f'{100 * p.vs_main:.1f}':>13}"
        rows.append(row)
    return "\n".join(rows)


def format_league(players, sel=None) -> str:
    """The table of the players `sel` shows (league/views.py; default: latest, the references, the
    top 10 and the newest 5), under a line that says which these are out of how many."""
    from league.views import Selection, select_players

    sel = sel or Selection()
    shown = select_players(players, sel)
    head = f"{len(shown.players)} of {shown.total} players: {sel.describe()}"
    if not sel.all and len(shown.players) < shown.matched:
        head += " (--all for every one, --filter TEXT to narrow)"
    return head + "\n" + format_table(shown.players)


def _league(args: argparse.Namespace) -> int:
    from cluster.stores.connection import connect
    from cluster.stores.keys import RunKeys
    from cluster.stores.league_store import LeagueStore
    from league.views import Selection

    try:
        sel = Selection(top=args.top, newest=args.newest, filter=args.filter, all=args.all)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    with open_run_redis(args.redis_url, args.run_dir) as url:
        client = connect(url)
        run_id = _pick_run(client, args.prefix, args.run)
        keys = RunKeys(args.prefix, run_id)
        while True:
            meta = LeagueStore(client, keys).meta() or {}
            for learner in _learners_shown(meta, args.learner, run_id):
                _print_learner_league(LeagueStore(client, keys.for_role(learner)), meta, sel)
            if not args.watch:
                return 0
            time.sleep(args.watch)
            print()


def _learners_shown(meta: dict, wanted: str, run_id: str) -> list[str]:
    """The learners `--learner NAME` picks: its one, or every one when absent; an unknown name is a
    ConfigError naming the run's learners (`selfplay league` and `dashboard`)."""
    from league.views import UnknownLearner, pick_learner, run_learners

    learners = run_learners(meta.get("roles"))  # a league per role (docs/architecture.md, "Asymmetric roles")
    try:
        return [pick_learner(wanted, learners, run_id)] if wanted else learners
    except UnknownLearner as exc:
        raise ConfigError(str(exc)) from exc


def _print_learner_league(store, meta: dict, sel) -> None:
    """One learner's league. A role's league: the other role's latest (its learner) against the
    role's players, on that league's own Elo scale (anchored at the role's random player)."""
    run_id, role = store.keys.run_id, store.keys.role
    league = store.league_meta()
    status = "running" if meta.get("running") else "finished"
    if league is None:
        if role:
            raise ConfigError(f"run {run_id!r}: role {role!r} has no league state yet")
        store.load()  # says so if the run keeps its league in an older layout
        raise ConfigError(f"run {run_id!r} has no league state yet")
    if role:
        print(f"run {run_id} ({meta.get('game', '?')}, {status}) league of role {role} "
              f"(rated against the other role's latest), {league['games_total']} games")
    else:
        print(f"run {run_id} ({meta.get('game', '?')}, {status}) learner v{league['learner_version']}, {league['games_total']} games")
    print(format_league(store.players(), sel))


def _dashboard(args: argparse.Namespace) -> int:
    from cluster.stores.connection import connect
    from cluster.stores.keys import RunKeys
    from cluster.stores.league_store import LeagueStore
    from cluster.run.policies import LeaguePolicies
    from cluster.ui.dashboard import DashboardAuthError, DashboardServer, run_dashboard
    from cluster.ui.play import PlayRoom
    from cluster.ui.dashboard_data import DashboardData
    from cluster.ui.replay import ReplayViewer
    from cluster.stores.replay_store import ReplayStore
    from urllib.parse import quote

    token = args.token or os.environ.get("SELFPLAY_DASHBOARD_TOKEN", "")
    try:  # a bad token is refused before the run's Redis is opened
        DashboardServer.check_token(token)
    except DashboardAuthError as exc:
        raise ConfigError(str(exc)) from exc
    with open_run_redis(args.redis_url, args.run_dir) as url:
        client = connect(url)
        run_id = _pick_run(client, args.prefix, args.run)
        keys = RunKeys(args.prefix, run_id)
        store = LeagueStore(client, keys)
        view = ""
        if args.learner:  # refused now, with the run's learners, rather than on the page
            view = "learner=" + quote(_learners_shown(store.meta() or {}, args.learner, run_id)[0])
        run_dashboard(DashboardData(store), args.host, args.port, token, play=PlayRoom(LeaguePolicies(client, keys)),
                      replays=ReplayViewer(ReplayStore(client, keys)), view=view)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cluster.run.policy_commands import evaluate

    return evaluate(args)


def _play(args: argparse.Namespace) -> int:
    from cluster.run.policy_commands import play

    return play(args)


def _export(args: argparse.Namespace) -> int:
    from cluster.run.policy_commands import export

    return export(args)


def _replay(args: argparse.Namespace) -> int:
    from actors.replay import format_replay
    from actors.roles import ROLE_SEP, role_player
    from cluster.stores.connection import connect
    from cluster.stores.keys import RunKeys
    from cluster.stores.replay_store import ReplayStore

    # Replays are kept by player id, which a game with roles namespaces already (adversary/latest):
    # --role only spells that prefix, and filters --list.
    player = args.player
    if args.role and not player.startswith(role_player(args.role, "")):
        player = role_player(args.role, player)
    with open_run_redis(args.redis_url, args.run_dir) as url:
        client = connect(url)
        run_id = _pick_run(client, args.prefix, args.run)
        store = ReplayStore(client, RunKeys(args.prefix, run_id))
        pairs = store.pairs()
        if args.list:
            of_role = f" of role {args.role}" if args.role else ""
            print(f"run {run_id}: replays kept per (player, reference) pair{of_role}")
            for p, ref, n in pairs:
                if args.opponent in ("", ref) and (not args.role or p.startswith(args.role + ROLE_SEP)):
                    print(f"  --player {p:<10} --opponent {ref:<10} {n} games")
            return 0
        opponent = args.opponent or _only_opponent(pairs, player, run_id)
        replay = store.game(player, opponent, args.index)
        n = store.count(player, opponent)
        print(f"run {run_id}: replay {args.index % n} of {n} kept of {player} against {opponent} (0 the oldest)")
        print(format_replay(replay, trusted=(args.game,) if args.game else ()))
    return 0


def _only_opponent(pairs: list[tuple[str, str, int]], player: str, run_id: str) -> str:
    refs = [r for p, r, _ in pairs if p == player]
    if len(refs) == 1:
        return refs[0]
    if not refs:
        stored = ", ".join(sorted({p for p, _, _ in pairs})) or "none"
        raise ConfigError(f"run {run_id} keeps no replays of {player!r}; players with replays: {stored}")
    raise ConfigError(f"{player} has replays against {', '.join(refs)}: choose one with --opponent")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """Where to find a run: shared by the commands that read one."""
    p.add_argument("--redis-url", default="", help="Redis of the run (default REDIS_URL)")
    p.add_argument("--run-dir", default="", help="a local run's directory (reads its embedded Redis data)")
    p.add_argument("--run", default="", help="run id (default: the newest run in that Redis)")
    p.add_argument("--prefix", default="selfplay", help="redis.key_prefix of the run")


def _add_policy_args(p: argparse.ArgumentParser, role_help: str = "") -> None:
    """--role and --config: shared by the commands that load a policy (docs/play_and_export.md)."""
    p.add_argument(
        "--role", default="",
        help=role_help or "in a game with roles (e.g. simple_tag_v3: adversary, agent), the role the policy plays "
        "(a policy file that records its role needs none)",
    )
    p.add_argument(
        "--config", default="",
        help="a config file whose game.name you trust: a game that is not built in is imported only if you name it "
        "(here or with --game), never because a run's metadata or a policy file names it",
    )


POLICY_HELP = (
    "a policy file (runs/<run>/final_policy.msgpack), a learner checkpoint (runs/<run>/checkpoints/ckpt-v*.pt), "
    "or a league player of a run (v000040, latest) with --run-dir or --redis-url"
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="selfplay", description="Distributed self-play training for PettingZoo games.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a policy by self-play (local Ray, or the cluster when run as a Ray job)")
    t.add_argument("--config", required=True, help="YAML config file (see configs/)")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    t.add_argument("--redis-url", default="", help="use this Redis (redis:// or rediss://) instead of an embedded one")
    t.add_argument("--run-dir", default="", help="directory for this run's files (default runs/<game>-<time>)")
    t.add_argument(
        "--resume", nargs="?", const=True, default=False, metavar="auto",
        help="continue the run in --run-dir from its newest checkpoint: same versions, league and ratings. "
        "`--resume auto`: continue it if it exists, start it otherwise (for jobs that are retried)",
    )
    t.set_defaults(func=_train)

    lg = sub.add_parser("league", help="print a run's league table from its Redis (Elo ± standard error)")
    _add_run_args(lg)
    lg.add_argument("--watch", type=float, default=0.0, metavar="SECONDS", help="refresh every SECONDS until Ctrl-C")
    lg.add_argument("--top", type=int, default=10, metavar="K", help="show the best K players by Elo (default 10)")
    lg.add_argument("--newest", type=int, default=5, metavar="N", help="and the newest N snapshots (default 5)")
    lg.add_argument("--filter", default="", metavar="TEXT", help="only players whose id contains TEXT, e.g. v0001")
    lg.add_argument("--all", action="store_true", help="every (matching) player, not only latest, the references, the top and the newest")
    lg.add_argument(
        "--learner", "--role", default="", metavar="NAME",
        help="only this learner's league (a game with roles has one per role, e.g. adversary); default: every learner's",
    )
    lg.set_defaults(func=_league)

    d = sub.add_parser("dashboard", help="serve a live web page of a run's league on localhost")
    _add_run_args(d)
    d.add_argument("--host", default="127.0.0.1", help="address to serve on; any but loopback needs a token")
    d.add_argument("--port", type=int, default=8765, help="port to serve on (default: %(default)s)")
    d.add_argument(
        "--token", default="",
        help="secret every request must carry (default SELFPLAY_DASHBOARD_TOKEN; off loopback one is generated "
        "and printed in the address to open); on loopback the page is open without one",
    )
    d.add_argument("--learner", "--role", default="", metavar="NAME",
                   help="open the page on this learner's league (a game with roles has one per role); the page can switch")
    d.set_defaults(func=_dashboard)

    e = sub.add_parser("evaluate", help="play a saved policy against a reference or another policy")
    e.add_argument("policy", help=POLICY_HELP)
    e.add_argument("--opponent", default="random", help="a reference name (random, minimax, tactical) or a policy file")
    e.add_argument("--games", type=int, default=200, help="games to play; seats alternate game by game (default: %(default)s)")
    e.add_argument("--game", default="", help="game name (default: the one stored in the policy file); a module path named here is trusted")
    e.add_argument("--greedy", action="store_true", help="play the most likely legal move instead of sampling")
    e.add_argument("--seed", type=int, default=0, help="seed of the games and of sampled moves (default: %(default)s)")
    _add_policy_args(e)
    _add_run_args(e)
    e.set_defaults(func=_evaluate)

    pl = sub.add_parser("play", help="play a policy yourself, in the terminal or (--web) in the browser")
    pl.add_argument("policy", help=POLICY_HELP)
    side = pl.add_mutually_exclusive_group()
    side.add_argument("--first", action="store_true", help="you move first (the default)")
    side.add_argument("--second", action="store_true", help="the policy moves first (with --role: you take your role's second seat)")
    pl.add_argument("--sample", action="store_true", help="the policy samples its moves instead of playing its most likely one")
    pl.add_argument("--seed", type=int, default=0, help="seed of the policy's sampling (with --sample)")
    pl.add_argument("--game", default="", help="game name (default: the one stored with the policy); a module path named here is trusted")
    pl.add_argument("--web", action="store_true", help="serve a page to play it in the browser instead (--host, --port); the page chooses side and sampling")
    pl.add_argument("--host", default="127.0.0.1", help="with --web: address to serve on (default: %(default)s)")
    pl.add_argument("--port", type=int, default=8765, help="with --web: port to serve on (default: %(default)s)")
    _add_policy_args(pl, "the role YOU play, in a game with roles (the other roles are played by the run's "
                     "players of those roles, or their random players)")
    _add_run_args(pl)
    pl.set_defaults(func=_play)

    x = sub.add_parser("export", help="export a policy to ONNX, checked against torch with onnxruntime")
    x.add_argument("policy", help=POLICY_HELP)
    x.add_argument(
        "--format", choices=["onnx", "policy"], default="onnx",
        help="onnx (checked against torch), or policy: a policy file (msgpack, learner/export.py) of a run's player or a checkpoint",
    )
    x.add_argument("--out", required=True, help="the file to write, e.g. policy.onnx")
    x.add_argument("--game", default="", help="game name (default: the one stored with the policy); a module path named here is trusted")
    x.add_argument("--positions", type=int, default=256, help="positions of random games the check runs both models on")
    x.add_argument("--tolerance", type=float, default=1e-5, help="largest allowed abs difference of probabilities and values")
    x.add_argument("--seed", type=int, default=0, help="seed of the random games")
    _add_policy_args(x)
    _add_run_args(x)
    x.set_defaults(func=_export)

    rp = sub.add_parser("replay", help="print a kept rating game of a run move by move (evaluators keep the last few per pair)")
    rp.add_argument("--player", default="latest", help="the rated player: latest (the learner as it was then) or a snapshot id (v000120)")
    rp.add_argument("--opponent", default="", help="the reference it played (random, minimax, tactical...); needed when there are several")
    rp.add_argument("--index", type=int, default=-1, help="which kept game: 0 the oldest, -1 the newest (the default)")
    rp.add_argument("--list", action="store_true", help="list the pairs with kept games instead (only those against --opponent, if given)")
    rp.add_argument("--role", default="", help="in a game with roles: the role of --player (adversary: adversary/latest); with --list, only that role's players")
    rp.add_argument("--game", default="", help="trust this game (a module path) if the replays name it: see docs/play_and_export.md")
    _add_run_args(rp)
    rp.set_defaults(func=_replay)

    add_submit_parser(sub)
    add_config_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A console script, unlike `python -m`, does not see the current directory: a game module of your
    # own there (game.name: mygame:env) should import all the same. Appended, so it hides nothing installed.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"selfplay: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

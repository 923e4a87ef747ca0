"""`selfplay submit` and `selfplay config`: the commands that check a config on the user's machine
before a run starts, here or as a job on a Ray cluster (cluster/run/cli.py registers them).

Nothing here imports Ray until a job is submitted, so `import cluster.run.cli` stays light.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cluster.config import Config, ConfigError, load_config


class SubmitError(Exception):
    """`selfplay submit` could not reach the cluster or have the job accepted; the message says why."""


def checked_config(config: str | None, sets: list[str] | None, run_dir: str = "", resume: bool | str = False) -> Config:
    """The config as `selfplay train` loads and checks it before it starts anything: keys and
    values, the game (it must import and load here), the model against the game, --run-dir and
    --resume. Raises ConfigError or GameError."""
    from cluster.run.resume import RunError
    from cluster.run.train_checks import check_before_training

    cfg = load_config(config, sets or [])
    try:
        check_before_training(cfg, run_dir, resume)
    except RunError as exc:
        raise ConfigError(str(exc)) from exc
    return cfg


def config_yaml(cfg: Config) -> str:
    """The whole config as a YAML file: sections as blocks, lists on one line ([128, 128])."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
    return yaml.dump(cfg.to_dict(), Dumper=Dumper, sort_keys=False, default_flow_style=False)


def _config_show(args: argparse.Namespace) -> int:
    print(config_yaml(checked_config(args.config, args.set)), end="")
    return 0


def _config_doc(args: argparse.Namespace) -> int:
    from cluster.run.config_doc import render

    sys.stdout.write(render())
    return 0


def _submit(args: argparse.Namespace) -> int:
    from cluster.remote import submit as sb

    if args.run_dir and not os.path.isabs(args.run_dir):
        raise ConfigError(
            f"--run-dir {args.run_dir} is relative: the job runs in a temporary copy of the working directory, which "
            "goes with the job; give an absolute path on the head node, e.g. /home/ray/runs/NAME"
        )
    cfg = checked_config(args.config, args.set, args.run_dir, args.resume)  # a typo fails here, not on the cluster
    try:
        config = sb.config_in_working_dir(args.config, args.working_dir)
        modules = [*sb.game_py_modules(cfg.game.name, args.working_dir), *(os.path.abspath(m) for m in args.py_module or [])]
        status = sb.submit_job(
            args.address, sb.train_args(config, args.set, args.run_dir, args.resume), working_dir=args.working_dir,
            env={"REDIS_URL": args.redis_url} if args.redis_url else None, follow=not args.no_follow,
            runtime_env_extra={"py_modules": modules} if modules else None,
            run_id=cfg.run.run_id or (Path(args.run_dir).name if args.run_dir else ""),
        )
    except (sb.ClusterConnectionError, ValueError, TypeError, TimeoutError, RuntimeError, OSError) as exc:
        # Ray's client raises these for an address, a token or a package it cannot use: one line each.
        raise SubmitError(str(exc)) from exc
    print(f"job status: {status}")
    ok = ("SUCCEEDED",) if not args.no_follow else ("SUCCEEDED", "PENDING", "RUNNING")
    return 0 if str(status) in ok else 1


def add_submit_parser(sub: argparse._SubParsersAction) -> None:
    sb = sub.add_parser(
        "submit", help="check a config here, then run `selfplay train` with it as a job on a Ray cluster (docs/cluster.md)",
        description="Check the config as `selfplay train` does, then submit `selfplay train` through Ray's Jobs API, "
        "shipping the working directory (without runs/, .git, .venv) and a game module of your own (game.name: "
        "mygame:env) that lies outside it. Prints the job id and the commands to follow it.",
    )
    sb.add_argument("--address", required=True, help="Ray dashboard address, e.g. http://HEAD:8265")
    sb.add_argument("--config", required=True, help="YAML config file inside the working directory (see configs/)")
    sb.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    sb.add_argument(
        "--run-dir", default="",
        help="absolute run directory on the head node, kept across jobs (default: runs/<game>-<time> in the job's temporary copy)",
    )
    sb.add_argument(
        "--resume", nargs="?", const=True, default=False, metavar="auto",
        help="as `selfplay train --resume`; `--resume auto` (with --run-dir) makes a retried or resubmitted job continue its run",
    )
    sb.add_argument("--redis-url", default="", help="the Redis the cluster's nodes reach, set as the job's REDIS_URL (default: REDIS_URL here, if set)")
    sb.add_argument("--working-dir", default=".", help="folder shipped as the job's working directory (default: %(default)s, the repository root)")
    sb.add_argument("--py-module", action="append", metavar="PATH", help="another local module or package folder to ship (Ray's py_modules; repeatable)")
    sb.add_argument("--no-follow", action="store_true", help="print the job id and the commands to follow it, and return")
    sb.set_defaults(func=_submit)


def add_config_parser(sub: argparse._SubParsersAction) -> None:
    cf = sub.add_parser("config", help="print a config with every default filled in, or the config reference")
    csub = cf.add_subparsers(dest="config_command", required=True)
    show = csub.add_parser("show", help="print CONFIG with every default filled in (YAML), after the checks `train` makes")
    show.add_argument("config", nargs="?", default=None, help="YAML config file (default: none, the defaults alone)")
    show.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value (repeatable)")
    show.set_defaults(func=_config_show)
    doc = csub.add_parser("doc", help="print the config reference (docs/config.md): every key, type, default and documentation")
    doc.set_defaults(func=_config_doc)

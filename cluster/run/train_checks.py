"""What `selfplay train` refuses before anything starts, checked without Ray, Redis or a cluster.

`selfplay config show` and `selfplay submit` run these checks on the user's machine, so that a
misspelt key, an unknown game or a model that cannot play the game is reported there, in one line,
rather than minutes later in a job's log on the cluster. run_training checks the same things again
where it runs (cluster/run/trainer.py).
"""

from __future__ import annotations

from actors.games import GameSpec, load_game
from cluster.config import Config, check_model_fits
from cluster.run.resume import RunError
from learner.checkpoint_store import is_uri


def check_resume_args(run_dir: str, resume: bool | str) -> None:
    """The --run-dir / --resume combinations run_training refuses (same messages)."""
    if resume not in (False, True, "auto"):
        raise RunError(f"--resume takes no value, or 'auto' (continue the run if it exists, else start it); got {resume!r}")
    if resume and not run_dir:
        what = "--resume auto needs a run directory that stays the same across tries" if resume == "auto" else "--resume continues an existing run"
        raise RunError(f"{what}: say which with --run-dir DIR")
    if is_uri(run_dir):
        raise RunError(
            f"the run directory {run_dir} must be local (TensorBoard files, the embedded Redis' data, the final "
            "policy); to keep checkpoints in object storage, add --set checkpoint.uri=s3://BUCKET/PATH (or gs://, ...)"
        )


def check_before_training(cfg: Config, run_dir: str = "", resume: bool | str = False) -> GameSpec:
    """Load the game and check that the config can train it, as run_training does before it
    starts Ray; return the game's spec. Raises ConfigError, GameError or RunError."""
    from cluster.run.roles_run import check_roles_run  # imports the Ray side of a run

    _, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native, cfg.game.sides, cfg.game.roles)
    if spec.roles:
        check_roles_run(cfg, spec, resume)
        for role in spec.roles:
            check_model_fits(cfg, spec.role(role.name))
    else:
        check_model_fits(cfg, spec)
    check_resume_args(run_dir or cfg.run.run_dir, resume)
    return spec

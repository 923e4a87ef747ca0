"""What `selfplay train` refuses before anything starts, checked without Ray, Redis or a cluster.

`selfplay config show` and `selfplay submit` run these checks on the user's machine, so that a
misspelt key, an unknown game or a model that cannot play the game is reported there, in one line,
rather than minutes later in a job's log on the cluster. run_training runs the same checks
where it runs (cluster/run/trainer.py).
"""

from __future__ import annotations

from actors.games import GameSpec
from cluster.config import Config
from cluster.plan import plan_run
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
    """Resolve the game and its learners and check that the config can train them, as run_training
    does before it starts Ray (the same plan_run); return the game's spec. Raises ConfigError,
    GameError or RunError."""
    plan = plan_run(cfg)
    check_resume_args(run_dir or cfg.run.run_dir, resume)
    return plan.spec

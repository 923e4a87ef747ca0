"""Policy files: a trained policy saved as msgpack with what is needed to rebuild it.

    from learner.export import load_policy
    policy = load_policy("runs/<run>/final_policy.msgpack")   # or runs/<run>/checkpoints/ckpt-v00000153.pt
    actions, logp, values = policy.act(obs_batch, mask_batch, np.random.default_rng(0), greedy=True)

A policy file holds the weights plus {game, model, head, obs_shape, obs_dim, num_actions}, the game's
setup where the run had one (game_kwargs, sides, roles: GAME_SETUP_KEYS), and `role`
for one role's policy of a game with roles; it is never pickled. A learner checkpoint (learner/checkpoint.py) loads too: it carries the same facts, and is
read with torch.load(weights_only=True).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from learner.arch import CATEGORICAL, ModelConfig, as_model_config, head_from_meta, model_from_meta
from learner.model import InferencePolicy
from learner.wire import PayloadError, decode_weights, encode_weights


GAME_SETUP_KEYS = {"kwargs": "game_kwargs", "sides": "sides", "roles": "roles"}
"""The parts of a run's `game` section besides its name that decide which game is played (the env's
kwargs: 4-player hold'em, Atari from RAM with a frame skip; the sides; the roles). A policy file
keeps them under the names given here, so it is played later in the game it learned."""


def policy_meta(game: str, model: ModelConfig | tuple, obs_shape, num_actions: int, head: str = CATEGORICAL, role: str = "",
                setup: dict | None = None) -> dict:
    """What a reader needs to rebuild the network. `obs_shape` may be a bare int (a flat observation);
    `head` is the game's policy head (gaussian for Box games, num_actions then the action's size).
    `role`: in a game with roles (actors/roles.py), the role this network plays; obs_shape,
    num_actions and head are then that role's (GameSpec.role). Absent for a game without roles.
    `setup`: the run's game section (or any dict with GAME_SETUP_KEYS); its non-empty parts are kept."""
    model = as_model_config(model)
    shape = [int(obs_shape)] if isinstance(obs_shape, (int, np.integer)) else [int(d) for d in obs_shape]
    kept = {stored: dict((setup or {}).get(k) or {}) for k, stored in GAME_SETUP_KEYS.items()}
    return {
        **({"role": str(role)} if role else {}),  # files without it (older, or role-less games) stay readable
        **{k: v for k, v in kept.items() if v},  # absent from files of games played as built (and older files)
        "game": game,
        "model": model.to_dict(),
        "head": head,  # absent from files written before Box games: categorical
        "hidden_sizes": [int(h) for h in model.hidden_sizes],  # what readers before model kinds look for
        "obs_shape": shape,
        "obs_dim": int(np.prod(shape)),
        "num_actions": int(num_actions),
    }


def game_setup(meta: dict, source: str) -> dict:
    """A policy file's game setup (policy_meta's `setup`) as load_game takes it: {kwargs, sides,
    roles}, each {} where the file has none. The file is data, perhaps from someone else: each part
    must be a mapping with string keys, sides and roles lists of strings, or PayloadError says which."""
    out = {}
    for key, stored in GAME_SETUP_KEYS.items():
        value = meta.get(stored) or {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise PayloadError(f"{source}: its {stored} is not a mapping with string keys: {value!r}")
        if key != "kwargs" and not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values()):
            raise PayloadError(f"{source}: its {stored} must map names to lists of names: {value!r}")
        out[key] = value
    return out


def save_policy(path: str | Path, tensors: dict[str, np.ndarray], version: int, meta: dict) -> None:
    from learner.checkpoint import atomic_write  # (learner/checkpoint.py imports this module's policy_meta)

    atomic_write(Path(path), encode_weights(tensors, version, meta))  # temp file, fsync, rename: never half a file, even after a power cut


def policy_from_blob(blob: bytes, fallback_meta: dict | None = None) -> InferencePolicy:
    version, tensors, meta = decode_weights(blob)
    meta = {**(fallback_meta or {}), **meta}
    missing = [k for k in ("hidden_sizes", "obs_dim", "num_actions") if k not in meta]
    if missing:
        raise PayloadError(f"policy file lacks {missing}; it was not written by save_policy")
    return build_policy(tensors, version, meta)


def build_policy(tensors: dict[str, np.ndarray], version: int, meta: dict) -> InferencePolicy:
    """An InferencePolicy of the shape `meta` names (policy_meta's keys), holding `tensors`."""
    shape = tuple(int(d) for d in meta["obs_shape"]) if meta.get("obs_shape") else int(meta["obs_dim"])
    try:
        head = head_from_meta(meta)
    except ValueError as exc:
        raise PayloadError(str(exc)) from exc
    policy = InferencePolicy(shape, int(meta["num_actions"]), model_from_meta(meta), version, head=head)
    policy.load(tensors, version)
    policy.meta = meta
    return policy


def load_policy(path: str | Path) -> InferencePolicy:
    """A policy file (msgpack, from save_policy) or a learner checkpoint (ckpt-v*.pt)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no policy file at {p}")
    blob = p.read_bytes()
    if blob[:2] == b"PK":  # torch.save's zip container: a learner checkpoint
        return policy_from_checkpoint(blob, str(p))
    try:
        return policy_from_blob(blob)
    except PayloadError as exc:  # the decoder knows the bytes, not the file they came from
        raise PayloadError(f"{p} is not a policy file saved by selfplay: {exc}") from exc


def policy_from_checkpoint(blob: bytes, source: str = "checkpoint") -> InferencePolicy:
    from learner.checkpoint import decode_checkpoint

    ckpt = decode_checkpoint(blob, source)
    spec = ckpt.spec
    game_section = (ckpt.config or {}).get("game")  # the run's config: a checkpoint knows the game it was trained on
    meta = policy_meta(spec["game"], model_from_meta(spec), spec.get("obs_shape") or spec["obs_dim"], spec["num_actions"], head_from_meta(spec),
                       spec.get("role", ""), game_section if isinstance(game_section, dict) else None)
    return build_policy({k: v.numpy() for k, v in ckpt.learner["model"].items()}, ckpt.version, meta)

"""Policy files: a trained policy saved as msgpack with what is needed to rebuild it.

    from learner.export import load_policy
    policy = load_policy("runs/<run>/final_policy.msgpack")
    actions, logp, values = policy.act(obs_batch, mask_batch, np.random.default_rng(0), greedy=True)

The file holds the weights plus {game, hidden_sizes, obs_dim, num_actions}; it is never pickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cluster.wire import PayloadError, decode_weights, encode_weights
from learner.model import InferencePolicy


def policy_meta(game: str, hidden_sizes, obs_dim: int, num_actions: int) -> dict:
    return {"game": game, "hidden_sizes": [int(h) for h in hidden_sizes], "obs_dim": int(obs_dim), "num_actions": int(num_actions)}


def save_policy(path: str | Path, tensors: dict[str, np.ndarray], version: int, meta: dict) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(encode_weights(tensors, version, meta))
    tmp.replace(path)  # atomic: a reader never sees half a file


def policy_from_blob(blob: bytes, fallback_meta: dict | None = None) -> InferencePolicy:
    version, tensors, meta = decode_weights(blob)
    meta = {**(fallback_meta or {}), **meta}
    missing = [k for k in ("hidden_sizes", "obs_dim", "num_actions") if k not in meta]
    if missing:
        raise PayloadError(f"policy file lacks {missing}; it was not written by save_policy")
    policy = InferencePolicy(int(meta["obs_dim"]), int(meta["num_actions"]), tuple(meta["hidden_sizes"]), version)
    policy.load(tensors, version)
    policy.meta = meta
    return policy


def load_policy(path: str | Path) -> InferencePolicy:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no policy file at {p}")
    return policy_from_blob(p.read_bytes())

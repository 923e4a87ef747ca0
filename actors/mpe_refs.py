"""Heuristic chasers and evaders for mpe2's simple_tag_v3 and simple_world_comm_v3, one per role.

Scripted players (ScriptedFn: obs, mask, rng -> action) reading the observation vectors as the
scenarios build them (mpe2/simple_tag/simple_tag.py and simple_world_comm/simple_world_comm.py,
`observation`), for the games' default sizes:

- simple_tag_v3 (3 predators `adversary_*`, 1 prey `agent_0`, 2 obstacles): a predator sees
  [own vel 2, own pos 2, obstacles 4, other agents' relative positions 6 (two predators, then the
  prey at 12:14), the prey's velocity 14:16]; the prey sees [own vel, own pos, obstacles 4:8, the
  three predators' relative positions 8:14].
- simple_world_comm_v3 (a leader `leadadversary_0`, 3 predators, 2 prey, 1 obstacle, 2 food, 2
  forests): predators and the leader see [vel, pos, obstacle 4:6, food 6:10, forests 10:14, other
  agents 14:24 (the prey last, 20:24, zeros when hidden in a forest), prey velocities 24:28,
  in-forest flags 28:30, the leader's message 30:34]; a prey sees [vel, pos, obstacle, food 6:10,
  forests, other agents 14:24 (leader 14:16, predators 16:22, the other prey 22:24), ...].

Discrete moves are 0 stay, 1 -x, 2 +x, 3 -y, 4 +y (mpe2's _set_action); the leader's 20 moves
are move + 5 x message, and it always sends message 0. Each player steers towards a desired
direction by picking the move whose direction is closest to it.
"""

from __future__ import annotations

import numpy as np

from actors.scripted import ScriptedFn

_MOVES = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
_ARENA = 0.8  # past this distance from the centre a prey is pulled back (simple_tag penalises |x| > 0.9)


def _steer(direction: np.ndarray, mask: np.ndarray) -> int:
    """The legal move closest to `direction` (stay when it is ~zero)."""
    if float(np.hypot(*direction)) < 1e-6:
        return 0
    scores = _MOVES @ direction
    legal = np.asarray(mask, bool)[: len(_MOVES)]
    scores = np.where(legal, scores, -np.inf)
    return int(np.argmax(scores))


def _check(obs: np.ndarray, size: int, who: str) -> np.ndarray:
    obs = np.asarray(obs, np.float64).reshape(-1)
    if obs.size != size:
        raise ValueError(f"{who} reads the default-sized game's {size}-number observation; got {obs.size} (non-default kwargs?)")
    return obs


def _chase(targets: list[np.ndarray], velocities: list[np.ndarray]) -> np.ndarray:
    """Towards the nearest visible target, led by its velocity (zeros: hidden or absent)."""
    seen = [(t, v) for t, v in zip(targets, velocities) if np.hypot(*t) > 1e-9]
    if not seen:
        return np.zeros(2)
    t, v = min(seen, key=lambda tv: float(np.hypot(*tv[0])))
    return t + 0.3 * v  # aim where the prey will be a few steps from now


def _flee(own_pos: np.ndarray, threats: list[np.ndarray]) -> np.ndarray:
    """Away from the threats, the nearest counting most (inverse square), and back from the edge."""
    away = np.zeros(2)
    for t in threats:
        d = float(np.hypot(*t))
        if d > 1e-9:
            away -= t / d**3
    edge = np.where(np.abs(own_pos) > _ARENA, -np.sign(own_pos) * (np.abs(own_pos) - _ARENA) * 50.0, 0.0)
    norm = float(np.hypot(*away))
    return (away / norm if norm > 0 else away) + edge


def tag_chaser(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """simple_tag predator: runs at the prey, aiming ahead of it by its velocity."""
    o = _check(obs, 16, "tag_chaser")
    return _steer(_chase([o[12:14]], [o[14:16]]), mask)


def tag_evader(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """simple_tag prey: flees the predators (the nearest most), staying inside the arena."""
    o = _check(obs, 14, "tag_evader")
    return _steer(_flee(o[2:4], [o[8:10], o[10:12], o[12:14]]), mask)


def comm_chaser(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """simple_world_comm predator: runs at the nearest visible prey (random when none is seen)."""
    o = _check(obs, 34, "comm_chaser")
    direction = _chase([o[20:22], o[22:24]], [o[24:26], o[26:28]])
    if not direction.any():
        return int(rng.integers(len(_MOVES)))
    return _steer(direction, mask)


def comm_leader(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """simple_world_comm leader: chases as a predator does and always sends message 0."""
    return comm_chaser(obs, np.asarray(mask)[: len(_MOVES)], rng)  # move + 5 * 0


def comm_evader(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """simple_world_comm prey: flees predators within 0.6, else heads for the nearer food."""
    o = _check(obs, 28, "comm_evader")
    threats = [o[k : k + 2] for k in range(14, 22, 2)]
    near = [t for t in threats if 1e-9 < float(np.hypot(*t)) < 0.6]
    if near:
        return _steer(_flee(o[2:4], near), mask)
    food = min((o[6:8], o[8:10]), key=lambda f: float(np.hypot(*f)))
    return _steer(food, mask)


# (game, role) -> the role's references besides random
ROLE_REFERENCES: dict[tuple[str, str], dict[str, ScriptedFn]] = {
    ("simple_tag_v3", "adversary"): {"chaser": tag_chaser},
    ("simple_tag_v3", "agent"): {"evader": tag_evader},
    ("simple_world_comm_v3", "leadadversary"): {"chaser": comm_leader},
    ("simple_world_comm_v3", "adversary"): {"chaser": comm_chaser},
    ("simple_world_comm_v3", "agent"): {"evader": comm_evader},
}

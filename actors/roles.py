"""Roles: groups of sides that one policy can play, for games whose sides observe or act differently.

In mpe2's simple_tag three predators (`adversary_*`, one side) chase one prey (`agent_0`, the
other): the predators observe 16 numbers, the prey 14, so no single network plays both. A *role*
is a set of sides whose agents share one observation shape and one action space; each role gets
its own policy, learner stream and league (docs/architecture.md, "Asymmetric roles").

Default: sides grouped by that signature, the role named after its first side. `game.roles`
({role: [side, ...]}) names them explicitly (every side in exactly one role). A game whose sides
all share one signature has ONE role and is played exactly as before roles existed: the same
code path, keys and player ids (actors/games.py gives its spec no roles at all).

Player ids of a game with roles are namespaced by role (`adversary/latest`, `adversary/v000010`,
`agent/random`), built here only (role_player), so that nothing parses them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable

import numpy as np

from learner.arch import CATEGORICAL, GAUSSIAN


class RoleError(ValueError):
    """The role mapping does not fit the game's sides; the message says how to fix it."""


ROLE_SEP = "/"
"""Between a role's name and a player's name in a role-namespaced player id."""


def role_player(role: str, name: str) -> str:
    """The id of player `name` (`latest`, `random`, a snapshot's `v000010`) of `role`."""
    return f"{role}{ROLE_SEP}{name}"


@dataclass(frozen=True)
class RoleSpec:
    """What one role's policy needs to know: its sides, what its agents observe, how they act."""

    name: str
    sides: tuple[int, ...]
    """Indices into GameSpec.sides."""
    obs_shape: tuple[int, ...]
    num_actions: int
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()

    @property
    def head(self) -> str:
        return GAUSSIAN if self.action_low else CATEGORICAL


def action_signature(space: Any) -> Hashable:
    """What must agree for one policy head to act in `space`: Discrete's size, Box's shape and bounds."""
    if hasattr(space, "n"):
        return ("discrete", int(space.n))
    shape = tuple(getattr(space, "shape", ()) or ())
    low = tuple(np.asarray(getattr(space, "low", ())).reshape(-1).tolist())
    high = tuple(np.asarray(getattr(space, "high", ())).reshape(-1).tolist())
    return (type(space).__name__, shape, low, high)


def map_roles(
    side_names: tuple[str, ...],
    sides: tuple[tuple[int, ...], ...],
    seat_signatures: tuple[Hashable, ...],
    explicit: dict | None = None,
) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """(role names, the sides (indices into `sides`) of each role).

    `seat_signatures[i]`: what seat i observes and how it acts (shape, action signature); seats of
    one role must share it. `explicit`: {role: [side name, ...]} covering every side exactly once."""
    side_sig = []
    for name, seats in zip(side_names, sides):
        sigs = {seat_signatures[i] for i in seats}
        if len(sigs) > 1:
            raise RoleError(
                f"side {name!r} has agents that observe or act differently ({sorted(map(str, sigs))}); "
                "one policy plays a whole side, so split it with game.sides"
            )
        side_sig.append(sigs.pop())
    if explicit:
        index = {n: k for k, n in enumerate(side_names)}
        names, groups, seen = [], [], set()
        for role, members in explicit.items():
            role = str(role)
            if not role or ROLE_SEP in role:
                raise RoleError(f"game.roles: role name {role!r} must be non-empty and without {ROLE_SEP!r}")
            members = [members] if isinstance(members, str) else list(members)
            unknown = [m for m in members if m not in index]
            if unknown or not members:
                raise RoleError(f"game.roles[{role!r}] names {unknown or 'no sides'}; the game's sides are {list(side_names)}")
            twice = seen.intersection(members)
            if twice:
                raise RoleError(f"sides {sorted(twice)} are in more than one role of game.roles")
            seen.update(members)
            ks = tuple(sorted(index[m] for m in members))
            if len({side_sig[k] for k in ks}) > 1:
                raise RoleError(
                    f"game.roles[{role!r}] joins sides {members} whose agents observe or act differently; "
                    "one policy plays a role, so give them separate roles"
                )
            names.append(role)
            groups.append(ks)
        missing = [n for n in side_names if n not in seen]
        if missing:
            raise RoleError(f"game.roles leaves sides {missing} without a role; every side needs one")
        return tuple(names), tuple(groups)
    by_sig: dict[Hashable, list[int]] = {}
    for k, sig in enumerate(side_sig):
        by_sig.setdefault(sig, []).append(k)
    groups = [tuple(ks) for ks in by_sig.values()]
    names = [side_names[ks[0]].replace(ROLE_SEP, "_") for ks in groups]
    return tuple(names), tuple(groups)


def role_of_sides(roles: tuple[RoleSpec, ...], num_sides: int) -> tuple[int, ...]:
    """Per side, the index of its role (all 0 for a game without roles)."""
    out = [0] * num_sides
    for r, role in enumerate(roles):
        for k in role.sides:
            out[k] = r
    return tuple(out)

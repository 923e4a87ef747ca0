"""Reference players named by import path: a user's own scripted player, `package.module:function`.

`eval.references` lists built-in names (actors/scripted.py) and import paths side by side. A path
names a function `(obs, mask, rng) -> action`, as the built-in players are (ScriptedFn): `obs` the
raw PettingZoo observation from the mover's side, `mask` the legal-action mask, `rng` a numpy
Generator (the only randomness it should use, so rating games repeat from their seeds).

Its player id in the league, on the dashboard and in Redis keys is the path itself: readable,
stable across runs and restarts, and made of identifier characters, dots and one colon, which
the key layout (cluster/stores/keys.py) and the dashboard's escaping carry as they are.

The config check imports the module and checks the function is callable; at play time every
action it returns is checked against the mask, so a wrong move names the player and the move
instead of surfacing as an illegal action of "some seat" deep in a game.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable

import numpy as np

from actors.scripted import ScriptedFn

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


class ReferencePathError(ValueError):
    """A reference named by import path cannot be used; the message names it and says why."""


class IllegalReferenceAction(RuntimeError):
    """A reference player returned a move the game does not allow now."""


def is_import_path(name: str) -> bool:
    """Whether `name` names a player by import path (built-in names have no colon)."""
    return ":" in name


def load_reference(path: str) -> ScriptedFn:
    """Import `package.module:function` and check it is callable; ReferencePathError says what is wrong."""
    if not _PATH.fullmatch(path):
        raise ReferencePathError(
            f"reference {path!r} is not an import path of the form package.module:function "
            "(identifiers separated by dots, one colon before the function's name)"
        )
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ReferencePathError(f"reference {path!r}: cannot import module {module_name!r} ({exc}); is it installed or on PYTHONPATH?") from exc
    fn = getattr(module, attr, None)
    if fn is None:
        raise ReferencePathError(f"reference {path!r}: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise ReferencePathError(f"reference {path!r}: {attr!r} is a {type(fn).__name__}, not a function (obs, mask, rng) -> action")
    return CheckedReference(path, fn)


class CheckedReference:
    """A user's player, its every move checked against the legal mask (Discrete games)."""

    def __init__(self, name: str, fn: ScriptedFn) -> None:
        self.name, self.fn = name, fn

    def __call__(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
        action = self.fn(obs, mask, rng)
        mask = np.asarray(mask)
        if mask.size == 0:  # a Box game: the game clips the vector to its bounds
            return action
        try:
            a = int(action)
        except (TypeError, ValueError):
            a = None
        if a is None or a != action or not 0 <= a < mask.size or not mask[a]:
            legal = np.flatnonzero(mask).tolist()
            raise IllegalReferenceAction(f"reference player {self.name!r} returned action {action!r}, which is not legal here (legal actions: {legal})")
        return a

    def __repr__(self) -> str:
        return f"CheckedReference({self.name!r})"


def with_imported(available: dict[str, ScriptedFn], names: Iterable[str]) -> dict[str, ScriptedFn]:
    """`available` (a game's built-in references) plus the players that `names` give by import path,
    loaded and checked; names of built-ins are left to the caller. A fresh dict."""
    out = dict(available)
    for name in names:
        if is_import_path(name) and name not in out:
            out[name] = load_reference(name)
    return out


def check_reference_names(names: Iterable[str], known: Iterable[str], what: str, game: str) -> None:
    """Each name is a built-in of the game or a loadable import path; ReferencePathError says which is not."""
    known = list(known)
    for name in names:
        if is_import_path(name):
            load_reference(name)
        elif name not in known:
            raise ReferencePathError(
                f"{what}: {name!r} is not a reference player of {game}; choose from {', '.join(known)}, "
                "or name your own as package.module:function"
            )

"""Which game a name means: PettingZoo built-ins, mpe2, and games of the user's own named by import
path (resolve_game), the install hint for a missing package, and which names may be imported when
read from data rather than given by the user (check_trusted_game). actors/games.py loads the game.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Callable, Collection

# pettingzoo.mpe moved to the separate mpe2 package (tried below), and importing it now raises.
BUILTIN_FAMILIES = ("classic", "butterfly", "sisl", "atari")
GAME_EXTRAS = {
    "mpe2": "mpe",
    "multi_agent_ale_py": "atari",
    "ale_py": "atari",
    "pygame": "butterfly",
    "pymunk": "butterfly",
    "Box2D": "sisl",
    "rlcard": "classic",
}
"""The pyproject extra that installs a missing package a game family needs (module -> extra)."""
_MPE_NAME = re.compile(r"^(simple\w*|collect_treasure)_v\d+$")


def _missing_package_error(name: str, package: str) -> GameError:
    extra = GAME_EXTRAS.get(package.split(".")[0])
    # The README installs from a checkout; a wheel of the project takes the same extra.
    fix = f"pip install -e \".[{extra}]\" from a checkout (or pip install 'selfplay[{extra}]')" if extra else f"pip install {package}"
    return GameError(f"game {name!r} needs the package {package!r}, which is not installed: {fix}")


class GameError(ValueError):
    """The game cannot be loaded or does not fit this system; the message says why."""


def resolve_game(name: str) -> Callable[..., Any]:
    """Return a factory making the env for `name`: an AEC env, or a ParallelEnv for a game that
    has a parallel API (load_game steps each kind as what it is).

    Accepts a built-in PettingZoo name ('connect_four_v3'), an mpe2 name, or an import path: any
    name with ':' ('mygame:env', 'package.module:factory') or a dotted 'package.module' exposing
    env()/parallel_env(). A name with ':' is never looked up among the built-ins.
    """
    module_name, colon, attr = name.partition(":")
    if colon and not (module_name and attr):
        raise GameError(f"game {name!r}: an import path needs a module and a factory, e.g. 'mygame:env'")
    candidates = [module_name] if colon or "." in module_name else [
        *(f"pettingzoo.{fam}.{module_name}" for fam in BUILTIN_FAMILIES),
        f"mpe2.{module_name}",
    ]
    errors = []
    for cand in candidates:
        try:
            module = importlib.import_module(cand)
        except ModuleNotFoundError as exc:
            # Only "this module does not exist" means try the next family; a missing dependency
            # of an existing game module (e.g. pygame) must be reported as such.
            if exc.name and not cand.startswith(exc.name) and exc.name not in cand:
                raise _missing_package_error(name, exc.name) from exc
            if cand.startswith("mpe2.") and exc.name == "mpe2" and _MPE_NAME.match(module_name):
                raise _missing_package_error(name, "mpe2") from exc
            errors.append(cand)
            continue
        except ImportError as exc:
            raise GameError(f"game {name!r} could not be imported: {exc}") from exc
        if attr:
            if not hasattr(module, attr):
                raise GameError(f"game {name!r}: module {cand} has no attribute {attr!r}")
            return getattr(module, attr)
        # A game with a parallel API is stepped as a parallel game (actors/parallel_games.py).
        if cand.startswith("pettingzoo.atari."):
            from actors.atari import atari_factory  # ROMs from ale-py, and `frameskip`

            return atari_factory(module.parallel_env, name)
        if hasattr(module, "parallel_env"):
            return module.parallel_env
        if hasattr(module, "env"):
            return module.env
        raise GameError(f"game {name!r}: module {cand} has neither env() nor parallel_env()")
    if len(candidates) == 1:  # an import path: say where Python looked
        raise GameError(
            f"unknown game {name!r}: module {module_name!r} cannot be imported. Put the folder holding it on "
            f"PYTHONPATH (selfplay adds the current directory), or install its package (docs/custom_game.md)."
        )
    raise GameError(
        f"unknown game {name!r}: not a PettingZoo built-in ({', '.join((*BUILTIN_FAMILIES, 'mpe2'))}) and not an "
        f"importable module path. Use e.g. 'connect_four_v3', 'tictactoe_v3', 'simple_tag_v3' or a module of your "
        f"own, 'mygame:env' (docs/custom_game.md)."
    )


BUILTIN_FACTORIES = ("", "env", "parallel_env", "raw_env")
"""The factories of a built-in game a name may pick (`connect_four_v3:raw_env`)."""


def is_builtin_game(name: str) -> bool:
    """A name that can only import a PettingZoo built-in or an mpe2 game (no dotted module path)."""
    module_name, _, attr = name.partition(":")
    return "." not in module_name and attr in BUILTIN_FACTORIES


def check_trusted_game(name: str, trusted: Collection[str]) -> None:
    """GameError unless `name` is a built-in game or one of `trusted`: the names the user gave on the
    command line or in a config file. A name read from Redis or from a policy file is data that
    anyone who can write there chose; importing it would run their code (issue 22, item 2)."""
    if is_builtin_game(name) or name in trusted:
        return
    raise GameError(
        f"game {name!r} is not a built-in game, and it was read from data (a run's metadata, a policy file, a replay), not given by you: "
        f"importing it would run code that whoever wrote that data chose. If you trust it, name it yourself: "
        f"pass --game {name} (or --config FILE whose game.name is {name})"
    )

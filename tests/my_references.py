"""Reference players named by import path in the tests (actors/references.py), as a user's own module
would hold them: `tests.my_references:centre_first` and friends. Tic-tac-toe observations."""

from __future__ import annotations

import numpy as np


def centre_first(obs, mask, rng):
    """Take the centre when it is free, else a random legal cell."""
    if mask[4]:
        return 4
    return int(rng.choice(np.flatnonzero(mask)))


def always_zero(obs, mask, rng):
    """Plays cell 0 whether or not it is free: an illegal move once it is taken."""
    return 0


not_a_function = 3

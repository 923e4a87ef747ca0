"""A "game" factory with a side effect, for tests/test_untrusted_game.py: calling it writes the file
named by $SELFPLAY_TEST_MARKER, as code a hostile Redis writer names would do something worse.
It then returns a real game, so a run that trusts it goes on."""

from __future__ import annotations

import os
from pathlib import Path


def make(**kwargs):
    Path(os.environ["SELFPLAY_TEST_MARKER"]).write_text("ran")
    from tests.team_games import chase

    return chase(**kwargs)


def make_plain(**kwargs):
    """The same, returning a game without roles (tests.team_games:relay)."""
    Path(os.environ["SELFPLAY_TEST_MARKER"]).write_text("ran")
    from tests.team_games import relay

    return relay(**kwargs)

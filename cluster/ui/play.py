"""The dashboard's play page, server side: games of a person against a policy, one request per move.

The page (cluster/ui/web/play.html, play.js) asks /api/play/options for the game and the players it
can play, starts a game with POST /api/play/new {player, first, sample} and plays with POST
/api/play/move {id, action}; every answer is the game's state (`PlayRoom.state`), the policy's reply
already made. The rules live in actors/human.py; this module only keeps the games of the page's
visitors (bounded: the oldest is dropped past `max_games`) and loads policies from a `PolicySource`.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from typing import Protocol

from collections.abc import Mapping

from actors.human import GRID_BOARDS, OUTCOME_TEXT, HumanMatch, MoveError
from learner.model import InferencePolicy

OPTIONS_LIMIT, OPTIONS_MAX = 200, 1000  # /api/play/options?limit=N: its default and its cap


class PolicySource(Protocol):
    """Where the page's policies come from: a run's league (cluster/run/policies.py LeaguePolicies),
    or a fixed set of loaded policies (FixedPolicies)."""

    def game(self) -> str: ...

    def players(self) -> list[str]: ...

    def load(self, player: str) -> InferencePolicy: ...


class FixedPolicies:
    """Policies loaded once (`selfplay play POLICY --web`), by the names the page shows."""

    def __init__(self, game: str, policies: dict[str, InferencePolicy]) -> None:
        self._game, self._policies = game, dict(policies)

    def game(self) -> str:
        return self._game

    def players(self) -> list[str]:
        return list(self._policies)

    def load(self, player: str) -> InferencePolicy:
        if player not in self._policies:
            raise LookupError(f"no player {player!r} here; choose one of {', '.join(self._policies)}")
        return self._policies[player]


class PlayRoom:
    """The games being played on the page. Thread-safe: the dashboard serves requests on threads."""

    def __init__(self, source: PolicySource, max_games: int = 64) -> None:
        self.source = source
        self.max_games = max_games
        self._games: OrderedDict[str, tuple[str, HumanMatch]] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def options(self, limit: int = OPTIONS_LIMIT) -> dict:
        """The game and the first `limit` players (newest first: a league has thousands); `total`
        counts them all."""
        game = self.source.game()
        board = GRID_BOARDS.get(game)
        unplayable = None if board else (
            f"the browser plays {' and '.join(GRID_BOARDS)}; this run's game is {game or 'unknown'}: "
            "play it in the terminal with `selfplay play`"
        )
        players = self.source.players() if board else []
        return {"game": game, "players": players[:limit], "total": len(players), "truncated": len(players) > limit, "unplayable": unplayable}

    def new_game(self, player: str, first: bool = True, sample: bool = False) -> dict:
        from actors.games import load_game

        game = self.source.game()
        if game not in GRID_BOARDS:
            raise MoveError(self.options()["unplayable"])
        policy = self.source.load(player)
        make_slot, _ = load_game(game, trusted=())  # the name is read from Redis: only the grid games above reach here
        with self._lock:
            game_id = f"g{next(self._ids)}"
            match = HumanMatch(make_slot, policy, human_seat=0 if first else 1, greedy=not sample, seed=int(game_id[1:]))
            if not match.humans_turn:
                match.policy_move()
            self._games[game_id] = (player, match)
            while len(self._games) > self.max_games:
                self._games.popitem(last=False)
            return self.state(game_id)

    def move(self, game_id: str, action: int) -> dict:
        """The person's move in `game_id` and the policy's reply; MoveError when not legal now."""
        with self._lock:
            if game_id not in self._games:
                raise LookupError(f"no game {game_id!r} here (the server keeps the last {self.max_games} games); start a new one")
            _, match = self._games[game_id]
            if isinstance(action, bool) or not isinstance(action, int):
                raise MoveError(f"a move is an action number, not {action!r}")
            match.human_move(action)
            if not match.over:
                match.policy_move()
            return self.state(game_id)

    def state(self, game_id: str) -> dict:
        player, match = self._games[game_id]
        board = GRID_BOARDS[match.slot.name]
        outcome = match.outcome()
        return {
            "id": game_id,
            "game": match.slot.name,
            "player": player,
            "version": match.policy.version,
            "rows": board.rows,
            "cols": board.cols,
            "drop": board.drop,
            "grid": board.grid(match.moves).tolist(),
            "moves": list(match.moves),
            "human_piece": 1 + match.human_seat,
            "your_turn": match.humans_turn,
            "legal": [int(a) for a in match.slot.mask.nonzero()[0]] if match.humans_turn else [],
            "outcome": outcome,
            "result": OUTCOME_TEXT[outcome] if outcome else None,
        }


def play_api(room: PlayRoom | None, method: str, path: str, body: bytes, query: Mapping[str, str] | None = None) -> tuple[int, dict]:
    """(HTTP status, JSON answer) for a request to /api/play/... with query parameters `query`: what
    the dashboard server calls."""
    import json

    from cluster.config import ConfigError
    from cluster.ui.guards import QueryError, query_int

    if room is None:
        return 404, {"error": "this server has no policies to play: start it with `selfplay dashboard --run-dir DIR` or `selfplay play POLICY --web`"}
    try:
        if (method, path) == ("GET", "/api/play/options"):
            return 200, room.options(query_int(query or {}, "limit", OPTIONS_LIMIT, OPTIONS_MAX, low=1))
        if method != "POST" or path not in ("/api/play/new", "/api/play/move"):
            return 404, {"error": f"no {method} {path}; the play API is GET /api/play/options, POST /api/play/new, POST /api/play/move"}
        try:
            req = json.loads(body or b"{}")
        except ValueError as exc:
            return 400, {"error": f"the request body is not JSON: {exc}"}
        if not isinstance(req, dict):
            return 400, {"error": "the request body must be a JSON object"}
        if path == "/api/play/new":
            return 200, room.new_game(str(req.get("player", "")), first=bool(req.get("first", True)), sample=bool(req.get("sample", False)))
        return 200, room.move(str(req.get("id", "")), req.get("action"))
    except QueryError as exc:
        return exc.status, {"error": str(exc)}
    except MoveError as exc:
        return 400, {"error": str(exc)}
    except LookupError as exc:
        return 404, {"error": str(exc.args[0]) if exc.args else str(exc)}
    except ConfigError as exc:  # e.g. a run with no published weights yet
        return 503, {"error": str(exc)}


def serve_play(source: PolicySource, host: str = "127.0.0.1", port: int = 8765) -> None:
    """`selfplay play POLICY --web`: the dashboard server with only its play page, until Ctrl-C."""
    from cluster.ui.dashboard import DashboardServer, serve_until_interrupted

    def no_run(query) -> dict:
        raise LookupError("this server plays a policy file and shows no run: open /play")

    server = DashboardServer(no_run, host, port, play=PlayRoom(source))
    print(f"play {', '.join(source.players())} ({source.game()}): {server.url}play  (Ctrl-C to stop)", flush=True)
    serve_until_interrupted(server)

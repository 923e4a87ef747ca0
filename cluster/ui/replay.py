"""The dashboard's replay page, server side: the rating games evaluators kept, move by move.

The page (cluster/ui/web/replay.html, replay.js) asks
  GET /api/replays?limit=N&offset=K                   -> {pairs: [{player, opponent, games}], total, truncated}
  GET /api/replays/games?player=P&opponent=R&limit=N  -> {player, opponent, games: [summary], total, truncated}
  GET /api/replays/game?player=P&opponent=R&index=I   -> summary + {rows, cols, drop, frames: [frame]}
where a summary is {index, game_id, game, players, versions, rated_seat, result, moves, finished_at} and
a frame {move, action, caption, text, grid} (actors/replay.py's Frame: grid is null for games the page
cannot draw as a grid; it shows the text drawing instead). A run keeps replays of every snapshot it
rated, so the lists are pages: `limit` pairs (default PAIRS_LIMIT, at most PAIRS_MAX) from `offset`,
the newest `limit` games of a pair (at most GAMES_MAX). Every frame is made here by replaying the
moves through the game, so the page needs no rules; a record that does not replay is an error (422).
"""

from __future__ import annotations

from dataclasses import asdict
from urllib.parse import parse_qs, urlsplit

from actors.human import GRID_BOARDS
from actors.replay import Replay, ReplayError, replay_frames
from cluster.stores.replay_store import ReplayStore
from learner.wire import PayloadError

API = "/api/replays"
PAIRS_LIMIT, PAIRS_MAX = 200, 1000
GAMES_LIMIT, GAMES_MAX = 50, 200


def summary(index: int, r: Replay) -> dict:
    return {
        "index": index, "game_id": r.game_id, "game": r.game, "players": list(r.players), "versions": list(r.versions),
        "rated_seat": r.rated_seat, "result": r.result_text(), "moves": len(r.moves), "finished_at": r.finished_at,
    }


class ReplayViewer:
    """Answers the replay page from a run's ReplayStore."""

    def __init__(self, store: ReplayStore) -> None:
        self.store = store

    def pairs(self, limit: int = PAIRS_LIMIT, offset: int = 0) -> dict:
        every = self.store.pairs()
        page = every[offset:offset + limit]
        return {"pairs": [{"player": p, "opponent": r, "games": n} for p, r, n in page], "total": len(every),
                "truncated": offset + len(page) < len(every)}

    def games(self, player: str, opponent: str, limit: int = GAMES_LIMIT) -> dict:
        kept = self.store.games(player, opponent)
        first = max(0, len(kept) - limit)  # the newest `limit`, still numbered from the oldest kept
        return {"player": player, "opponent": opponent, "games": [summary(i, kept[i]) for i in range(first, len(kept))],
                "total": len(kept), "truncated": first > 0}

    def game(self, player: str, opponent: str, index: int) -> dict:
        r = self.store.game(player, opponent, index)
        n = self.store.count(player, opponent)
        board = GRID_BOARDS.get(r.game)
        shape = {"rows": board.rows, "cols": board.cols, "drop": board.drop} if board else {"rows": 0, "cols": 0, "drop": False}
        return {**summary(index % n, r), **shape, "frames": [asdict(f) for f in replay_frames(r)]}


def replay_api(viewer: ReplayViewer | None, target: str) -> tuple[int, dict]:
    """(HTTP status, JSON answer) for GET `target` (path and query) under /api/replays."""
    from redis.exceptions import RedisError

    from cluster.stores.connection import RedisUnavailable
    from cluster.ui.guards import QueryError, query_int

    if viewer is None:
        return 404, {"error": "this server shows no run's replays: start it with `selfplay dashboard --run-dir DIR` (or --redis-url)"}
    url = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    try:
        if url.path == API:
            return 200, viewer.pairs(query_int(query, "limit", PAIRS_LIMIT, PAIRS_MAX, low=1), query_int(query, "offset", 0, 10**9))
        if url.path not in (API + "/games", API + "/game"):
            return 404, {"error": f"no GET {url.path}; the replay API is {API}, {API}/games, {API}/game"}
        player, opponent = query.get("player", ""), query.get("opponent", "")
        if not player or not opponent:
            return 400, {"error": "say which games: ?player=latest&opponent=REFERENCE"}
        if url.path == API + "/games":
            return 200, viewer.games(player, opponent, query_int(query, "limit", GAMES_LIMIT, GAMES_MAX, low=1))
        try:
            index = int(query.get("index", "-1"))
        except ValueError:
            return 400, {"error": f"index must be an integer (0 the oldest kept game, -1 the newest), not {query['index']!r}"}
        return 200, viewer.game(player, opponent, index)
    except QueryError as exc:
        return exc.status, {"error": str(exc)}
    except LookupError as exc:
        return 404, {"error": str(exc.args[0]) if exc.args else str(exc)}
    except (ReplayError, PayloadError) as exc:
        return 422, {"error": str(exc)}
    except (RedisError, RedisUnavailable) as exc:
        return 503, {"error": f"Redis: {exc}"}

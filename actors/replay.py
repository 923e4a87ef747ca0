"""Replays: the move lists of rating games, kept so a person can watch how a policy plays.

Evaluators (actors/evaluator.py) turn the last few games of each (rated player, reference) match
into `Replay` records and hand them to a `ReplaySink` (cluster/stores/replay_store.py keeps a
bounded list per pair in Redis). `replay_frames` plays a record's moves through the game again and
draws the board after every move with the boards of actors/human.py; `selfplay replay` prints the
frames and the dashboard's replay page (cluster/ui/replay.py) steps through them.

Replaying through the game, rather than trusting the record, checks it: a move that is not legal
where it was played, a game that ends early or not at all, or a result other than the one stored
is a corrupt record and raises ReplayError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Protocol

from actors.evaluate import MatchResult
from actors.games import GameError, GameSlot
from actors.human import GRID_BOARDS, PIECES, Board, GridBoard, board_for


class ReplayError(ValueError):
    """A stored replay cannot be shown: corrupt, of an unknown game, or not there; the message says which."""


class ReplayNotFound(ReplayError, LookupError):
    """No replay is kept for that pair, or none at that index."""


@dataclass(frozen=True)
class Replay:
    """One rating game: who sat where, every move, and how it ended."""

    game: str  # the game's name, as load_game takes it (played with its default kwargs)
    game_id: str  # the game's id in the league's game queue (GameResult.game_id)
    players: tuple[str, str]  # per seat: seat 0 moves first
    versions: tuple[int, int]  # per seat: the policy's version, -1 for a scripted reference
    rated_seat: int  # the seat of the rated player (the latest policy or a snapshot); a reference has the other
    scores: tuple[float, float]  # per seat: 1 win, 0.5 draw, 0 loss
    moves: tuple[int, ...]  # actions in the order played, seats alternating from seat 0
    seed: int  # the environment's reset seed
    finished_at: float  # unix time

    @property
    def rated(self) -> str:
        return self.players[self.rated_seat]

    @property
    def reference(self) -> str:
        return self.players[1 - self.rated_seat]

    def result_text(self) -> str:
        if self.scores[0] == self.scores[1]:
            return "draw"
        winner = 0 if self.scores[0] > self.scores[1] else 1
        return f"{self.players[winner]} wins"


class ReplaySink(Protocol):
    """Where an evaluator keeps replays: the newest `per_pair` of each (rated, reference) pair survive."""

    def keep(self, replays: list[Replay], per_pair: int) -> None: ...


def match_replays(
    game: str, game_ids: list[str], player: str, version: int, reference: str, match: MatchResult,
    finished_at: float, last: int,
) -> list[Replay]:
    """Replays of the last `last` games of a recorded match (play_match(record=True)), `player` being
    agent A; `game_ids` are the ids match_games gave the same games, in the same order."""
    out = []
    start = max(0, len(match.played) - last)
    for (seat, score, *_), played, game_id in list(zip(match.outcomes, match.played, game_ids))[start:]:
        players, versions, scores = (player, reference), (version, -1), (score, 1.0 - score)
        if seat == 1:
            players, versions, scores = players[::-1], versions[::-1], scores[::-1]
        out.append(Replay(game, game_id, players, versions, seat, scores, played.moves, played.seed, finished_at))
    return out


@dataclass(frozen=True)
class Frame:
    """The position after `move` moves (0: the start): the board as text, and as a grid where the game has one."""

    move: int
    action: int | None  # the move that led here; None at the start
    caption: str  # "move 3: latest (X) plays column 4"
    text: str
    grid: list[list[int]] | None  # GridBoard.grid: 0 empty, 1 seat 0's piece, 2 seat 1's


class _Position:
    """What a Board draws (it reads a HumanMatch's `slot` and `moves`)."""

    def __init__(self, slot: GameSlot) -> None:
        self.slot, self.moves = slot, []


def replay_frames(replay: Replay, trusted: Collection[str] = ()) -> list[Frame]:
    """The start and the position after every move, replayed through the game; ReplayError when the
    record does not replay to the result it stores. The game, named by the record (read from Redis),
    is imported only if built in or in `trusted` (the names the user gave: actors/games.py)."""
    try:
        make_slot, board = board_for(replay.game, trusted=trusted)
    except GameError as exc:
        raise ReplayError(f"replay {replay.game_id}: cannot load its game: {exc}") from exc
    pos = _Position(make_slot())
    pos.slot.reset(seed=replay.seed)
    frames = [_frame(board, pos, None, "start")]
    for k, action in enumerate(replay.moves):
        slot = pos.slot
        if slot.over:
            raise ReplayError(f"replay {replay.game_id} is corrupt: the game ended after {k} moves, but it lists {len(replay.moves)}")
        if not 0 <= action < slot.num_actions or not slot.mask[action]:
            raise ReplayError(f"replay {replay.game_id} is corrupt: move {k + 1} ({board.name(action)}) is not legal in that position")
        seat = slot.seat
        slot.step(action)
        pos.moves.append(action)
        caption = f"move {k + 1}: {_who(replay, seat, board)} plays {board.name(action)}"
        frames.append(_frame(board, pos, action, caption))
    if not pos.slot.over:
        raise ReplayError(f"replay {replay.game_id} is corrupt: the game is not over after its {len(replay.moves)} moves")
    if tuple(pos.slot.scores()) != tuple(replay.scores):
        raise ReplayError(
            f"replay {replay.game_id} is corrupt: its moves end in scores {tuple(pos.slot.scores())}, "
            f"but it stores {tuple(replay.scores)}"
        )
    return frames


def _who(replay: Replay, seat: int, board: Board) -> str:
    piece = f" ({PIECES[1 + seat]})" if isinstance(board, GridBoard) else ""
    return f"{replay.players[seat]}{piece}"


def _frame(board: Board, pos: _Position, action: int | None, caption: str) -> Frame:
    grid = board.grid(pos.moves).tolist() if isinstance(board, GridBoard) else None
    return Frame(len(pos.moves), action, caption, board.render(pos), grid)  # type: ignore[arg-type]


def describe(replay: Replay) -> str:
    """Who played whom, seat by seat: "seat 0 (X): latest v120; seat 1 (O): tactical"."""
    grid = replay.game in GRID_BOARDS
    seats = []
    for s in (0, 1):
        piece = f" ({PIECES[1 + s]})" if grid else ""
        version = f" v{replay.versions[s]}" if replay.versions[s] >= 0 else ""
        seats.append(f"seat {s}{piece}: {replay.players[s]}{version}")
    return "; ".join(seats)


def format_replay(replay: Replay, trusted: Collection[str] = ()) -> str:
    """The whole game as text: who played, the board at the start and after every move, the result."""
    frames = replay_frames(replay, trusted)
    lines = [f"{replay.game}, game {replay.game_id}", describe(replay), "", frames[0].text]
    for f in frames[1:]:
        lines += ["", f.caption, f.text]
    lines += ["", f"result: {replay.result_text()} after {len(replay.moves)} moves"]
    return "\n".join(lines)


"""A person against a policy: one game, its board as text or as a grid, moves named as people name them.

`HumanMatch` holds the game and says whose turn it is; a `Board` draws the position and turns what
a person types into an action. The terminal loop (`play_in_terminal`) and the dashboard's play page
(cluster/ui/play.py) both drive a HumanMatch, so the rules of turn, legality and result live here once.

People count from 1: connect four's columns are 1-7 and tic-tac-toe's cells 1-9 (row by row on the
board drawn here). Boards are rebuilt from the move list, not read from the environment, because an
environment stops observing once the game is over and the final position is the one worth drawing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Iterable, Protocol

import numpy as np

from actors.games import GameError, GameSlot, load_game
from actors.memory import SeatMemory
from learner.model import InferencePolicy

OUTCOME_TEXT = {"win": "you win", "loss": "you lose", "draw": "draw"}
PIECES = ".XO"  # empty, the first player's piece, the second player's


class MoveError(ValueError):
    """What a person typed or clicked is not a legal move now; the message says what to do instead."""


class Board(Protocol):
    """How a person sees one game and names its moves."""

    def render(self, match: "HumanMatch") -> str: ...

    def parse(self, text: str, mask: np.ndarray) -> int:
        """The action a person means by `text`; MoveError when it is junk, out of range or illegal."""
        ...

    def name(self, action: int) -> str:
        """How the move `action` is said to a person ("column 4")."""
        ...

    def prompt(self, mask: np.ndarray) -> str: ...

    def you(self, seat: int) -> str:
        """Who the person is at `seat`, in the board's terms ("you are X and move first")."""
        ...


@dataclass(frozen=True)
class GridBoard:
    """A board of rows x cols cells whose actions are cells (row-major) or, with `drop`, columns
    that a piece falls down (connect four). Cells are in the layout of the observation, row 0 the top."""

    rows: int
    cols: int
    drop: bool

    @property
    def unit(self) -> str:
        return "column" if self.drop else "cell"

    @property
    def num_actions(self) -> int:
        return self.cols if self.drop else self.rows * self.cols

    def grid(self, moves: Iterable[int]) -> np.ndarray:
        """int8 [rows, cols]: 0 empty, 1 the first player's piece, 2 the second's, after `moves`."""
        g = np.zeros((self.rows, self.cols), np.int8)
        for i, a in enumerate(moves):
            if self.drop:
                empty = np.flatnonzero(g[:, a] == 0)
                g[empty[-1], a] = 1 + i % 2  # gravity: the lowest empty cell
            else:
                g[a // self.cols, a % self.cols] = 1 + i % 2
        return g

    def render(self, match: "HumanMatch") -> str:
        g = self.grid(match.moves)
        if self.drop:
            head = " " + " ".join(str(c + 1) for c in range(self.cols))
            return "\n".join([head] + [" " + " ".join(PIECES[v] for v in row) for row in g])
        width = len(str(self.rows * self.cols))
        cells = [
            [PIECES[v].center(width) if v else str(r * self.cols + c + 1).center(width) for c, v in enumerate(row)]
            for r, row in enumerate(g)
        ]
        rule = "-+-".join("-" * width for _ in range(self.cols))
        return f"\n{rule}\n".join(" | ".join(row) for row in cells)

    def parse(self, text: str, mask: np.ndarray) -> int:
        n = self.num_actions
        text = text.strip()
        try:
            label = int(text)
        except ValueError:
            raise MoveError(f"{text!r} is not a number: type a {self.unit} number from 1 to {n}") from None
        if not 1 <= label <= n:
            raise MoveError(f"{label} is not a {self.unit} of this board: type a number from 1 to {n}")
        if not mask[label - 1]:
            taken = "full" if self.drop else "taken"
            raise MoveError(f"{self.unit} {label} is {taken}: choose another ({self._legal(mask)})")
        return label - 1

    def _legal(self, mask: np.ndarray) -> str:
        return "free: " + " ".join(str(a + 1) for a in np.flatnonzero(mask))

    def name(self, action: int) -> str:
        return f"{self.unit} {action + 1}"

    def prompt(self, mask: np.ndarray) -> str:
        return f"your move ({self.unit} 1-{self.num_actions}): "

    def you(self, seat: int) -> str:
        return f"you are {PIECES[1 + seat]} and move {'first' if seat == 0 else 'second'}"


# The games a person can play on a drawn grid (the terminal and the browser).
GRID_BOARDS: dict[str, GridBoard] = {
    "connect_four_v3": GridBoard(6, 7, drop=True),
    "tictactoe_v3": GridBoard(3, 3, drop=False),
}


class AnsiBoard:
    """Any game whose PettingZoo environment draws itself as text (render_mode "ansi", e.g. chess):
    the environment's own drawing, and moves typed as action numbers from the listed legal ones."""

    def render(self, match: "HumanMatch") -> str:
        return str(match.slot.env.render())

    def parse(self, text: str, mask: np.ndarray) -> int:
        text = text.strip()
        try:
            action = int(text)
        except ValueError:
            raise MoveError(f"{text!r} is not a number: type one of the legal action numbers listed") from None
        if not 0 <= action < len(mask) or not mask[action]:
            raise MoveError(f"{action} is not a legal move now: legal moves are {self._legal(mask)}")
        return action

    def _legal(self, mask: np.ndarray, limit: int = 40) -> str:
        legal = [str(a) for a in np.flatnonzero(mask)]
        more = f" ... ({len(legal)} in all)" if len(legal) > limit else ""
        return " ".join(legal[:limit]) + more

    def name(self, action: int) -> str:
        return f"action {action}"

    def prompt(self, mask: np.ndarray) -> str:
        return f"legal: {self._legal(mask)}\nyour move (an action number): "

    def you(self, seat: int) -> str:
        return f"you move {'first' if seat == 0 else 'second'}"


def board_for(
    game: str, kwargs: dict | None = None, trusted: Collection[str] = (), sides: dict | None = None, roles: dict | None = None
) -> tuple[Callable[[], GameSlot], Board]:
    """The game's slot factory and how a person sees it: a drawn grid, or the game's own text
    (render_mode "ansi"). `game` is imported only if built in or in `trusted` (actors/games.py
    check_trusted_game): it is often read from a policy file or a replay."""
    if game in GRID_BOARDS:
        make_slot, _ = load_game(game, kwargs, trusted=trusted)
        return make_slot, GRID_BOARDS[game]
    make_slot, _ = load_game(game, {**(kwargs or {}), "render_mode": "ansi"}, sides=sides, roles=roles, trusted=trusted)
    return make_slot, AnsiBoard()


def refuse_unplayable(spec, parallel: bool) -> None:
    """GameError saying why a person cannot play `spec` (`parallel`: its slots are ParallelSlots)
    here, turn by turn, typing moves. Replays (actors/replay.py) need no such check."""
    if parallel and spec.roles:
        # A parallel game without roles (rps_v2) is offered one decision at a time and stays
        # playable; with roles (mpe2's simple_tag) it is a real-time chase of many steps in which
        # every agent moves at once, which typing one move per step cannot play in any useful way.
        raise GameError(
            f"game {spec.name!r} cannot be played by hand: it is a parallel game with roles, whose agents all act at "
            "once on every step of a real-time game; human play is turn by turn, one typed move at a time, so only "
            "turn-based (AEC) games with roles can be played"
        )
    if spec.continuous and not spec.roles:
        raise GameError(
            f"game {spec.name!r} cannot be played by hand: its actions are real-valued vectors (a Box action space), "
            "which cannot be typed as moves"
        )


class HumanMatch:
    """One game of a person (in `human_seat`: 0 moves first) against `policy`.

    The policy plays its most likely legal move, or with `greedy=False` samples one (from a
    generator seeded by `seed`)."""

    def __init__(
        self, make_slot: Callable[[], GameSlot], policy: InferencePolicy, human_seat: int, greedy: bool = True, seed: int = 0
    ) -> None:
        if human_seat not in (0, 1):
            raise ValueError(f"human_seat must be 0 (move first) or 1 (move second), not {human_seat}")
        self.slot = make_slot()
        self.slot.reset(seed=seed)
        if policy.net.log_std is not None:
            raise GameError(
                f"{self.slot.name}'s actions are real-valued vectors (a Box action space, as this policy's are): a person "
                "cannot type them as moves, so human play covers Discrete-action games only"
            )
        if self.slot.num_actions != policy.net.num_actions or self.slot.obs.size != policy.net.obs_dim:
            raise GameError(
                f"this policy ({policy.net.obs_dim} inputs, {policy.net.num_actions} actions) was not trained on "
                f"{self.slot.name}; pass the game it was trained on"
            )
        self.policy, self.human_seat, self.greedy = policy, human_seat, greedy
        self.rng = np.random.default_rng(seed)
        self.moves: list[int] = []
        self.memory = SeatMemory()  # a recurrent policy's state through this one game

    @property
    def over(self) -> bool:
        return self.slot.over

    @property
    def humans_turn(self) -> bool:
        return not self.over and self.slot.seat == self.human_seat

    def human_move(self, action: int) -> None:
        """Play the person's move; MoveError when it is not their turn or not legal."""
        if not self.humans_turn:
            raise MoveError("the game is over" if self.over else "it is the policy's turn")
        if not (0 <= action < len(self.slot.mask)) or not self.slot.mask[action]:
            raise MoveError(f"move {action} is not legal now")
        self._play(action)

    def policy_move(self) -> int:
        if self.over or self.humans_turn:
            raise MoveError("it is not the policy's turn")
        seat = [(0, self.slot.seat)]
        actions, _, _, _ = self.memory.act(self.policy, self.slot.obs[None], self.slot.mask[None], self.rng, seat, greedy=self.greedy)
        action = int(actions[0])
        self._play(action)
        return action

    def _play(self, action: int) -> None:
        self.slot.step(action)
        self.moves.append(action)

    def outcome(self) -> str | None:
        """"win", "loss" or "draw" for the person once the game is over; None before."""
        if not self.over:
            return None
        score = self.slot.scores()[self.human_seat]
        return "win" if score == 1.0 else "loss" if score == 0.0 else "draw"


class RoleHumanMatch(HumanMatch):
    """One game of a person in a seat of `role`, in a game with roles (actors/roles.py); every other
    seat, the role's own others included, is played by `agents[its role]` (actors/evaluate.py Agent:
    a policy or a scripted player).

    Seats are the game's agents: `seat` picks among the role's seats (0: its first), and the person
    plays that one agent. Moves are made one decision at a time, as GameSlot offers them."""

    def __init__(self, make_slot: Callable[[], GameSlot], spec, role: str, agents: dict, seat: int = 0, seed: int = 0) -> None:
        from actors.roles import role_of_sides

        names = [r.name for r in spec.roles]
        if role not in names:
            raise GameError(f"game {spec.name!r} has no role {role!r}; its roles are {', '.join(names)}")
        if spec.role(role).continuous:
            raise GameError(
                f"role {role!r} of {spec.name} acts with real-valued vectors (a Box action space): a person cannot type "
                "them as moves, so only a role with Discrete actions can be played by hand"
            )
        seats = [i for k in spec.roles[names.index(role)].sides for i in spec.sides[k]]
        if not 0 <= seat < len(seats):
            raise GameError(f"role {role!r} of {spec.name} has {len(seats)} seat(s) ({', '.join(spec.agents[i] for i in seats)})")
        missing = sorted(set(names) - set(agents))
        if missing:
            raise ValueError(f"a role match needs an agent for every role; none for {missing}")
        self.slot = make_slot()
        self.slot.reset(seed=seed)
        self.role, self.human_seat, self.agents = role, seats[seat], dict(agents)
        self._role_of_side = [names[r] for r in role_of_sides(spec.roles, spec.num_sides)]
        self.rng = np.random.default_rng(seed)
        self.moves: list[int] = []
        for agent in self.agents.values():
            agent.new_game(0)

    def policy_move(self) -> int:
        if self.over or self.humans_turn:
            raise MoveError("it is not the policy's turn")
        agent = self.agents[self._role_of_side[self.slot.side]]
        action = agent.act([self.slot], self.rng, keys=[0])[0]
        self._play(action)
        return action

    def outcome(self) -> str | None:
        """The person's side's result: "win", "loss" or "draw" (a placement between counts as a draw)."""
        if not self.over:
            return None
        score = self.slot.scores()[self.slot.side_of[self.human_seat]]
        return "win" if score == 1.0 else "loss" if score == 0.0 else "draw"


def play_in_terminal(match: HumanMatch, board: Board, read: Callable[[str], str], write: Callable[[str], None]) -> str | None:
    """Play `match` to its end with `read(prompt)` giving the person's lines (EOFError at end of
    input) and `write` printing. Returns the outcome, or None when the input ended first."""
    write(f"{board.you(match.human_seat)}\n{board.render(match)}")
    while not match.over:
        if not match.humans_turn:
            action = match.policy_move()
            write(f"policy plays {board.name(action)}\n{board.render(match)}")
            continue
        try:
            line = read(board.prompt(match.slot.mask))
        except EOFError:
            write("\nend of input: game abandoned")
            return None
        try:
            match.human_move(board.parse(line, match.slot.mask))
        except MoveError as exc:
            write(str(exc))
            continue
        write(board.render(match))
    outcome = match.outcome()
    write(OUTCOME_TEXT[outcome])
    return outcome

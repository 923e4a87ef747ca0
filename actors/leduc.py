"""Leduc hold'em as PettingZoo's leduc_holdem_v4 plays it, and an exact best response to a policy.

PettingZoo's leduc_holdem_v4 wraps RLCard's game (rlcard/games/leducholdem, limitholdem/round.py),
whose rules differ from the textbook Leduc (antes of 1). Read from that source:

- a deck of six cards, J J Q Q K K; each player gets one, one public card comes after round 1;
- blinds, not antes: a seat drawn at random posts 1 (the small blind) and acts first, the other 2;
- two betting rounds; a raise is 2 chips in round 1 and 4 in round 2, at most 2 raises a round;
- actions 0 call, 1 raise, 2 fold, 3 check: fold is always legal (even when checking is), check
  only when level, call only when behind; a round ends when both players have called/checked
  since the last raise; round 2 opens with the player after the one who closed round 1;
- showdown: a player whose card pairs the public card wins, else the higher card, a tie splits;
- PettingZoo's rewards are RLCard's payoffs, which are chips divided by the big blind (2): this
  module counts in chips, so 1 chip = 0.5 of PettingZoo's reward.

The observation (36 numbers) holds the mover's card (0-2), the public card (3-5), the mover's
chips in the pot (6 + chips) and the opponent's (21 + chips); a policy is a function of it and
of the legal-action mask. It does not hold the betting history, so a policy's information sets
are coarser than the game's; the best response computed here has perfect recall of the history
(it may exploit that), as a best response in the literature does.

A best response's value against a fixed policy is its exploitability: the game is symmetric
(the small blind is drawn at random), so its value is 0 and what a best response wins per hand,
averaged over both seats, is what the policy gives away. For a mixture of policies (a league's
snapshots as a meta-strategy) the opponent draws one policy per hand, hidden from the best
response, and plays it for the whole hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

CALL, RAISE, FOLD, CHECK = 0, 1, 2, 3
NUM_ACTIONS = 4
RANKS = 3  # J, Q, K; two of each
SMALL_BLIND, BIG_BLIND = 1, 2
RAISE_AMOUNTS = (2, 4)  # per round
MAX_RAISES = 2  # per round
OBS_SIZE = 36

ProbFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(observation float[36], legal mask bool[4]) -> probabilities float[4] over the actions."""


@dataclass(frozen=True)
class Betting:
    """The public state of one hand (RLCard's Round and players' chips), seats 0 and 1."""

    sb: int  # the seat that posted the small blind
    round: int = 0  # 0, 1; 2 once both rounds are over
    pointer: int = 0  # the seat to act
    chips: tuple[int, int] = (0, 0)  # in the pot, per seat
    raised: tuple[int, int] = (0, 0)  # this round's, per seat
    raises: int = 0  # this round
    calls: int = 0  # calls/checks since the last raise (RLCard's not_raise_num)
    folded: int = -1  # the seat that folded, or -1
    history: tuple[int, ...] = ()  # every action so far, both rounds

    @property
    def over(self) -> bool:
        return self.folded >= 0 or self.round >= 2


def start(sb: int) -> Betting:
    blinds = [0, 0]
    blinds[sb], blinds[1 - sb] = SMALL_BLIND, BIG_BLIND
    return Betting(sb=sb, pointer=sb, chips=tuple(blinds), raised=tuple(blinds))


def legal_actions(b: Betting) -> list[int]:
    """RLCard's get_legal_actions, as action ids in PettingZoo's order."""
    me, top = b.pointer, max(b.raised)
    out = []
    if b.raised[me] < top:
        out.append(CALL)
    if b.raises < MAX_RAISES:
        out.append(RAISE)
    out.append(FOLD)
    if b.raised[me] == top:
        out.append(CHECK)
    return out


def apply(b: Betting, action: int) -> Betting:
    """The state after the mover plays `action` (RLCard's proceed_round and Game.step)."""
    if action not in legal_actions(b):
        raise ValueError(f"action {action} is not legal in {b}; legal: {legal_actions(b)}")
    me = b.pointer
    chips, raised = list(b.chips), list(b.raised)
    raises, calls, folded = b.raises, b.calls, b.folded
    if action == CALL:
        chips[me] += max(raised) - raised[me]
        raised[me] = max(raised)
        calls += 1
    elif action == RAISE:
        target = max(raised) + RAISE_AMOUNTS[b.round]
        chips[me] += target - raised[me]
        raised[me] = target
        raises, calls = raises + 1, 1
    elif action == FOLD:
        folded = me
    else:
        calls += 1
    nxt = replace(
        b, pointer=1 - me, chips=tuple(chips), raised=tuple(raised), raises=raises, calls=calls, folded=folded,
        history=(*b.history, action),
    )
    if folded < 0 and calls >= 2:  # the round is over; the next opens with the next seat
        nxt = replace(nxt, round=b.round + 1, raised=(0, 0), raises=0, calls=0)
    return nxt


def payoff(b: Betting, cards: tuple[int, int], public: int | None) -> tuple[float, float]:
    """Chips won per seat at the end of a hand (RLCard's judge_game; PettingZoo's reward x 2)."""
    if b.folded >= 0:
        winners = [s != b.folded for s in (0, 1)]
    elif cards[0] == public or cards[1] == public:
        winners = [cards[0] == public, cards[1] == public]
    else:
        winners = [cards[0] >= cards[1], cards[1] >= cards[0]]
    total = sum(b.chips)
    share = total / sum(winners)
    return tuple(float(share - b.chips[s]) if winners[s] else float(-b.chips[s]) for s in (0, 1))


def observation(b: Betting, seat: int, card: int, public: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(PettingZoo's observation for `seat`, the legal mask) at a decision of `seat`."""
    obs = np.zeros(OBS_SIZE, np.float32)
    obs[card] = 1.0
    if public is not None:
        obs[3 + public] = 1.0
    obs[6 + b.chips[seat]] = 1.0
    obs[21 + b.chips[1 - seat]] = 1.0
    mask = np.zeros(NUM_ACTIONS, bool)
    mask[legal_actions(b)] = True
    return obs, mask


def deal_probability(card: int, taken: Sequence[int]) -> float:
    """P(the next card dealt has rank `card`) after the ranks in `taken` left the deck."""
    return (2 - sum(1 for t in taken if t == card)) / (6 - len(taken))


# --- policies as tables ------------------------------------------------------------------------

InfoKey = tuple[int, int, int, int, tuple[int, ...]]  # (card, public or -1, my chips, their chips, legal)


def info_key(obs: np.ndarray, mask: np.ndarray) -> InfoKey:
    hot = np.flatnonzero(obs)
    public = [int(i) - 3 for i in hot if 3 <= i < 6]
    my = [int(i) - 6 for i in hot if 6 <= i < 21]
    theirs = [int(i) - 21 for i in hot if 21 <= i < 36]
    return (int(hot[0]), public[0] if public else -1, my[0], theirs[0], tuple(np.flatnonzero(mask).tolist()))


def decisions() -> Iterator[tuple[Betting, bool]]:
    """Every decision state of the betting tree (public cards aside), and whether it is in round 2."""
    for root in (start(0), start(1)):
        stack = [root]
        while stack:
            node = stack.pop()
            if node.over:
                continue
            yield node, node.round == 1
            stack.extend(apply(node, a) for a in legal_actions(node))


def all_observations() -> tuple[list[InfoKey], np.ndarray, np.ndarray]:
    """Every (observation, mask) a player can meet, once each: (keys, observations [N, 36], masks [N, 4])."""
    seen: dict[InfoKey, tuple[np.ndarray, np.ndarray]] = {}
    for node, second in decisions():
        for card in range(RANKS):
            for public in range(RANKS) if second else (None,):
                obs, mask = observation(node, node.pointer, card, public)
                seen.setdefault(info_key(obs, mask), (obs, mask))
    keys = list(seen)
    return keys, np.stack([seen[k][0] for k in keys]), np.stack([seen[k][1] for k in keys])


@dataclass(frozen=True)
class Table:
    """A policy tabulated on every observation it can meet: probabilities over the 4 actions."""

    probs: dict[InfoKey, np.ndarray]

    def __call__(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.probs[info_key(obs, mask)]


def tabulate(policy: ProbFn | Callable[[np.ndarray, np.ndarray], np.ndarray], batched: bool = False) -> Table:
    """`policy` on every observation, checked: probabilities >= 0 on legal actions only, summing to 1.
    `batched`: policy takes [N, 36] observations and [N, 4] masks at once (a network)."""
    keys, obs, masks = all_observations()
    out = np.asarray(policy(obs, masks) if batched else np.stack([policy(o, m) for o, m in zip(obs, masks)]), np.float64)
    if out.shape != masks.shape:
        raise ValueError(f"a Leduc policy returns {NUM_ACTIONS} probabilities per observation; got shape {out.shape}")
    if (out < -1e-9).any() or (out[~masks] > 1e-6).any() or not np.allclose(out.sum(1), 1.0, atol=1e-4):
        raise ValueError("a Leduc policy's probabilities must be >= 0, zero on illegal actions and sum to 1")
    out = np.where(masks, np.clip(out, 0.0, None), 0.0)
    out /= out.sum(1, keepdims=True)
    return Table(dict(zip(keys, out)))


def uniform_random(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Uniform over the legal actions (fold included, as RLCard allows it always)."""
    m = np.asarray(mask, np.float64)
    return m / m.sum(-1, keepdims=True)


def network_probs(policy) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A categorical InferencePolicy (learner/model.py) as a batched ProbFn: its sampling probabilities."""
    import torch

    from learner.model import masked_log_probs

    @torch.no_grad()
    def probs(obs: np.ndarray, masks: np.ndarray) -> np.ndarray:
        logits, _ = policy.net(torch.from_numpy(np.asarray(obs, np.float32)), torch.from_numpy(np.asarray(masks, bool)))
        return masked_log_probs(logits).exp().numpy()

    return probs


# --- best response -----------------------------------------------------------------------------

BrKey = tuple[int, int, int, tuple[int, ...]]  # (small blind seat, my card, public or -1, history)


@dataclass(frozen=True)
class BestResponse:
    value: float
    """What the best response wins per hand, in chips, averaged over its two seats."""
    seat_values: tuple[float, float]
    """Its value in seat 0 and in seat 1 (equal: the small blind is drawn at random)."""
    strategy: tuple[dict[BrKey, int], dict[BrKey, int]]
    """Per seat, its action at each of its information sets (history known in full)."""


def best_response(policies: Sequence[ProbFn], weights: Sequence[float] | None = None) -> BestResponse:
    """The exact best response to the mixture of `policies` (one drawn per hand with `weights`,
    uniform if None), by walking the game tree; its value is the mixture's exploitability."""
    tables = [p if isinstance(p, Table) else tabulate(p) for p in policies]
    w = np.full(len(tables), 1.0 / len(tables)) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    values, strategies = [], []
    for seat in (0, 1):
        walker = _Walker(tables, seat)
        total = 0.0
        for sb in (0, 1):
            for card in range(RANKS):
                reach = np.array([[deal_probability(c, [card]) for c in range(RANKS)]]).T * w[None, :]  # [opp card, policy]
                total += 0.5 * deal_probability(card, []) * walker.value(start(sb), card, None, reach)
        values.append(total)
        strategies.append(walker.strategy)
    return BestResponse(float(np.mean(values)), (values[0], values[1]), (strategies[0], strategies[1]))


class _Walker:
    """Expectimax over the best responder's information sets: `reach[c, k]` is the probability of
    the opponent holding card c and playing policy k and reaching here (chance x its actions)."""

    def __init__(self, tables: list[Table], seat: int) -> None:
        self.tables, self.seat = tables, seat
        self.strategy: dict[BrKey, int] = {}

    def value(self, b: Betting, card: int, public: int | None, reach: np.ndarray) -> float:
        """Chips the responder wins from here, summed over `reach` (not normalised)."""
        if b.over:
            return sum(
                float(reach[c].sum()) * payoff(b, self._cards(card, c), public)[self.seat] for c in range(RANKS) if reach[c].any()
            )
        if b.round == 1 and public is None:  # the public card is dealt
            total = 0.0
            for p in range(RANKS):
                deal = np.array([deal_probability(p, [card, c]) for c in range(RANKS)])
                if deal.any():
                    total += self.value(b, card, p, reach * deal[:, None])
            return total
        acts = legal_actions(b)
        if b.pointer == self.seat:
            vals = [self.value(apply(b, a), card, public, reach) for a in acts]
            best = int(np.argmax(vals))
            self.strategy[(b.sb, card, -1 if public is None else public, b.history)] = acts[best]
            return vals[best]
        probs = np.zeros((RANKS, len(self.tables), NUM_ACTIONS))
        for c in range(RANKS):
            if reach[c].any():
                key = info_key(*observation(b, b.pointer, c, public))
                probs[c] = [t.probs[key] for t in self.tables]
        return sum(self.value(apply(b, a), card, public, reach * probs[:, :, a]) for a in acts if (reach * probs[:, :, a]).any())

    def _cards(self, mine: int, theirs: int) -> tuple[int, int]:
        return (mine, theirs) if self.seat == 0 else (theirs, mine)


def exploitability(policy: ProbFn, batched: bool = False) -> float:
    """Chips per hand a best response wins against `policy` (both seats, blinds drawn at random)."""
    return best_response([tabulate(policy, batched)]).value


def play_against(
    br: BestResponse, policies: Sequence[ProbFn], hands: int, seed: int = 0, weights: Sequence[float] | None = None
) -> np.ndarray:
    """Play `br` against the mixture of `policies` (one drawn per hand) in PettingZoo's own
    leduc_holdem_v4 for `hands` hands, seats alternating: what `br` won in each hand, in chips (a
    check of this module against the real game)."""
    from pettingzoo.classic import leduc_holdem_v4

    env = leduc_holdem_v4.env()
    rng = np.random.default_rng(seed)
    w = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    out = np.zeros(hands)
    for h in range(hands):
        me = h % 2
        policy = policies[int(rng.choice(len(policies), p=w))]
        env.reset(seed=int(rng.integers(2**31)))
        sb, history = None, []
        for agent in env.agent_iter():
            obs, reward, term, trunc, _ = env.last()
            seat = int(agent[-1])
            if term or trunc:
                if seat == me:
                    out[h] = 2.0 * reward  # PettingZoo pays in big blinds
                env.step(None)
                continue
            sb = seat if sb is None else sb  # the small blind acts first
            o, mask = obs["observation"], obs["action_mask"].astype(bool)
            if seat == me:
                key = info_key(o, mask)
                action = br.strategy[me][(sb, key[0], key[1], tuple(history))]
            else:
                action = int(rng.choice(NUM_ACTIONS, p=policy(o, mask)))
            history.append(action)
            env.step(action)
    env.close()
    return out

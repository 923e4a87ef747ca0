"""A hand-strength bot for PettingZoo's hold'em games: raise strong hands, call middling, fold weak.

Observation layouts, from RLCard's envs (rlcard/envs/*holdem.py, `_extract_state`), which
PettingZoo's classic games wrap:

- texas_holdem_no_limit_v6: 54 numbers, 0-51 one-hot cards (suit * 13 + rank, rank 0 = ace), the
  mover's two cards and the board together, 52 the mover's chips in, 53 the most any player has
  in. Moves 0 fold, 1 check/call, 2 raise half the pot, 3 raise the pot, 4 all in.
- texas_holdem_v4 (limit): 72 numbers, 0-51 the cards as above, then the raises of each of the 4
  rounds one-hot. Moves 0 call, 1 raise, 2 fold, 3 check.
- leduc_holdem_v4: 36 numbers, 0-2 the mover's card (J Q K), 3-5 the public card (actors/leduc.py).
  Moves as limit hold'em's.

Weak hands fold only to big bets (FOLD_OVER_*): against random players, who bet at random,
folding to every bet loses most hands. The hold'em observations do not say which of the seen cards are the mover's own, so the bot
rates everything it sees: before the flop (2 cards) its two cards, by pairs and high cards; after
it, the best hand category of all the cards seen (pair, two pair, ...). A board that pairs
itself makes every player's hand look better, so the bot overrates some hands: it is a simple,
fixed, deterministic player to measure against, not a good one. The same rules serve 2 and 4
players. Its strength against random play is measured by benchmarks/references.py.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

WEAK, MIDDLING, STRONG = 0, 1, 2


def _cards(bits: np.ndarray) -> list[tuple[int, int]]:
    """(rank 2..14, suit 0..3) of each card seen; the ace ranks high."""
    out = []
    for i in np.flatnonzero(bits[:52]):
        suit, r = divmod(int(i), 13)
        out.append((14 if r == 0 else r + 1, suit))
    return out


def _straight(ranks: set[int]) -> bool:
    ranks = ranks | ({1} if 14 in ranks else set())
    return any(all(r + k in ranks for k in range(5)) for r in range(1, 11))


def category(cards: list[tuple[int, int]]) -> int:
    """0 high card, 1 pair, 2 two pair, 3 trips, 4 straight, 5 flush, 6 full house, 7 quads (a
    straight flush counts as a flush: the bot raises either way)."""
    counts = sorted(Counter(r for r, _ in cards).values(), reverse=True)
    if counts[0] >= 4:
        return 7
    if counts[0] == 3 and len(counts) > 1 and counts[1] >= 2:
        return 6
    if max(Counter(s for _, s in cards).values()) >= 5:
        return 5
    if _straight({r for r, _ in cards}):
        return 4
    if counts[0] == 3:
        return 3
    if counts[0] == 2 and len(counts) > 1 and counts[1] == 2:
        return 2
    return 1 if counts[0] == 2 else 0


def holdem_strength(cards: list[tuple[int, int]]) -> int:
    """WEAK, MIDDLING or STRONG. Two cards: a pair of tens or better, or two cards ten or higher with
    an ace or king, is strong; any pair, a queen or better, or two cards eight or higher, middling.
    More cards: two pair or better is strong, a pair middling, a high card weak."""
    if len(cards) <= 2:
        (a, _), (b, _) = sorted(cards, reverse=True)
        if (a == b and a >= 10) or (b >= 10 and a >= 13):
            return STRONG
        if a == b or a >= 12 or b >= 8:
            return MIDDLING
        return WEAK
    c = category(cards)
    return STRONG if c >= 2 else MIDDLING if c == 1 else WEAK


def leduc_strength(obs: np.ndarray) -> int:
    card = int(np.argmax(obs[:3]))
    public = int(np.argmax(obs[3:6])) if obs[3:6].any() else None
    if public is not None:
        return STRONG if card == public else MIDDLING if card > public or card == 2 else WEAK
    return STRONG if card == 2 else MIDDLING if card == 1 else WEAK


def _first_legal(mask: np.ndarray, prefs: tuple[int, ...]) -> int:
    for a in prefs:
        if a < len(mask) and mask[a]:
            return a
    return int(np.flatnonzero(mask)[0])


# Moves in order of preference per strength (no-limit: 2 raise half the pot, 3 the pot, 1 check/call;
# limit and Leduc: 1 raise, 0 call, 3 check)
_NO_LIMIT = {STRONG: (2, 3, 1), MIDDLING: (1, 0)}
_LIMIT = {STRONG: (1, 0, 3), MIDDLING: (3, 0)}
FOLD_OVER_CHIPS = 8
"""No-limit: a weak hand folds to a bet of more than this many chips to call (4 big blinds) and
calls smaller ones: random players bet at random, and folding to every bet loses most hands."""
FOLD_OVER_RAISES = 2
"""Limit hold'em: a weak hand folds once this many raises were made in a round, else checks or calls."""


def hand_strength(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """Raise strong hands, check or call middling ones; check weak ones when free, call small bets
    with them and fold them to big ones (FOLD_OVER_*). Deterministic (rng unused)."""
    obs = np.asarray(obs).reshape(-1)
    mask = np.asarray(mask, bool)
    if obs.size == 36:  # Leduc: a weak hand (a jack, unpaired) checks or folds
        return _first_legal(mask, _LIMIT.get(leduc_strength(obs), (3, 2)))
    if obs.size not in (54, 72):
        raise ValueError(f"hand_strength reads hold'em observations of 54, 72 or 36 numbers; got {obs.size}")
    strength = holdem_strength(_cards(obs))
    if strength != WEAK:
        return _first_legal(mask, (_LIMIT if obs.size == 72 else _NO_LIMIT)[strength])
    if obs.size == 72:
        raises = max(int(np.argmax(obs[52 + 5 * r : 57 + 5 * r])) for r in range(4))
        return _first_legal(mask, (3, 0) if raises < FOLD_OVER_RAISES else (3, 2))
    to_call = float(obs[53] - obs[52])
    return _first_legal(mask, (1,) if to_call <= FOLD_OVER_CHIPS else (0,))

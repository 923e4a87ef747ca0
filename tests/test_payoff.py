import pytest

from league.payoff import Payoff, shrunk_win_rate


def test_first_game_and_mirror():
    p = Payoff()
    p.update("a", "b", 1.0)
    assert p.record("a", "b") == (1.0, 0.0, 0.0, 1.0)
    assert p.record("b", "a") == (0.0, 0.0, 1.0, 1.0)
    assert p.win_rate("a", "b") == 1.0
    assert p.win_rate("b", "a") == 0.0


def test_decay_arithmetic_golden():
    p = Payoff(decay=0.99)
    p.update("a", "b", 1.0)  # a-b: W1 G1
    p.update("a", "b", 0.5)  # a-b: W.99 D1 G1.99
    assert p.record("a", "b") == pytest.approx((0.99, 1.0, 0.0, 1.99))
    assert p.win_rate("a", "b") == pytest.approx((0.99 + 0.5) / 1.99)
    assert p.record("b", "a") == pytest.approx((0.0, 1.0, 0.99, 1.99))
    # A game between other players leaves a-b alone: only the pair that played decays (AlphaStar).
    p.update("c", "b", 0.0)
    assert p.record("a", "b") == pytest.approx((0.99, 1.0, 0.0, 1.99))
    assert p.record("c", "b") == pytest.approx((0.0, 0.0, 1.0, 1.0))
    assert p.record("b", "c") == pytest.approx((1.0, 0.0, 0.0, 1.0))
    p.update("b", "c", 0.5)  # b-c: W.99 D1 G1.99, seen from either side
    assert p.record("c", "b") == pytest.approx((0.0, 1.0, 0.99, 1.99))


def test_decay_shifts_win_rate_towards_recent_results():
    p = Payoff(decay=0.5)
    p.update("a", "b", 0.0)
    p.update("a", "b", 1.0)
    # a-b: L .5, W 1, G 1.5 -> 2/3
    assert p.win_rate("a", "b") == pytest.approx(2 / 3)


def test_win_rate_is_half_before_min_games():
    p = Payoff(min_games=3)
    assert p.win_rate("a", "b") == 0.5  # never met
    p.update("a", "b", 1.0)
    p.update("a", "b", 1.0)
    assert p.games("a", "b") == pytest.approx(1.99)
    assert p.win_rate("a", "b") == 0.5
    p.update("a", "b", 1.0)
    p.update("a", "b", 1.0)  # G = 1 + .99 + .9801 + .970299 = 3.940399
    assert p.games("a", "b") == pytest.approx(3.940399)
    assert p.win_rate("a", "b") == 1.0


def test_symmetry():
    p = Payoff()
    results = [("a", "b", 1.0), ("b", "c", 0.5), ("c", "a", 0.0), ("a", "b", 0.0), ("b", "a", 0.5)]
    for a, b, s in results:
        p.update(a, b, s)
    for a in "abc":
        for b in "abc":
            if a != b:
                assert p.win_rate(a, b) + p.win_rate(b, a) == pytest.approx(1.0)
                assert p.games(a, b) == pytest.approx(p.games(b, a))
                w, d, l, g = p.record(a, b)
                assert (l, d, w, g) == pytest.approx(p.record(b, a))


def test_players_in_first_seen_order():
    p = Payoff()
    p.update("v2", "v1", 1.0)
    p.update("v3", "v1", 0.0)
    assert p.players() == ["v2", "v1", "v3"]


def test_matrix():
    p = Payoff(decay=1.0)
    p.update("a", "b", 1.0)
    p.update("a", "b", 0.0)
    p.update("a", "b", 1.0)
    rates, games = p.matrix(["a", "b", "c"])
    assert rates == [
        [None, pytest.approx(2 / 3), None],
        [pytest.approx(1 / 3), None, None],
        [None, None, None],
    ]
    assert games == [[0.0, 3.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]


def test_round_trip_plain_types():
    p = Payoff(decay=0.95, min_games=2.0)
    for a, b, s in [("a", "b", 1.0), ("b", "c", 0.5), ("c", "a", 0.0)]:
        p.update(a, b, s)
    data = p.to_dict()

    def check_plain(x):
        if isinstance(x, dict):
            for k, v in x.items():
                assert isinstance(k, str)
                check_plain(v)
        elif isinstance(x, list):
            for v in x:
                check_plain(v)
        else:
            assert type(x) in (float, str), type(x)

    check_plain(data)
    q = Payoff.from_dict(data)
    assert q.to_dict() == data
    assert q.players() == p.players()
    for a in "abc":
        for b in "abc":
            assert q.win_rate(a, b) == p.win_rate(a, b)
    # Continues to evolve identically after restore.
    p.update("a", "c", 1.0)
    q.update("a", "c", 1.0)
    assert q.to_dict() == p.to_dict()


def test_round_trip_through_msgpack():
    import msgpack  # a dependency of the project itself
    p = Payoff()
    p.update("x", "y", 0.5)
    restored = Payoff.from_dict(msgpack.unpackb(msgpack.packb(p.to_dict())))
    assert restored.to_dict() == p.to_dict()


def test_errors():
    p = Payoff()
    with pytest.raises(ValueError, match="score_a"):
        p.update("a", "b", 0.7)
    with pytest.raises(ValueError, match="itself"):
        p.update("a", "a", 1.0)
    with pytest.raises(ValueError, match="decay"):
        Payoff(decay=0.0)
    with pytest.raises(ValueError, match="min_games"):
        Payoff(min_games=0.0)
    with pytest.raises(ValueError, match="keys"):
        Payoff.from_dict({"decay": 0.99})


def test_a_rare_pair_keeps_its_record_however_many_games_others_play():
    # The dashboard's heat map and PFSP need rating games against a scripted bot to stay visible
    # while training games between other players arrive hundreds a second.
    p = Payoff(decay=0.99)
    p.update("latest", "minimax", 0.5)
    for i in range(10_000):
        p.update("latest", "random", 1.0 if i % 4 else 0.0)
    assert p.record("latest", "minimax") == (0.0, 1.0, 0.0, 1.0)
    # The busy pair converges to ~1/(1 - decay) = 100 decayed games.
    assert p.games("latest", "random") == pytest.approx(100.0, rel=1e-6)
    w, d, l, g = p.record("latest", "random")
    assert w / g == pytest.approx(0.75, abs=0.01)


def test_shrunk_win_rate_golden():
    """PFSP's rate: (W + D/2 + k/2) / (G + k), a Beta prior of k pseudo-games, half won."""
    assert shrunk_win_rate(0.0, 0.0, 0.0, 4.0) == 0.5  # never met: an even match
    assert shrunk_win_rate(1.0, 0.0, 1.0, 4.0) == pytest.approx(3 / 5)  # one win: 0.6, not 1
    assert shrunk_win_rate(0.0, 0.0, 1.0, 4.0) == pytest.approx(2 / 5)
    assert shrunk_win_rate(0.0, 1.0, 1.0, 4.0) == 0.5
    assert shrunk_win_rate(3.0, 0.0, 3.0, 4.0) == pytest.approx(5 / 7)  # three wins: out of verification (0.7)
    assert shrunk_win_rate(1.0, 0.0, 1.0, 0.0) == 1.0  # k = 0: the raw rate
    assert shrunk_win_rate(0.0, 0.0, 0.0, 0.0) == 0.5
    with pytest.raises(ValueError, match="prior_games must be >= 0"):
        shrunk_win_rate(1.0, 0.0, 1.0, -1.0)


def test_pfsp_win_rate_never_reaches_one_under_decay():
    """A pair's decayed count stays below 1 / (1 - decay), so the shrunk rate of a player beaten in
    every game stays below (1/(1-d) + k/2) / (1/(1-d) + k): 102 / 104 for d = 0.99, k = 4."""
    p = Payoff(decay=0.99)
    p.update("a", "b", 1.0)
    assert p.win_rate("a", "b") == 1.0 and p.pfsp_win_rate("a", "b", 4.0) == pytest.approx(0.6)
    for _ in range(2000):
        p.update("a", "b", 1.0)
    assert p.pfsp_win_rate("a", "b", 4.0) < 102 / 104
    assert p.pfsp_win_rate("b", "a", 4.0) > 2 / 104
    assert p.pfsp_win_rate("a", "b", 0.0) == 1.0

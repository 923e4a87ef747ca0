import pytest

from league.payoff import Payoff


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
    # A game between other players still decays a-b: everything is multiplied.
    p.update("c", "b", 0.0)
    assert p.record("a", "b") == pytest.approx((0.9801, 0.99, 0.0, 1.9701))
    assert p.record("c", "b") == pytest.approx((0.0, 0.0, 1.0, 1.0))
    assert p.record("b", "c") == pytest.approx((1.0, 0.0, 0.0, 1.0))
    # Win rates are unchanged by a uniform decay.
    assert p.win_rate("a", "b") == pytest.approx((0.99 + 0.5) / 1.99)


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
    msgpack = pytest.importorskip("msgpack")
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


def test_long_runs_fold_the_lazy_decay_without_losing_precision():
    # Decay 0.5 over 600 games pushes the newest game's weight past 1e150, forcing folds.
    p = Payoff(decay=0.5)
    for i in range(600):
        p.update("a", "b", 1.0 if i % 3 else 0.0)
        p.update("c", "d", 0.5)
    # Closed form: after the last update the newest game weighs 1, the one before 0.5, ...
    # The last a-b game is 2 updates back (a c-d game followed it): weights 0.5, 0.125, ...
    wins = sum(0.5 ** (2 * (599 - i) + 1) for i in range(600) if i % 3)
    losses = sum(0.5 ** (2 * (599 - i) + 1) for i in range(600) if not i % 3)
    w, d, l, g = p.record("a", "b")
    assert (w, d, l, g) == pytest.approx((wins, 0.0, losses, wins + losses), rel=1e-12)
    assert p.games("c", "d") == pytest.approx(sum(0.5 ** (2 * k) for k in range(600)), rel=1e-12)
    assert all(abs(x) < 1e6 for rec in p.to_dict()["records"].values() for r in rec.values() for x in r)

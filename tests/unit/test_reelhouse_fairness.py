"""Reelhouse's provably-fair draw: published vectors reproduce, and rejection sampling is never biased."""

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from mock_providers.reelhouse import fairness
from mock_providers.reelhouse.games import GAMES

VECTORS = json.loads((Path(fairness.__file__).parent / "test_vectors.json").read_text())["vectors"]


def readme_stops(server_seed: str, client_seed: str, nonce: int, reel_lengths: list[int]) -> list[int]:
    """The README's algorithm written out again, so the vectors check the document, not just the code."""
    words: list[int] = []
    cursor = 0
    stops = []
    for n in reel_lengths:
        while True:
            if not words:
                digest = hmac.new(server_seed.encode(), f"{client_seed}:{nonce}:{cursor}".encode(),
                                  hashlib.sha256).digest()
                words = [int.from_bytes(digest[i:i + 4], "big") for i in range(0, 32, 4)]
                cursor += 1
            value = words.pop(0)
            if value < (2**32 // n) * n:
                stops.append(value % n)
                break
    return stops


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v.get('game_id', 'raw')}-{v['nonce']}")
def test_published_vectors_reproduce(vector):
    args = (vector["server_seed"], vector["client_seed"], vector["nonce"], vector["reel_lengths"])
    assert fairness.seed_hash(vector["server_seed"]) == vector["server_seed_hash"]
    assert fairness.reel_stops(*args) == vector["stops"]
    assert readme_stops(*args) == vector["stops"]
    if "game_id" in vector:
        game = GAMES[vector["game_id"]]
        assert vector["reel_lengths"] == [len(reel) for reel in game.reels]
        assert game.symbols_at(vector["stops"]) == vector["symbols"]


def test_vectors_cover_a_second_digest():
    assert any(len(v["reel_lengths"]) > 8 for v in VECTORS)


@pytest.mark.parametrize("n", [3, 27, 31, 52, 1000, 2**31 + 1])
def test_values_in_the_biased_tail_are_rejected(n):
    limit = (2**32 // n) * n
    assert fairness.uniform(iter([limit - 1]), n) == (limit - 1) % n  # last fair value is kept
    assert fairness.uniform(iter([limit, 2**32 - 1, 5]), n) == 5 % n  # the tail is skipped


def test_power_of_two_rejects_nothing():
    assert fairness.uniform(iter([2**32 - 1]), 2**16) == 2**16 - 1


def test_exhausted_source_is_an_error_not_a_biased_value():
    with pytest.raises(ValueError):
        fairness.uniform(iter([2**32 - 1]), 3)


def test_reel_stops_skip_a_rejected_word(monkeypatch):
    words = iter([2**32 - 1, 10, 11, 12])  # 2**32 - 1 is in the biased tail for n = 3
    monkeypatch.setattr(fairness, "uint32s", lambda *args: words)
    assert fairness.reel_stops("seed", "client", 0, [3, 3, 3]) == [10 % 3, 11 % 3, 12 % 3]


@given(n=st.integers(1, 2**32), values=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=8))
def test_uniform_is_always_in_range(n, values):
    try:
        assert 0 <= fairness.uniform(iter(values), n) < n
    except ValueError:  # every value fell in the rejected tail
        assert all(v >= (2**32 // n) * n for v in values)


def test_seeds_are_fresh_and_commitments_are_sha256():
    seed = fairness.new_server_seed()
    assert seed != fairness.new_server_seed()
    assert fairness.seed_hash(seed) == hashlib.sha256(seed.encode()).hexdigest()

"""Instanthouse's games: one draw per round, exact integer multipliers, provably fair.

A round's draw is HMAC-SHA256(server seed, "<client seed>:<nonce>") read as a 256-bit integer: the studio
commits to the server seed's sha256 at launch, so a player can check every round once the seed is revealed.

- crash: the player names a target (2x, 3x, 5x or 10x) before the rocket flies; the round pays bet * target
  when the rocket reaches it. It does when draw mod 3000 < 2910 / target, so every target returns exactly
  97.00 % (3000 is a multiple of 2, 3, 5 and 10: each threshold is a whole number).
- scratch: draw mod 1000 picks a cell of a 1000-cell ticket; PAYTABLE says how many cells pay what:
  (1*100 + 10*10 + 40*5 + 150*2 + 260*1) / 1000 = 96.00 %.
(The draw is 256 bits, so reducing it mod 3000 or 1000 is biased by less than 2^-245.)
"""

import hashlib
import hmac
from dataclasses import dataclass
from fractions import Fraction

CRASH_TARGETS = (2, 3, 5, 10)
CRASH_CELLS = 3000
CRASH_RTP = Fraction(97, 100)
# (multiplier, cells of the 1000-cell ticket that pay it), best prize first; the rest (539 cells) lose.
PAYTABLE = ((100, 1), (10, 10), (5, 40), (2, 150), (1, 260))
SCRATCH_CELLS = 1000

GAMES = [
    {"gameId": "crash", "type": "instant", "rtpBasisPoints": 9700, "maxWinMultiplier": max(CRASH_TARGETS),
     "names": {"en": "Rocket Crash", "de": "Raketen-Crash", "ja": "ロケットクラッシュ"},
     "features": ["multiplier"]},
    {"gameId": "scratch", "type": "instant", "rtpBasisPoints": 9600, "maxWinMultiplier": PAYTABLE[0][0],
     "names": {"en": "Lucky Scratch", "de": "Glücksrubbellos", "ja": "ラッキースクラッチ"}, "features": []},
]
# Bet limits in decimal major units, per currency (the studio's own format).
LIMITS = {"USD": ("0.10", "100.00"), "EUR": ("0.10", "100.00"), "JPY": ("10", "10000"),
          "BTC": ("0.00001", "0.01")}


@dataclass(frozen=True)
class Outcome:
    multiplier: int  # 0: the round lost
    result: str  # what the player sees, e.g. "crash target 2x: reached"


def draw(server_seed: str, client_seed: str, nonce: int) -> int:
    digest = hmac.new(server_seed.encode(), f"{client_seed}:{nonce}".encode(), hashlib.sha256).hexdigest()
    return int(digest, 16)


def crash(value: int, target: int) -> Outcome:
    if target not in CRASH_TARGETS:
        raise ValueError(f"target must be one of {CRASH_TARGETS}")
    reached = value % CRASH_CELLS < CRASH_CELLS * CRASH_RTP / target
    return Outcome(target if reached else 0, f"crash target {target}x: {'reached' if reached else 'crashed'}")


def scratch(value: int) -> Outcome:
    cell = value % SCRATCH_CELLS
    for multiplier, cells in PAYTABLE:
        if cell < cells:
            return Outcome(multiplier, f"scratch cell {value % SCRATCH_CELLS}: {multiplier}x")
        cell -= cells
    return Outcome(0, f"scratch cell {value % SCRATCH_CELLS}: no prize")


def play(game_id: str, value: int, params: dict[str, str]) -> Outcome:
    if game_id == "crash":
        try:
            target = int(params.get("target", "2"))
        except ValueError:
            raise ValueError("target must be a whole number") from None
        return crash(value, target)
    if game_id == "scratch":
        return scratch(value)
    raise ValueError("unknown game")


def theoretical_rtp(game_id: str, target: int = 2) -> Fraction:
    """The exact return to player over every cell of the draw: what the catalog's rtpBasisPoints states."""
    if game_id == "crash":
        return Fraction(sum(crash(cell, target).multiplier for cell in range(CRASH_CELLS)), CRASH_CELLS)
    return Fraction(sum(scratch(cell).multiplier for cell in range(SCRATCH_CELLS)), SCRATCH_CELLS)

"""The studio's catalog: its games, their published RTP and limits, and the unit it counts each currency in."""

from dataclasses import dataclass, field

# The studio's minor unit per currency (10^-exponent of a major unit). Deliberately not always the hub's:
# Tablehouse counts BTC in micro-bitcoin (the hub in satoshi) and USDT in cents (the hub in 10^-6), so an
# adapter must convert, exactly or not at all.
CURRENCY_EXPONENTS = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3, "BTC": 6, "USDT": 2}

ROULETTE, BLACKJACK = "european-roulette", "blackjack"


@dataclass(frozen=True)
class Limit:
    min_minor: int
    max_minor: int
    step_minor: int = 1


@dataclass(frozen=True)
class Game:
    game_id: str
    name: str
    rules: str  # ROULETTE | BLACKJACK
    rtp_basis_points: int  # to the nearest basis point; tests/unit derive both figures
    max_win_multiplier: int  # of the round's step-0 stake
    limits: dict[str, Limit]  # roulette: each bet position; blackjack: the initial stake
    names: dict[str, str] = field(default_factory=dict)  # locale -> translated name


# Roulette: 0.10 .. 500.00 per position. Blackjack: 1.00 .. 1000.00, even amounts so 3:2 pays exactly.
GAMES: dict[str, Game] = {
    game.game_id: game
    for game in (
        Game(
            game_id=ROULETTE, name="European Roulette", rules=ROULETTE,
            rtp_basis_points=9730,  # 36/37 = 97.297 %
            max_win_multiplier=36,  # a straight up returns 36x its stake, never more than 36x the round's
            limits={"USD": Limit(10, 50_000), "EUR": Limit(10, 50_000), "JPY": Limit(10, 50_000),
                    "KWD": Limit(100, 500_000), "BTC": Limit(1, 10_000), "USDT": Limit(10, 50_000)},
            names={"de": "Europäisches Roulette", "ja": "ヨーロピアンルーレット"},
        ),
        Game(
            game_id=BLACKJACK, name="Blackjack", rules=BLACKJACK,
            rtp_basis_points=9943,  # 99.4296 % with optimal play (blackjack_rtp.theoretical_rtp)
            # Split once and double both hands: 4x the initial stake at risk, each hand paid 1:1 -> 8x.
            max_win_multiplier=8,
            limits={"USD": Limit(100, 100_000, 2), "EUR": Limit(100, 100_000, 2), "JPY": Limit(100, 100_000, 2),
                    "KWD": Limit(1_000, 1_000_000, 2), "BTC": Limit(10, 10_000, 2), "USDT": Limit(100, 100_000, 2)},
            names={"de": "Blackjack", "ja": "ブラックジャック"},
        ),
    )
}

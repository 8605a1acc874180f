"""The studio's catalog: reel strips, paytables, bet limits, and how a line of symbols is paid.

One payline (the symbol under each reel's stop). A line pays the HIGHEST multiplier among the rules it
satisfies: three of a kind of a symbol, or "any": at least `count` of `symbol` anywhere on the line.
Multipliers are integers, so a win is bet * multiplier, exactly.
"""

from dataclasses import dataclass, field, replace
from fractions import Fraction
from itertools import product

UNITS_PER_MAJOR = 100_000  # amounts on the wire are integers in 1/100000 of a currency unit


@dataclass(frozen=True)
class AnyPay:
    symbol: str
    count: int
    multiplier: int


@dataclass(frozen=True)
class Variant:
    """Another paytable on the same reels: the game at another RTP, chosen per session at launch."""

    variant_id: str
    three_of_a_kind: dict[str, int]
    rtp_basis_points: int  # published; a unit test checks it against exact enumeration


@dataclass(frozen=True)
class Game:
    game_id: str
    name: str
    reels: tuple[tuple[str, ...], ...]
    three_of_a_kind: dict[str, int]
    any_pays: tuple[AnyPay, ...]
    rtp_basis_points: int  # published; a unit test checks it against exact enumeration
    bet_limits: dict[str, tuple[int, int]]  # currency -> (min, max) in 1/100000 units
    names: dict[str, str] = field(default_factory=dict)  # locale -> translated name
    features: tuple[str, ...] = ()
    # The game's own paytable is the default variant, named default_variant; these are the others.
    default_variant: str = ""
    variants: tuple[Variant, ...] = ()

    @property
    def max_win_multiplier(self) -> int:
        return max([*self.three_of_a_kind.values(), *(p.multiplier for p in self.any_pays)])

    def at_variant(self, variant_id: str) -> "Game":
        """The game as it plays at one variant ("" or the default's id: itself); KeyError if unknown."""
        if variant_id in ("", self.default_variant):
            return self
        other = next((v for v in self.variants if v.variant_id == variant_id), None)
        if other is None:
            raise KeyError(variant_id)
        return replace(self, three_of_a_kind=other.three_of_a_kind, rtp_basis_points=other.rtp_basis_points,
                       default_variant=variant_id, variants=())

    def multiplier(self, symbols: list[str]) -> int:
        best = self.three_of_a_kind.get(symbols[0], 0) if len(set(symbols)) == 1 else 0
        for pay in self.any_pays:
            if symbols.count(pay.symbol) >= pay.count:
                best = max(best, pay.multiplier)
        return best

    def symbols_at(self, stops: list[int]) -> list[str]:
        return [reel[stop] for reel, stop in zip(self.reels, stops, strict=False)]

    def theoretical_rtp(self) -> Fraction:
        """Exact RTP: the mean multiplier over every combination of stops (all equally likely)."""
        combos = list(product(*self.reels))
        return Fraction(sum(self.multiplier(list(line)) for line in combos), len(combos))

    def to_json(self) -> dict:
        return {
            "game_id": self.game_id,
            "name": self.name,
            "type": "slot",
            "reels": [list(reel) for reel in self.reels],
            "paytable": {
                "three_of_a_kind": dict(self.three_of_a_kind),
                "any": [{"symbol": p.symbol, "count": p.count, "multiplier": p.multiplier}
                        for p in self.any_pays],
            },
            "rtp_basis_points": self.rtp_basis_points,
            "max_win_multiplier": self.max_win_multiplier,
            "bet_limits": {cur: {"min": lo, "max": hi} for cur, (lo, hi) in self.bet_limits.items()},
            "names": dict(self.names),
            "features": list(self.features),
            # Each variant with its whole paytable, so the hub can check wins at the variant it launched.
            "rtp_variants": [self._variant_json(v) for v in (self.default_variant, *(
                v.variant_id for v in self.variants))] if self.variants else [],
        }

    def _variant_json(self, variant_id: str) -> dict:
        game = self.at_variant(variant_id)
        return {"variant": variant_id, "rtp_basis_points": game.rtp_basis_points,
                "max_win_multiplier": game.max_win_multiplier,
                "paytable": {"three_of_a_kind": dict(game.three_of_a_kind),
                             "any": [{"symbol": p.symbol, "count": p.count, "multiplier": p.multiplier}
                                     for p in game.any_pays]}}


def _reel(symbols: str) -> tuple[str, ...]:
    return tuple(symbols.split())


# DOGE is deliberately offered: the hub's currency table does not know it and must skip it.
STANDARD_LIMITS = {
    "USD": (10_000, 10_000_000),  # 0.10 .. 100.00
    "EUR": (10_000, 10_000_000),
    "JPY": (1_000_000, 1_500_000_000),  # 10 .. 15000
    "KWD": (3_000, 3_000_000),  # 0.030 .. 30.000
    "BTC": (1, 1_000),  # 0.00001 .. 0.01
    "DOGE": (10_000_000, 10_000_000_000),
}
HIGH_ROLLER_LIMITS = {
    "USD": (100_000, 50_000_000),  # 1.00 .. 500.00
    "EUR": (100_000, 50_000_000),
    "JPY": (10_000_000, 7_500_000_000),
    "KWD": (30_000, 15_000_000),
    "BTC": (10, 5_000),
}

GAMES: dict[str, Game] = {
    game.game_id: game
    for game in (
        Game(
            game_id="fruit-classic",
            name="Fruit Classic",
            reels=(
                _reel("LEMON LEMON BELL LEMON LEMON BAR ORANGE PLUM SEVEN PLUM ORANGE BAR ORANGE BELL "
                      "CHERRY LEMON PLUM BELL ORANGE CHERRY PLUM CHERRY CHERRY PLUM ORANGE LEMON ORANGE"),
                _reel("ORANGE BAR ORANGE BELL LEMON PLUM CHERRY LEMON ORANGE BELL CHERRY ORANGE LEMON PLUM "
                      "BAR CHERRY PLUM ORANGE LEMON LEMON PLUM BELL LEMON CHERRY ORANGE SEVEN PLUM"),
                _reel("ORANGE LEMON CHERRY PLUM BAR CHERRY BLANK BELL CHERRY LEMON BLANK BLANK BELL BLANK "
                      "LEMON PLUM CHERRY PLUM LEMON LEMON LEMON ORANGE SEVEN PLUM ORANGE ORANGE BAR ORANGE "
                      "PLUM BELL ORANGE"),
            ),
            three_of_a_kind={"SEVEN": 150, "BAR": 60, "BELL": 30, "CHERRY": 25, "PLUM": 15,
                             "ORANGE": 10, "LEMON": 8},
            any_pays=(AnyPay("CHERRY", 2, 5), AnyPay("CHERRY", 1, 1)),
            rtp_basis_points=9614,
            bet_limits=STANDARD_LIMITS,
            names={"de": "Fruchtklassiker", "ja": "フルーツクラシック"},
            features=("free_spins",),
            default_variant="96",
            # Lower top pays for operators who run a lower RTP.
            variants=(Variant("94", {"SEVEN": 100, "BAR": 40, "BELL": 20, "CHERRY": 25, "PLUM": 15,
                                     "ORANGE": 10, "LEMON": 8}, 9401),),
        ),
        Game(
            game_id="gem-rush",
            name="Gem Rush",
            reels=(
                _reel("EMERALD SAPPHIRE EMERALD TOPAZ RUBY TOPAZ EMERALD TOPAZ DIAMOND SAPPHIRE EMERALD "
                      "RUBY AMETHYST TOPAZ TOPAZ AMETHYST AMETHYST SAPPHIRE AMETHYST SAPPHIRE AMETHYST "
                      "AMETHYST RUBY TOPAZ DIAMOND SAPPHIRE"),
                _reel("BLANK EMERALD TOPAZ SAPPHIRE AMETHYST BLANK TOPAZ AMETHYST SAPPHIRE SAPPHIRE RUBY "
                      "TOPAZ TOPAZ TOPAZ AMETHYST EMERALD RUBY SAPPHIRE EMERALD DIAMOND AMETHYST RUBY "
                      "AMETHYST EMERALD BLANK AMETHYST DIAMOND SAPPHIRE TOPAZ BLANK"),
                _reel("BLANK SAPPHIRE DIAMOND EMERALD AMETHYST SAPPHIRE RUBY AMETHYST BLANK BLANK BLANK "
                      "SAPPHIRE TOPAZ TOPAZ AMETHYST SAPPHIRE BLANK TOPAZ SAPPHIRE EMERALD BLANK AMETHYST "
                      "AMETHYST DIAMOND BLANK TOPAZ EMERALD BLANK EMERALD RUBY RUBY AMETHYST TOPAZ TOPAZ"),
            ),
            three_of_a_kind={"DIAMOND": 200, "RUBY": 60, "EMERALD": 30, "SAPPHIRE": 20,
                             "AMETHYST": 15, "TOPAZ": 10},
            any_pays=(AnyPay("DIAMOND", 2, 8), AnyPay("DIAMOND", 1, 2)),
            rtp_basis_points=9453,
            bet_limits=STANDARD_LIMITS,
            names={"de": "Edelsteinrausch", "ja": "ジェムラッシュ"},
            features=("bonus_buy", "multiplier"),
        ),
        Game(
            game_id="lucky-sevens",
            name="Lucky Sevens",
            reels=(
                _reel("CHERRY BLANK CHERRY BLANK BLANK BELL BAR BELL BLANK SEVEN BELL BELL BLANK BLANK BELL "
                      "BLANK BAR BELL BAR BLANK BLANK BLANK BAR CHERRY"),
                _reel("BLANK BELL BLANK BLANK BLANK SEVEN BELL BLANK BLANK BELL BLANK BLANK BELL CHERRY BAR "
                      "BAR BLANK BLANK CHERRY BELL BAR CHERRY BLANK BELL BAR"),
                _reel("BLANK BLANK BLANK BLANK BELL BLANK BLANK BELL CHERRY BLANK BLANK BLANK BLANK BAR "
                      "CHERRY BLANK BELL BLANK BLANK BELL BAR BLANK BELL BLANK SEVEN BLANK BLANK BAR CHERRY "
                      "BLANK BELL BAR"),
            ),
            three_of_a_kind={"SEVEN": 1000, "BAR": 50, "BELL": 20, "CHERRY": 10},
            any_pays=(AnyPay("SEVEN", 2, 25), AnyPay("CHERRY", 2, 3), AnyPay("CHERRY", 1, 1)),
            rtp_basis_points=9271,
            bet_limits=HIGH_ROLLER_LIMITS,
            # No Japanese name: the hub falls back to English.
            names={"de": "Glückliche Sieben"},
            features=("jackpot",),
        ),
    )
}

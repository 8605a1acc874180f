"""The hub's own reading of a Reelhouse paytable, so a win is checked, not taken on the studio's word.

Written from the studio's published rules (README), deliberately not sharing code with the mock: one
payline; a line pays the highest multiplier among "three of a kind of S" and "at least N of S anywhere".
"""

from dataclasses import dataclass
from typing import Any

from adapters.base import ProviderProtocolError


@dataclass(frozen=True)
class Paytable:
    reels: tuple[tuple[str, ...], ...]
    three_of_a_kind: dict[str, int]
    any_pays: tuple[tuple[str, int, int], ...]  # (symbol, at least this many, multiplier)

    @classmethod
    def from_catalog(cls, reels: Any, paytable: Any) -> "Paytable":  # untrusted JSON, checked below
        try:
            parsed = cls(
                reels=tuple(tuple(_str(s) for s in reel) for reel in reels),
                three_of_a_kind={_str(s): _int(m) for s, m in paytable["three_of_a_kind"].items()},
                any_pays=tuple((_str(p["symbol"]), _int(p["count"]), _int(p["multiplier"]))
                               for p in paytable["any"]),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ProviderProtocolError(f"reelhouse paytable is malformed: {exc!r}") from exc
        if not parsed.reels or not all(parsed.reels):
            raise ProviderProtocolError("reelhouse paytable has an empty reel")
        return parsed

    def symbols_at(self, stops: list[int]) -> list[str]:
        if len(stops) != len(self.reels) or not all(0 <= s < len(r) for s, r in zip(stops, self.reels, strict=True)):
            raise ProviderProtocolError(f"reelhouse stops {stops} do not fit the reels")
        return [reel[stop] for reel, stop in zip(self.reels, stops, strict=True)]

    def multiplier(self, symbols: list[str]) -> int:
        candidates = [0]
        if len(set(symbols)) == 1:
            candidates.append(self.three_of_a_kind.get(symbols[0], 0))
        candidates += [pays for symbol, count, pays in self.any_pays if symbols.count(symbol) >= count]
        return max(candidates)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a symbol, got {value!r}")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value

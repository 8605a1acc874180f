"""The live table's fault knobs: how the studio misbehaves towards the hub and its players.

Each kind of fault fires either deterministically (`<kind>_next`: the next N occasions) or at random
(`<kind>_rate`: that share of occasions, drawn from a generator seeded by `seed`, so a run repeats).
Every firing is counted in `injected`, so a test can report what it survived.
"""

import random
from collections import Counter
from dataclasses import dataclass, field, fields

# Kinds that fire by `_next` and `_rate`:
#   error                studio-side failure: a bet at the table answers 503, or a wallet call is not sent
#                        (the sender fails and retries later); nothing happened
#   timeout              a wallet call is sent and acted on, then its answer is treated as lost and the same
#                        call (same transaction id) is sent again
#   duplicate            a wallet call is delivered twice
#   win_before_bet       a bet is taken at the table but its Bet is delivered only at the result, after a Win
#                        that names it (the hub answers BET_NOT_FOUND until the bet arrives)
#   rollback_before_bet  a bet's Rollback reaches the hub before its Bet (the hub tombstones the id and refuses
#                        the bet TRANSACTION_ROLLED_BACK)
#   bad_signature        a wallet call is first sent with a corrupted signature (refused), then properly
#   replay               a wallet call is sent again with the same signed headers (nonce reused: refused)
#   wrong_amount         a Bet or Win is first sent in a currency the session does not play in (refused), and
#                        once taken, resent with its amount one minor unit off (IDEMPOTENCY_KEY_REUSED)
KINDS = ("error", "timeout", "duplicate", "win_before_bet", "rollback_before_bet", "bad_signature", "replay",
         "wrong_amount")
MAX_NEXT = 1_000_000


@dataclass
class Faults:
    latency_ms: int = 0  # delay before each answer of /v1/bets and /v1/sessions and before each wallet call
    result_delay_s: float = 0.0  # results are sent this late (after the next window, or the session's expiry)
    out_of_order_rate: float = 0.0  # share of bets delivered win-before-bet or rollback-before-bet (half each)
    error_rate: float = 0.0
    error_next: int = 0
    timeout_rate: float = 0.0
    timeout_next: int = 0
    duplicate_rate: float = 0.0
    duplicate_next: int = 0
    win_before_bet_rate: float = 0.0
    win_before_bet_next: int = 0
    rollback_before_bet_rate: float = 0.0
    rollback_before_bet_next: int = 0
    bad_signature_rate: float = 0.0
    bad_signature_next: int = 0
    replay_rate: float = 0.0
    replay_next: int = 0
    wrong_amount_rate: float = 0.0
    wrong_amount_next: int = 0
    seed: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    _draws: random.Random = field(default_factory=lambda: random.Random(0))

    def knobs(self) -> dict[str, float | int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("injected", "_draws")}

    def update(self, changes: object) -> None:
        """Set any subset of the knobs; a bad one raises ValueError and then none changes."""
        if not isinstance(changes, dict):
            raise ValueError("faults must be a JSON object")
        known = self.knobs()
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"no fault knob {str(name)[:40]!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if name.endswith("_rate") and not 0 <= value <= 1:
                raise ValueError(f"{name} must be within 0..1")
            if (name.endswith("_next") or name in ("latency_ms", "seed")) and (
                    not isinstance(value, int) or not 0 <= value <= MAX_NEXT):
                raise ValueError(f"{name} must be an integer within 0..{MAX_NEXT}")
            if name == "result_delay_s" and not 0 <= value <= 600:
                raise ValueError("result_delay_s must be within 0..600")
        for name, value in changes.items():
            setattr(self, name, value)
        if "seed" in changes:
            self._draws = random.Random(self.seed)

    def fires(self, kind: str) -> bool:
        """Whether this occasion gets the fault `kind` (counted when it does)."""
        if getattr(self, f"{kind}_next"):
            setattr(self, f"{kind}_next", getattr(self, f"{kind}_next") - 1)
        elif not (getattr(self, f"{kind}_rate") and self._draws.random() < getattr(self, f"{kind}_rate")):
            return False
        self.injected[kind] += 1
        return True

    def out_of_order(self) -> str:
        """How the next bet is delivered: "win_before_bet", "rollback_before_bet" or "" (in order)."""
        for kind in ("win_before_bet", "rollback_before_bet"):
            if self.fires(kind):
                return kind
        if self.out_of_order_rate and self._draws.random() < self.out_of_order_rate:
            kind = self._draws.choice(("win_before_bet", "rollback_before_bet"))
            self.injected[kind] += 1
            return kind
        return ""

"""Finds rounds left OPEN (a hub killed between debit and settlement, a provider that never answered)
and closes them against the provider's own record: settle with the provider's win, or refund. Rounds a
push-style studio opened through ProviderWalletService are the studio's to close, and left alone.

Nothing waits for a human unless the provider cannot answer; those rounds are flagged and retried on
the next pass. A multi-step round (blackjack) the studio reports in progress is the player's to finish, or
the studio's to finish by its own rule: it is left alone until the studio says it ended. When the studio
settles a round with a smaller stake than the hub took, the steps it never took are refunded, newest first
(their stakes must add up to the difference exactly, else the round is flagged: never a guess). Several hub processes may reconcile at once: every action uses the same keys Play
uses (rounds.win_key / rollback_key), so a second actor only replays what the first did.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from sqlalchemy import select

from adapters.base import ProviderError, RoundStatusInput
from hub.catalog import Catalog
from hub.clock import utcnow
from hub.errors import DomainError, Reason
from hub.ledger.book import Book
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.rounds import OPEN, Rollback, RoundLedger, Win, active_bets, rollback_key, win_key
from hub.ledger.schema import rounds
from hub.ledger.uow import UnitOfWork

log = structlog.get_logger(__name__)
BATCH = 200
# Told, inside the closing command, that the reconciler closed a round: (book, operator, round, refunded).
# Play uses it to append the round's last event to its game session's log.
OnClosed = Callable[[Book, str, str, bool], None]


@dataclass(frozen=True)
class SettleStale:
    """Settle a stale round with the win its provider reports."""

    operator_id: str
    round_id: str
    win: int


@dataclass(frozen=True)
class SettleStaleSteps:
    """Settle a stale multi-step round: refund the stakes of steps the studio never took, then pay its win."""

    operator_id: str
    round_id: str
    win: int
    studio_stake: int


@dataclass(frozen=True)
class RefundStale:
    """Refund every standing bet of a round its provider never played, and close it."""

    operator_id: str
    round_id: str


@dataclass
class ReconcileReport:
    examined: int = 0
    settled: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    flagged: list[tuple[str, str]] = field(default_factory=list)  # (round id, why a human may be needed)
    in_progress: list[str] = field(default_factory=list)  # multi-step rounds the studio still plays: left alone

    def render(self) -> str:
        lines = [f"examined {self.examined} open round(s): {len(self.settled)} settled, "
                 f"{len(self.rolled_back)} rolled back, {len(self.flagged)} flagged, "
                 f"{len(self.in_progress)} in progress at the studio"]
        lines += [f"  settled      {r}" for r in self.settled]
        lines += [f"  rolled back  {r}" for r in self.rolled_back]
        lines += [f"  FLAGGED      {r}: {why}" for r, why in self.flagged]
        lines += [f"  in progress  {r}" for r in self.in_progress]
        return "\n".join(lines)


class Reconciler:
    def __init__(self, db: Database, engine: SettlementEngine, catalog: Catalog, rounds: RoundLedger,
                 older_than: timedelta, on_closed: OnClosed):
        self._db = db
        self._engine = engine
        self._catalog = catalog
        self._rounds = rounds
        self._older_than = older_than
        self._on_closed = on_closed

    async def run_once(self, operator_id: str | None = None) -> ReconcileReport:
        report = ReconcileReport()
        for round_ in await self._db.run(lambda uow: self._stale_rounds(uow, operator_id)):
            report.examined += 1
            try:
                await self._reconcile(round_, report)
            except DomainError as err:  # e.g. the provider's win differs from one already paid
                report.flagged.append((round_.round_id, f"{err.reason.name}: {err.message}"))
        if report.examined:
            log.info("reconcile.done", examined=report.examined, settled=len(report.settled),
                     rolled_back=len(report.rolled_back), flagged=len(report.flagged))
        return report

    def _stale_rounds(self, uow: UnitOfWork, operator_id: str | None) -> list:  # type: ignore[type-arg]
        # A round the studio named (provider_round_id set while OPEN: a push-style studio's, hub.provider_wallet)
        # is the studio's to settle or roll back; Play's rounds learn the studio's id only when they close.
        query = select(rounds.c.operator_id, rounds.c.round_id, rounds.c.game_id).where(
            rounds.c.status == OPEN, rounds.c.opened_at < utcnow() - self._older_than,
            rounds.c.provider_round_id.is_(None))
        if operator_id:
            query = query.where(rounds.c.operator_id == operator_id)
        return list(uow.conn.execute(query.order_by(rounds.c.opened_at).limit(BATCH)))

    async def _reconcile(self, round_, report: ReconcileReport) -> None:  # type: ignore[no-untyped-def]
        try:
            _, adapter = await self._catalog.game(round_.game_id)
            status = await adapter.round_status(RoundStatusInput(round_.round_id, round_.operator_id))
        except (ProviderError, DomainError) as exc:
            report.flagged.append((round_.round_id, f"provider cannot answer: {exc}"))
            return
        if status.status == "settled" and status.stake_minor is not None:
            await self._engine.submit(self._settle_steps, SettleStaleSteps(
                round_.operator_id, round_.round_id, status.win_minor, status.stake_minor))
            report.settled.append(round_.round_id)
        elif status.status == "settled":
            await self._engine.submit(self._settle, SettleStale(round_.operator_id, round_.round_id, status.win_minor))
            report.settled.append(round_.round_id)
        elif status.status == "in_progress":
            report.in_progress.append(round_.round_id)
        elif status.status in ("unknown", "cancelled"):
            await self._engine.submit(self._refund, RefundStale(round_.operator_id, round_.round_id))
            report.rolled_back.append(round_.round_id)
        else:
            report.flagged.append((round_.round_id, f"provider reports status {status.status!r}"))

    def _settle(self, book: Book, cmd: SettleStale) -> None:
        now = utcnow()
        if cmd.win:
            self._rounds.win(book, Win(cmd.operator_id, cmd.round_id, win_key(cmd.round_id), cmd.win), now)
        self._rounds.close(book, cmd.operator_id, cmd.round_id, now)
        self._on_closed(book, cmd.operator_id, cmd.round_id, False)

    def _settle_steps(self, book: Book, cmd: SettleStaleSteps) -> None:
        now = utcnow()
        standing = active_bets(book, cmd.operator_id, cmd.round_id)
        extra = sum(b["amount"] for b in standing) - cmd.studio_stake
        refunded = []
        for bet in reversed(standing[1:]):  # a step's stake, newest first; never the round's first bet
            if extra <= 0:
                break
            extra -= bet["amount"]
            refunded.append(bet)
        if extra != 0:
            raise DomainError(Reason.PROVIDER_OUTCOME_INVALID, f"the studio counts a stake of {cmd.studio_stake}, "
                              "which no set of this round's latest steps explains")
        for bet in refunded:
            self._rounds.rollback(book, Rollback(cmd.operator_id, bet["player_id"], bet["currency"], bet["bet_id"],
                                                 rollback_key(bet["bet_id"])), now)
        self._settle(book, SettleStale(cmd.operator_id, cmd.round_id, cmd.win))

    def _refund(self, book: Book, cmd: RefundStale) -> None:
        """The provider never played the round: every bet still standing goes back to the player."""
        now = utcnow()
        for bet in active_bets(book, cmd.operator_id, cmd.round_id):
            self._rounds.rollback(book, Rollback(cmd.operator_id, bet["player_id"], bet["currency"], bet["bet_id"],
                                                 rollback_key(bet["bet_id"])), now)
        self._rounds.close(book, cmd.operator_id, cmd.round_id, now)
        self._on_closed(book, cmd.operator_id, cmd.round_id, True)

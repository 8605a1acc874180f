"""Finds rounds left OPEN (a hub killed between debit and settlement, a provider that never answered)
and closes them against the provider's own record: settle with the provider's win, or refund.

Nothing waits for a human unless the provider cannot answer; those rounds are flagged and retried on
the next pass. Several hub processes may reconcile at once: every action uses the same keys Play
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
from hub.errors import DomainError
from hub.ledger.db import Database
from hub.ledger.rounds import OPEN, Rollback, RoundLedger, Win, active_bets, rollback_key, win_key
from hub.ledger.schema import rounds
from hub.ledger.uow import UnitOfWork

log = structlog.get_logger(__name__)
BATCH = 200
# Told, inside the closing transaction, that the reconciler closed a round: (uow, operator, round, refunded).
# Play uses it to append the round's last event to its game session's log.
OnClosed = Callable[[UnitOfWork, str, str, bool], None]


@dataclass
class ReconcileReport:
    examined: int = 0
    settled: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    flagged: list[tuple[str, str]] = field(default_factory=list)  # (round id, why a human may be needed)

    def render(self) -> str:
        lines = [f"examined {self.examined} open round(s): {len(self.settled)} settled, "
                 f"{len(self.rolled_back)} rolled back, {len(self.flagged)} flagged"]
        lines += [f"  settled      {r}" for r in self.settled]
        lines += [f"  rolled back  {r}" for r in self.rolled_back]
        lines += [f"  FLAGGED      {r}: {why}" for r, why in self.flagged]
        return "\n".join(lines)


class Reconciler:
    def __init__(self, db: Database, catalog: Catalog, rounds: RoundLedger, older_than: timedelta,
                 on_closed: OnClosed):
        self._db = db
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
        query = select(rounds.c.operator_id, rounds.c.round_id, rounds.c.game_id).where(
            rounds.c.status == OPEN, rounds.c.opened_at < utcnow() - self._older_than)
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
        if status.status == "settled":
            await self._db.run(lambda uow: self._settle(uow, round_, status.win_minor))
            report.settled.append(round_.round_id)
        elif status.status in ("unknown", "cancelled"):
            await self._db.run(lambda uow: self._refund(uow, round_))
            report.rolled_back.append(round_.round_id)
        else:
            report.flagged.append((round_.round_id, f"provider reports status {status.status!r}"))

    def _settle(self, uow: UnitOfWork, round_, win: int) -> None:  # type: ignore[no-untyped-def]
        now = utcnow()
        if win:
            self._rounds.win(uow, Win(round_.operator_id, round_.round_id, win_key(round_.round_id), win), now)
        self._rounds.close(uow, round_.operator_id, round_.round_id, now)
        self._on_closed(uow, round_.operator_id, round_.round_id, False)
        uow.commit()

    def _refund(self, uow: UnitOfWork, round_) -> None:  # type: ignore[no-untyped-def]
        """The provider never played the round: every bet still standing goes back to the player."""
        now = utcnow()
        row = uow.conn.execute(select(rounds.c.player_id, rounds.c.currency).where(
            rounds.c.operator_id == round_.operator_id, rounds.c.round_id == round_.round_id)).one()
        for bet_id in active_bets(uow, round_.operator_id, round_.round_id):
            self._rounds.rollback(uow, Rollback(round_.operator_id, row.player_id, row.currency, bet_id,
                                                rollback_key(bet_id)), now)
        self._rounds.close(uow, round_.operator_id, round_.round_id, now)
        self._on_closed(uow, round_.operator_id, round_.round_id, True)
        uow.commit()

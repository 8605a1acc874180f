"""Ledger totals: what each kind of account holds, per operator and currency, summed by the database.

Served by ReportService.GetLedgerTotals and printed by `hub ledger totals`; both call ledger_totals().
"""

from dataclasses import asdict, dataclass

import structlog
from sqlalchemy import Connection, func, select

from hub.ledger.db import Database
from hub.ledger.postings import EXTERNAL, HOUSE, PLAYER_BONUS, PLAYER_CASH, PLAYER_HOLD, PROMOTION
from hub.ledger.schema import accounts
from hub.money import exponent

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CurrencyTotals:
    """Balances in minor units, each summed over every account of its kind."""

    currency: str
    house: int = 0  # the sum of the house shards
    house_shards: int = 0
    player_cash: int = 0
    player_hold: int = 0
    player_bonus: int = 0
    promotion: int = 0
    external: int = 0
    other: int = 0  # accounts of a kind not listed above: still part of net, never dropped
    net: int = 0  # every account: zero on an intact ledger

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# Account kind -> CurrencyTotals field.
_FIELDS = {HOUSE: "house", PLAYER_CASH: "player_cash", PLAYER_HOLD: "player_hold",
           PLAYER_BONUS: "player_bonus", PROMOTION: "promotion", EXTERNAL: "external"}


def ledger_totals(conn: Connection, operator_id: str, currency: str = "") -> list[CurrencyTotals]:
    """The operator's totals per currency (only `currency` if given), ordered by currency.

    One statement, so every sum comes from the same read: a settlement committing meanwhile is
    counted whole or not at all, and net stays zero on a live hub.
    """
    query = (select(accounts.c.currency, accounts.c.kind, func.sum(accounts.c.balance), func.count())
             .where(accounts.c.operator_id == operator_id)
             .group_by(accounts.c.currency, accounts.c.kind)
             .order_by(accounts.c.currency, accounts.c.kind))
    if currency:
        query = query.where(accounts.c.currency == currency)
    totals: dict[str, dict[str, int]] = {}
    for code, kind, total, count in conn.execute(query):
        total = int(total)  # MariaDB sums BIGINT as DECIMAL
        sums = totals.setdefault(code, {"net": 0})
        sums["net"] += total
        field = _FIELDS.get(kind)
        if field is None:
            log.warning("reports.unlisted_account_kind", operator=operator_id, currency=code, kind=kind)
            field = "other"
        sums[field] = sums.get(field, 0) + total
        if kind == HOUSE:
            sums["house_shards"] = count
    return [CurrencyTotals(code, **sums) for code, sums in totals.items()]


def operators_with_accounts(conn: Connection) -> list[str]:
    """Every operator that owns an account. Cross-tenant on purpose: for the `hub ledger totals` CLI only."""
    query = select(accounts.c.operator_id).distinct().order_by(accounts.c.operator_id)
    return list(conn.execute(query).scalars())


class Reports:
    def __init__(self, db: Database):
        self._db = db

    async def ledger_totals(self, operator_id: str, currency: str = "") -> list[CurrencyTotals]:
        if currency:
            exponent(currency)  # an unknown currency is refused (UNKNOWN_CURRENCY), not answered with []
        return await self._db.run(lambda uow: ledger_totals(uow.conn, operator_id, currency))

    async def operators(self) -> list[str]:
        return await self._db.run(lambda uow: operators_with_accounts(uow.conn))

import grpc

from casinohub.v1 import report_service_pb2 as pb, report_service_pb2_grpc
from hub.money import money_message
from hub.operators import Operators
from hub.reports import CurrencyTotals, Reports
from hub.servicers.calls import unary


def _totals(t: CurrencyTotals) -> pb.CurrencyTotals:
    def money(amount: int):  # type: ignore[no-untyped-def]
        return money_message(t.currency, amount)

    return pb.CurrencyTotals(
        currency=t.currency, house=money(t.house), house_shards=t.house_shards,
        player_cash=money(t.player_cash), player_hold=money(t.player_hold),
        player_bonus=money(t.player_bonus), promotion=money(t.promotion), external=money(t.external),
        net=money(t.net))


class ReportServicer(report_service_pb2_grpc.ReportServiceServicer):
    def __init__(self, reports: Reports, operators: Operators, default_operator: str):
        self.reports = reports
        self.operators = operators
        self.default_operator = default_operator

    @unary
    async def GetLedgerTotals(self, operator_id: str, request: pb.GetLedgerTotalsRequest,
                              context: grpc.aio.ServicerContext) -> pb.GetLedgerTotalsResponse:
        totals = await self.reports.ledger_totals(operator_id, request.currency)
        return pb.GetLedgerTotalsResponse(totals=[_totals(t) for t in totals])

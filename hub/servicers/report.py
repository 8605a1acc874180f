import grpc

from casinohub.v1 import report_service_pb2 as pb, report_service_pb2_grpc
from hub.operators import Operators
from hub.reports import Reports
from hub.servicers import mapping
from hub.servicers.calls import unary


class ReportServicer(report_service_pb2_grpc.ReportServiceServicer):
    def __init__(self, reports: Reports, operators: Operators):
        self.reports = reports
        self.operators = operators

    @unary
    async def GetLedgerTotals(self, operator_id: str, request: pb.GetLedgerTotalsRequest,
                              context: grpc.aio.ServicerContext) -> pb.GetLedgerTotalsResponse:
        return mapping.ledger_totals(await self.reports.ledger_totals(operator_id, request.currency))

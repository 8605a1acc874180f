import grpc

from casinohub.v1 import wallet_service_pb2 as pb, wallet_service_pb2_grpc
from hub.operators import Operators
from hub.promotions import Promotions
from hub.servicers import mapping
from hub.servicers.calls import unary
from hub.wallet import Wallet


class WalletServicer(wallet_service_pb2_grpc.WalletServiceServicer):
    def __init__(self, wallet: Wallet, promotions: Promotions, operators: Operators):
        self.wallet = wallet
        self.promotions = promotions
        self.operators = operators

    @unary
    async def GetBalance(self, operator_id: str, request: pb.GetBalanceRequest,
                         context: grpc.aio.ServicerContext) -> pb.GetBalanceResponse:
        return mapping.balance(await self.wallet.balance(operator_id, request.player_id, request.currency))

    @unary
    async def Deposit(self, operator_id: str, request: pb.DepositRequest,
                      context: grpc.aio.ServicerContext) -> pb.DepositResponse:
        return mapping.deposited(await self.wallet.deposit(
            operator_id, request.player_id, mapping.money_in(request.amount), request.idempotency_key))

    @unary
    async def Withdraw(self, operator_id: str, request: pb.WithdrawRequest,
                       context: grpc.aio.ServicerContext) -> pb.WithdrawResponse:
        return mapping.withdrawn(await self.wallet.withdraw(
            operator_id, request.player_id, mapping.money_in(request.amount), request.idempotency_key))

    @unary
    async def ListTransactions(self, operator_id: str, request: pb.ListTransactionsRequest,
                               context: grpc.aio.ServicerContext) -> pb.ListTransactionsResponse:
        return mapping.transactions(await self.wallet.transactions(operator_id, mapping.transaction_query(request)))

    @unary
    async def GrantBonus(self, operator_id: str, request: pb.GrantBonusRequest,
                         context: grpc.aio.ServicerContext) -> pb.GrantBonusResponse:
        return mapping.bonus_granted(await self.promotions.grant_bonus(
            operator_id, request.player_id, mapping.money_in(request.amount),
            mapping.money_in(request.wagering_requirement), mapping.time_in(request, "expires_at"),
            request.idempotency_key))

    @unary
    async def ForfeitBonus(self, operator_id: str, request: pb.ForfeitBonusRequest,
                           context: grpc.aio.ServicerContext) -> pb.ForfeitBonusResponse:
        return pb.ForfeitBonusResponse(bonus=mapping.bonus(await self.promotions.forfeit_bonus(operator_id,
                                                                                               request.bonus_id)))

    @unary
    async def GetBonus(self, operator_id: str, request: pb.GetBonusRequest,
                       context: grpc.aio.ServicerContext) -> pb.GetBonusResponse:
        return pb.GetBonusResponse(bonus=mapping.bonus(await self.promotions.get_bonus(operator_id, request.bonus_id)))

    @unary
    async def ApproveWithdrawal(self, operator_id: str, request: pb.ApproveWithdrawalRequest,
                                context: grpc.aio.ServicerContext) -> pb.ApproveWithdrawalResponse:
        return mapping.approved(await self.wallet.approve_withdrawal(operator_id, request.withdrawal_id))

    @unary
    async def RejectWithdrawal(self, operator_id: str, request: pb.RejectWithdrawalRequest,
                               context: grpc.aio.ServicerContext) -> pb.RejectWithdrawalResponse:
        return mapping.rejected(await self.wallet.reject_withdrawal(operator_id, request.withdrawal_id))

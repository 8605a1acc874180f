from google.rpc import error_details_pb2
from grpc_status import rpc_status

from casinohub.v1 import common_pb2
from hub.errors import DomainError, Reason, State
from hub.servicers import mapping


def test_reasons_match_the_contract_enum() -> None:
    """Every Python reason is the proto ErrorReason of the same number, and the proto has no others."""
    proto = {v.name.removeprefix("ERROR_REASON_"): v.number
             for v in common_pb2.ErrorReason.DESCRIPTOR.values if v.number}
    assert {r.name: r.value for r in Reason} == proto


def test_status_carries_error_info_with_retry_and_state() -> None:
    status = mapping.status(DomainError(Reason.REQUEST_IN_PROGRESS, "busy", State.UNKNOWN))
    details = rpc_status.from_call(type("Call", (), {
        "trailing_metadata": lambda self: status.trailing_metadata,
        "code": lambda self: status.code, "details": lambda self: status.details})())
    info = error_details_pb2.ErrorInfo()
    details.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("REQUEST_IN_PROGRESS", "casinohub")
    assert dict(info.metadata) == {"retryable": "true", "state": "UNKNOWN"}

"""Reading a hub error the way a client does: status code plus google.rpc ErrorInfo."""

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)
    assert status is not None, f"no rich status on {err.code()}: {err.details()}"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.domain == "casinohub"
    return info


def reason_of(err: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str]:
    return err.code(), error_info(err).reason

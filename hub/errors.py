"""Domain errors with stable reasons, each with its gRPC code (the edge, hub.servicers.mapping, turns them
into statuses with ErrorInfo and into Play's error events)."""

import enum

import grpc


class State(enum.Enum):
    NOT_APPLIED = "NOT_APPLIED"
    APPLIED = "APPLIED"
    UNKNOWN = "UNKNOWN"


class Reason(enum.Enum):
    """Each reason with its gRPC code and whether retrying the same request may succeed.

    Values are the casinohub.v1.ErrorReason numbers (a unit test keeps them in step), so members
    with the same code and retryability stay distinct instead of becoming enum aliases. A member is
    the number after the one above it unless it names its own (a third element): the proto's numbers
    may leave gaps.
    """

    code: grpc.StatusCode  # set per member in __new__
    retryable: bool

    def __new__(cls, code: grpc.StatusCode, retryable: bool, number: int | None = None) -> "Reason":
        member = object.__new__(cls)
        previous = max((m.value for m in cls.__members__.values()), default=0)
        member._value_ = number if number is not None else previous + 1
        member.code = code
        member.retryable = retryable
        return member

    INVALID_ARGUMENT = (grpc.StatusCode.INVALID_ARGUMENT, False)
    INVALID_AMOUNT = (grpc.StatusCode.INVALID_ARGUMENT, False)
    UNKNOWN_CURRENCY = (grpc.StatusCode.INVALID_ARGUMENT, False)
    CURRENCY_MISMATCH = (grpc.StatusCode.FAILED_PRECONDITION, False)
    INVALID_IDEMPOTENCY_KEY = (grpc.StatusCode.INVALID_ARGUMENT, False)
    IDEMPOTENCY_KEY_REUSED = (grpc.StatusCode.ALREADY_EXISTS, False)
    REQUEST_IN_PROGRESS = (grpc.StatusCode.ABORTED, True)
    INSUFFICIENT_FUNDS = (grpc.StatusCode.FAILED_PRECONDITION, False)
    PLAYER_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False)
    GAME_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False)
    ROUND_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False)
    PLAYER_EXISTS = (grpc.StatusCode.ALREADY_EXISTS, False)
    INVALID_CREDENTIALS = (grpc.StatusCode.UNAUTHENTICATED, False)
    INVALID_SESSION = (grpc.StatusCode.UNAUTHENTICATED, False)
    STREAM_NOT_OPEN = (grpc.StatusCode.FAILED_PRECONDITION, False)
    PROVIDER_UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, True)
    PROVIDER_TIMEOUT = (grpc.StatusCode.UNAVAILABLE, True)
    PROVIDER_REJECTED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    BET_OUT_OF_LIMITS = (grpc.StatusCode.INVALID_ARGUMENT, False)
    UNKNOWN_OPERATOR = (grpc.StatusCode.UNAUTHENTICATED, False)
    AMOUNT_NOT_REPRESENTABLE = (grpc.StatusCode.FAILED_PRECONDITION, False)
    HUB_UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, True)
    GAME_SESSION_CLOSED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    GAME_SESSION_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False)
    PROVIDER_OUTCOME_INVALID = (grpc.StatusCode.UNAVAILABLE, True)
    TRANSACTION_ROLLED_BACK = (grpc.StatusCode.FAILED_PRECONDITION, False)
    BET_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False)
    ROUND_CLOSED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    ROUND_ALREADY_SETTLED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    PLAYER_BLOCKED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    DEPOSIT_LIMIT_EXCEEDED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    WITHDRAWAL_LIMIT_EXCEEDED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    WITHDRAWAL_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False)
    WITHDRAWAL_NOT_PENDING = (grpc.StatusCode.FAILED_PRECONDITION, False)
    BONUS_ALREADY_ACTIVE = (grpc.StatusCode.FAILED_PRECONDITION, False)
    BONUS_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False)
    BONUS_NOT_ACTIVE = (grpc.StatusCode.FAILED_PRECONDITION, False)
    FREE_ROUND_BET_MISMATCH = (grpc.StatusCode.FAILED_PRECONDITION, False)
    STREAM_ALREADY_OPEN = (grpc.StatusCode.FAILED_PRECONDITION, False)
    SEQ_OUT_OF_RANGE = (grpc.StatusCode.OUT_OF_RANGE, False)
    MALFORMED_REQUEST = (grpc.StatusCode.INVALID_ARGUMENT, False)
    FIELD_TOO_LONG = (grpc.StatusCode.INVALID_ARGUMENT, False)
    INVALID_PAGE_TOKEN = (grpc.StatusCode.INVALID_ARGUMENT, False)
    AMOUNT_ABOVE_MAXIMUM = (grpc.StatusCode.INVALID_ARGUMENT, False)
    OVERLOADED = (grpc.StatusCode.RESOURCE_EXHAUSTED, True)
    CREDENTIALS_MISSING = (grpc.StatusCode.UNAUTHENTICATED, False)
    INVALID_CLIENT_CREDENTIALS = (grpc.StatusCode.UNAUTHENTICATED, False)
    API_KEY_REVOKED = (grpc.StatusCode.UNAUTHENTICATED, False)
    TOKEN_EXPIRED = (grpc.StatusCode.UNAUTHENTICATED, False)
    TOKEN_INVALID = (grpc.StatusCode.UNAUTHENTICATED, False)
    SIGNATURE_INVALID = (grpc.StatusCode.UNAUTHENTICATED, False)
    TIMESTAMP_OUT_OF_WINDOW = (grpc.StatusCode.UNAUTHENTICATED, False)
    NONCE_REUSED = (grpc.StatusCode.UNAUTHENTICATED, False)
    IP_NOT_ALLOWED = (grpc.StatusCode.PERMISSION_DENIED, False)
    SCOPE_MISSING = (grpc.StatusCode.PERMISSION_DENIED, False)
    OPERATOR_MISMATCH = (grpc.StatusCode.PERMISSION_DENIED, False)
    OPERATOR_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False)
    OPERATOR_EXISTS = (grpc.StatusCode.ALREADY_EXISTS, False)
    API_KEY_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False)
    RATE_LIMITED = (grpc.StatusCode.RESOURCE_EXHAUSTED, True)
    TOO_MANY_STREAMS = (grpc.StatusCode.RESOURCE_EXHAUSTED, True)
    ENVIRONMENT_MISMATCH = (grpc.StatusCode.PERMISSION_DENIED, False)
    SANDBOX_OPERATOR_REFUSED = (grpc.StatusCode.PERMISSION_DENIED, False)
    STUDIO_DISABLED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    STUDIO_UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, True)
    GAME_BLOCKED_IN_COUNTRY = (grpc.StatusCode.FAILED_PRECONDITION, False)
    COUNTRY_REQUIRED = (grpc.StatusCode.INVALID_ARGUMENT, False)
    RTP_VARIANT_NOT_OFFERED = (grpc.StatusCode.INVALID_ARGUMENT, False)
    STUDIO_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False)
    SESSION_EXPIRED = (grpc.StatusCode.UNAUTHENTICATED, False)
    SESSION_REVOKED = (grpc.StatusCode.UNAUTHENTICATED, False)
    REFRESH_TOKEN_REUSED = (grpc.StatusCode.UNAUTHENTICATED, False)
    SELF_EXCLUDED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    LOSS_LIMIT_EXCEEDED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    SESSION_TIME_LIMIT_REACHED = (grpc.StatusCode.FAILED_PRECONDITION, False)
    ACTION_NOT_ALLOWED = (grpc.StatusCode.FAILED_PRECONDITION, False, 76)
    ROUND_NOT_AWAITING_ACTION = (grpc.StatusCode.FAILED_PRECONDITION, False, 77)
    DEMO_NOT_AVAILABLE = (grpc.StatusCode.FAILED_PRECONDITION, False, 85)
    OBJECT_OF_ANOTHER_OPERATOR = (grpc.StatusCode.PERMISSION_DENIED, False, 90)
    LIMIT_OUT_OF_RANGE = (grpc.StatusCode.INVALID_ARGUMENT, False, 91)
    CLIENT_CERTIFICATE_NOT_BOUND = (grpc.StatusCode.PERMISSION_DENIED, False, 95)
    CLIENT_CERTIFICATE_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, False, 96)
    CLIENT_CERTIFICATE_LIMIT_REACHED = (grpc.StatusCode.FAILED_PRECONDITION, False, 97)


class DomainError(Exception):
    """A refusal the client caused or can act on. `state` says whether anything was applied."""

    def __init__(self, reason: Reason, message: str, state: State = State.NOT_APPLIED,
                 metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.state = state
        self.metadata = metadata or {}  # extra ErrorInfo metadata, e.g. which field was too long


def quote(value: str, limit: int = 40) -> str:
    """A client-sent value for an error message or a log line: at most a short prefix of it."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


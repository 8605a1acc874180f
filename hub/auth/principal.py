"""The authenticated caller of the current RPC, bound by the authentication interceptor."""

import contextvars
from dataclasses import dataclass

from hub import config

# Scopes an operator's key may hold; "admin" is the administrator's alone.
OPERATOR_SCOPES = ("game:read", "game:play", "wallet:read", "wallet:write", "player:read", "player:write",
                   "report:read")
ADMIN_SCOPE = "admin"
# A studio's key holds this scope alone: ProviderWalletService's, which no operator or administrator holds.
STUDIO_SCOPE = "studio:wallet"
ENVIRONMENTS = config.ENVIRONMENTS


@dataclass(frozen=True)
class Principal:
    """operator_id is empty for the administrator, who reaches no operator's players or money, and for a
    studio (how == "studio"), which reaches only the game sessions of its own games (studio_id)."""

    operator_id: str
    key_id: str
    scopes: frozenset[str]
    environment: str
    how: str  # token | signature | admin | studio
    studio_id: str = ""

    @property
    def is_admin(self) -> bool:
        return self.how == "admin"


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def bind(principal: Principal) -> None:
    _current.set(principal)


def current_or_none() -> Principal | None:
    """The caller of this RPC, bound by the interceptor; None only outside an authenticated call."""
    return _current.get()

"""Which database errors mean "the database is unreachable" (every statement would fail alike): the engine
fails the whole batch at once and the edge answers UNAVAILABLE / HUB_UNAVAILABLE, never INTERNAL."""

import pymysql
import pytest
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

from hub.errors import Reason
from hub.ledger.db import is_transient, is_unreachable
from hub.servicers.calls import as_domain_error


def wrapped(cls: type, orig: Exception, invalidated: bool = False) -> Exception:
    return cls("SELECT 1", None, orig, connection_invalidated=invalidated)  # type: ignore[no-any-return]


@pytest.mark.parametrize("exc, unreachable", [
    # pymysql on a socket the server closed (MariaDB stopped): not an OperationalError, but a disconnect.
    (wrapped(InterfaceError, pymysql.err.InterfaceError(0, ""), invalidated=True), True),
    (wrapped(OperationalError, pymysql.err.OperationalError(2003, "Can't connect")), True),
    (wrapped(OperationalError, pymysql.err.OperationalError(2013, "Lost connection"), invalidated=True), True),
    (wrapped(OperationalError, pymysql.err.OperationalError(1213, "Deadlock found")), False),  # retried instead
    (wrapped(ProgrammingError, pymysql.err.ProgrammingError(1064, "syntax")), False),  # a bug, not an outage
])
def test_unreachable_is_a_disconnect_or_an_operational_error_no_retry_cures(exc: Exception, unreachable: bool) -> None:
    assert is_unreachable(exc) is unreachable
    err = as_domain_error(exc)
    if unreachable:
        assert err is not None and err.reason == Reason.HUB_UNAVAILABLE
    if isinstance(exc, ProgrammingError):
        assert err is None  # answered INTERNAL and logged: a hub bug


def test_a_deadlock_is_transient() -> None:
    assert is_transient(wrapped(OperationalError, pymysql.err.OperationalError(1213, "Deadlock found")))  # type: ignore[arg-type]

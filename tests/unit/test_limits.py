"""The windows and the cooling-off rule of responsible-gaming limits (hub.ledger.limits), in UTC."""

from datetime import datetime, timedelta

import pytest

from hub.ledger.limits import DAY, MONTH, WEEK, effective, exclusion_active, window_start


@pytest.mark.parametrize(("now", "period", "start"), [
    (datetime(2026, 12, 1, 23, 59, 59), DAY, datetime(2026, 12, 1)),
    (datetime(2026, 12, 2, 0, 0), DAY, datetime(2026, 12, 2)),
    (datetime(2026, 12, 6, 23, 0), WEEK, datetime(2026, 11, 30)),  # a Sunday: the week began on Monday
    (datetime(2026, 11, 30, 0, 0), WEEK, datetime(2026, 11, 30)),  # a Monday at midnight: a new week
    (datetime(2026, 3, 1, 0, 0, 1), WEEK, datetime(2026, 2, 23)),  # across a month's end
    (datetime(2026, 12, 31, 23, 59), MONTH, datetime(2026, 12, 1)),
    (datetime(2027, 1, 1, 0, 0), MONTH, datetime(2027, 1, 1)),
])
def test_windows_are_utc_calendar_periods(now: datetime, period: str, start: datetime) -> None:
    assert window_start(period, now) == start


def test_a_pending_raise_applies_when_its_cooling_off_ends_and_not_before() -> None:
    now = datetime(2026, 12, 1, 12)
    row = {"amount": 500, "pending_amount": 2_000, "pending_from": now + timedelta(days=1)}
    assert effective(row, now) == 500
    assert effective(row, now + timedelta(days=1) - timedelta(microseconds=1)) == 500
    assert effective(row, now + timedelta(days=1)) == 2_000
    assert effective({"amount": 500, "pending_amount": None, "pending_from": None}, now) == 500


def test_a_self_exclusion_is_in_force_from_its_start_until_its_end_or_forever() -> None:
    start = datetime(2026, 12, 1)
    timed = {"started_at": start, "ends_at": start + timedelta(days=30)}
    assert not exclusion_active(None, start)
    assert exclusion_active(timed, start) and exclusion_active(timed, start + timedelta(days=30, microseconds=-1))
    assert not exclusion_active(timed, start + timedelta(days=30))
    assert exclusion_active({"started_at": start, "ends_at": None}, start + timedelta(days=36_500))

"""UTC time as the hub keeps it: naive datetimes in UTC, as the database stores them.

Every hub module reads the time through utcnow(). Tests move it with travel() instead of sleeping (a
cooling-off period is a day long); production never calls travel().
"""

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None) + _offset


def travel(delta: timedelta) -> None:
    """Move the hub's clock by delta (tests only; reset with travel(-total) or reset())."""
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta(0)

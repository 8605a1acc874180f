"""UTC time as the hub keeps it: naive datetimes in UTC, as the database stores them."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)

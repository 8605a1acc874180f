"""structlog set-up: JSON lines to stdout (console renderer on request), context bound per call."""

import json
import logging
import pathlib
import sys
import time

import structlog


def configure(fmt: str = "json", level: int = logging.INFO, static: dict[str, object] | None = None) -> None:
    """static: fields every line carries, e.g. a worker's index and pid under `hub serve --workers N`."""
    fields = dict(static or {})

    def add_static(_logger: object, _method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    renderer = (structlog.dev.ConsoleRenderer() if fmt == "console"
                else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *([add_static] if fields else []),
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # One write() per line (print() writes the newline separately when stdout is unbuffered, as with
        # PYTHONUNBUFFERED): workers sharing stdout then never splice each other's lines.
        logger_factory=structlog.WriteLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def error_lines(path: pathlib.Path) -> list[str]:
    """The lines of a JSON log file at level error or critical (lines that are not JSON are skipped)."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in ("error", "critical"):
            found.append(line)
    return found


class ThrottledCount:
    """Refusals counted, and logged as a count at most every `every_s` seconds: a flood must not flood the
    logs. One event loop: a plain counter."""

    def __init__(self, logger: structlog.typing.FilteringBoundLogger, every_s: float = 1.0):
        self._log = logger
        self._every_s = every_s
        self._count = 0
        self._logged_at = 0.0

    def add(self, event: str, **fields: object) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._logged_at >= self._every_s:
            self._log.warning(event, refused=self._count, **fields)
            self._count, self._logged_at = 0, now

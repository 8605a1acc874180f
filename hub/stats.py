"""Process-wide counters for the benchmark: SQL statements and commits the hub sends, and the settlement
engine's batches.

Off unless CASINOHUB_STATS_FILE is set when the hub starts (`enable_from_env`); then every hub process
writes its counts as JSON to `<that path>.<pid>` every WRITE_EVERY_S and at exit, so a benchmark outside
the hub can read what each worker did (SQLite's statements cannot be counted from outside the process).
Batches and commands are read from the engine's own counters (anything with `batches` and `commands`).
"""

import atexit
import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from typing import Protocol

from sqlalchemy import Engine, event

ENV = "CASINOHUB_STATS_FILE"
WRITE_EVERY_S = 0.5


@dataclass
class Counts:
    statements: int = 0  # cursor executions (SQLAlchemy before_cursor_execute)
    commits: int = 0  # transactions committed (SQLAlchemy commit event)
    batches: int = 0  # settlement engine batches written
    commands: int = 0  # commands those batches held


class BatchCounts(Protocol):
    """The settlement engine's own counters (hub.ledger.engine.Stats)."""

    batches: int
    commands: int


_lock = threading.Lock()  # database worker threads count concurrently
_counts = Counts()
_batches: list[BatchCounts] = []
_writer: threading.Thread | None = None


def count_batches_of(source: BatchCounts) -> None:
    """Report `source`'s batches and commands with this process's counts (each source once)."""
    if all(known is not source for known in _batches):
        _batches.append(source)


def snapshot() -> Counts:
    with _lock:
        counts = Counts(**asdict(_counts))
    counts.batches += sum(source.batches for source in _batches)
    counts.commands += sum(source.commands for source in _batches)
    return counts


def watch(*engines: Engine) -> None:
    """Count the statements and commits these engines send (each engine once, however often it is named)."""
    for engine in engines:
        if not event.contains(engine, "before_cursor_execute", _statement):
            event.listen(engine, "before_cursor_execute", _statement)
            event.listen(engine, "commit", _commit)


def enable_from_env(*engines: Engine, batches: BatchCounts | None = None) -> None:
    """If CASINOHUB_STATS_FILE is set: watch the engines, count the batches, and write this process's counts
    to its file."""
    path = os.environ.get(ENV)
    if not path:
        return
    watch(*engines)
    if batches is not None:
        count_batches_of(batches)
    global _writer
    if _writer is None:
        target = f"{path}.{os.getpid()}"
        _writer = threading.Thread(target=_write_periodically, args=(target,), name="stats", daemon=True)
        _writer.start()
        atexit.register(write, target)


def write(target: str) -> None:
    """This process's counts as JSON, replaced whole so a reader never sees half a file. A file that
    cannot be written (its folder removed) is skipped: counting must never disturb the hub."""
    temporary = f"{target}.tmp"
    try:
        with open(temporary, "w") as out:
            json.dump({"pid": os.getpid(), **asdict(snapshot())}, out)
        os.replace(temporary, target)
    except OSError:
        pass


def _write_periodically(target: str) -> None:
    while True:
        write(target)
        time.sleep(WRITE_EVERY_S)


def _statement(*_: object) -> None:
    with _lock:
        _counts.statements += 1


def _commit(*_: object) -> None:
    with _lock:
        _counts.commits += 1

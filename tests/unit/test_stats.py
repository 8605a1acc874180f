"""hub.stats: the benchmark's process-wide counters (statements, commits, engine batches) and their file."""

import json

from sqlalchemy import create_engine, text

from hub import stats
from hub.ledger.engine import Stats


def test_statements_and_commits_of_watched_engines_are_counted_once_each() -> None:
    engine = create_engine("sqlite://")
    stats.watch(engine, engine)  # named twice, counted once
    before = stats.snapshot()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with engine.connect() as conn:
        conn.execute(text("SELECT x FROM t"))
        conn.rollback()
    after = stats.snapshot()
    assert (after.statements - before.statements, after.commits - before.commits) == (3, 1)


def test_batches_and_commands_are_read_from_the_engine_counters() -> None:
    engine_stats = Stats()
    stats.count_batches_of(engine_stats)
    stats.count_batches_of(engine_stats)  # once, however often it is named
    before = stats.snapshot()
    engine_stats.batches += 2
    engine_stats.commands += 6
    after = stats.snapshot()
    assert (after.batches - before.batches, after.commands - before.commands) == (2, 6)


def test_the_file_holds_this_process_counts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "hub.123"
    stats.write(str(target))
    written = json.loads(target.read_text())
    assert set(written) == {"pid", "statements", "commits", "batches", "commands"}
    stats.write(str(tmp_path / "gone" / "hub.123"))  # a folder that is not there: skipped, never raised


def test_nothing_is_watched_without_the_environment_variable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv(stats.ENV, raising=False)
    engine = create_engine("sqlite://")
    stats.enable_from_env(engine)
    before = stats.snapshot()
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
    assert stats.snapshot().statements == before.statements

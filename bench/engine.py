"""(c) The settlement engine alone, no gRPC: bets as commands straight into hub.ledger's engine, on the same
MariaDB as the raw baseline (bench.raw), at the same concurrency, so the ratio says what the engine's
batching buys over one transaction per bet.

Not built yet: the engine (hub/ledger/engine.py) is being written. Until it lands this scenario reports
nothing rather than a made-up number; its JSON figure is null.
"""

from bench.databases import MariaDB
from bench.report import Figures


def engine_alone(db: MariaDB, concurrency: int, seconds: float) -> Figures | None:
    """C callers submitting bet commands to the engine back to back for `seconds`; None until it exists.

    To fill in: build the engine on a migrated throwaway database (db.url), fund C players, then drive C
    sessions (bench.load.drive: a session's round() awaits one bet command) for `seconds`; count SQL with
    hub.stats.watch(*engines) and batches through hub.stats.count_batch, and return
    Figures.from_phase("engine", "mariadb", concurrency, phase, **report.per_round(counts, phase.done));
    check the ledger afterwards (a failed check must fail the run, as the hub scenario's does).
    """
    print(f"engine: not built yet (C={concurrency})")
    return None

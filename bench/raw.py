"""(b) The database's floor for a bet: raw pymysql on the hub's MariaDB, one transaction per bet, no hub.

Each of C threads owns a connection and a player row and places bets back to back: lock the row
(SELECT ... FOR UPDATE), update its balance, insert an entry row, commit. READ COMMITTED, as the hub.
C is capped below the server's max_connections (the table names the connections used).
"""

import threading
import time
import uuid

from bench.databases import MariaDB
from bench.load import Phase

BET = 100
FUNDING = 10**12
CONNECTION_MARGIN = 10  # left to other clients (the bench's own, a console)


def setup(db: MariaDB, players: int) -> None:
    conn = db.connect(db.database)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE raw_accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB")
            cur.execute("CREATE TABLE raw_entries (id BIGINT AUTO_INCREMENT PRIMARY KEY, account_id INT NOT NULL, "
                        "amount BIGINT NOT NULL, balance_after BIGINT NOT NULL, "
                        "idempotency_key VARCHAR(64) NOT NULL, UNIQUE KEY (idempotency_key)) ENGINE=InnoDB")
            cur.executemany("INSERT INTO raw_accounts (id, balance) VALUES (%s, %s)",
                            [(i, FUNDING) for i in range(players)])
        conn.commit()
    finally:
        conn.close()


def max_connections(db: MariaDB) -> int:
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@max_connections")
            row = cur.fetchone()
            assert row is not None
            return int(row[0])
    finally:
        conn.close()


def run(db: MariaDB, connections: int, seconds: float) -> Phase:
    """`connections` threads, each betting on its own row until `seconds` pass."""
    phase = Phase()
    lock = threading.Lock()
    deadline = float("inf")  # set once every connection is open; threads read it late
    ready = threading.Barrier(connections + 1)

    def bettor(account: int) -> None:
        latencies: list[float] = []
        conn = None
        try:
            conn = db.connect(db.database, autocommit=False,
                              init_command="SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            ready.wait()
            with conn.cursor() as cur:
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    cur.execute("SELECT balance FROM raw_accounts WHERE id = %s FOR UPDATE", (account,))
                    row = cur.fetchone()
                    assert row is not None
                    balance = int(row[0]) - BET
                    cur.execute("UPDATE raw_accounts SET balance = %s WHERE id = %s", (balance, account))
                    cur.execute("INSERT INTO raw_entries (account_id, amount, balance_after, idempotency_key) "
                                "VALUES (%s, %s, %s, %s)", (account, -BET, balance, uuid.uuid4().hex))
                    conn.commit()
                    latencies.append(time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - counted, as the load client counts a lost stream
            ready.abort()  # a thread that never got going must not leave the others waiting
            with lock:
                phase.errors[type(exc).__name__] += 1
                phase.lost.append(account)
        finally:
            if conn is not None:
                conn.close()
            with lock:
                phase.latencies.extend(latencies)
                phase.done += len(latencies)

    threads = [threading.Thread(target=bettor, args=(i,), name=f"raw-{i}") for i in range(connections)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()  # every connection open before the clock starts
    except threading.BrokenBarrierError:
        pass  # a connection failed: its thread counted the error
    started = time.perf_counter()
    deadline = started + seconds
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started
    return phase


def check(db: MariaDB, players: int, bets: int) -> list[str]:
    """Every committed bet is one entry and one debit: nothing lost, nothing doubled."""
    conn = db.connect(db.database)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*), COALESCE(SUM(amount), 0) FROM raw_entries")
            entries, amount = cur.fetchone() or (0, 0)
            cur.execute("SELECT SUM(balance) FROM raw_accounts")
            total = (cur.fetchone() or (0,))[0]
    finally:
        conn.close()
    expected_total = players * FUNDING - bets * BET
    if (int(entries), int(amount), int(total)) == (bets, -bets * BET, expected_total):
        return []
    return [f"raw baseline: {entries} entries summing to {amount}, balances {total}; expected {bets} bets, "
            f"balances {expected_total}"]

"""Three `hub serve` processes on one MariaDB database hammer the same wallets: exactly once, across
processes.

Three players, one operator, one studio that pays real wins and refuses a fifth of the spins (those rounds
are rolled back). Every process runs bets and deposits/withdrawals for every player at once, and the same
idempotency key is sent to all three processes at the same instant (deposits and bets). Every answer a
client saw is recorded; afterwards the ledger must hold exactly the acknowledged effects, once each.
"""

import asyncio
import random
from collections import Counter

import grpc
import pytest

from casinohub.v1 import common_pb2, wallet_service_pb2 as wpb
from tests.e2e.play_client import PlayStream, launch, without_seqs
from tests.e2e.processes import (
    GAME,
    Acks,
    HubProcess,
    free_port,
    ledger_check_cli,
    new_operator_id,
    play_bet,
    read_ledger,
    record_bet,
    studio_server,
    write_config,
)
from tests.errors import reason_of
from tests.support import Client

pytestmark = pytest.mark.mariadb

SECRET = "multi-process-secret"
HUBS = 3
PLAYERS = 3
FUNDING = 200_000
BETS_PER_WORKER = 10  # per (player, hub)
CASHIER_PER_WORKER = 6  # per (player, hub)
DUPLICATE_DEPOSITS = 12
DUPLICATE_WITHDRAWALS = 6
DUPLICATE_BETS = 12
READ_TIMEOUT = 60.0  # per event; generous for a loaded 2-core machine
IN_PROGRESS_RETRIES = 100


async def cashier(client: Client, acks: Acks, kind: str, player: str, amount: int, key: str,
                  ) -> wpb.DepositResponse | wpb.WithdrawResponse | tuple[grpc.StatusCode, str]:
    """One deposit or withdrawal; its answer, recorded if it applied."""
    request_type = wpb.DepositRequest if kind == "deposit" else wpb.WithdrawRequest
    call = client.wallet.Deposit if kind == "deposit" else client.wallet.Withdraw
    try:
        response = await call(request_type(
            player_id=player, amount=common_pb2.Money(currency="USD", amount_minor=amount), idempotency_key=key),
            metadata=client.metadata, timeout=READ_TIMEOUT)
    except grpc.aio.AioRpcError as err:
        code, reason = reason_of(err)
        acks.counts[f"{kind}_refused_{reason}"] += 1
        assert (code, reason) in {(grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS"),
                                  (grpc.StatusCode.ABORTED, "REQUEST_IN_PROGRESS")}, (code, reason, err.details())
        return code, reason
    acks.ack(response.transaction_id, player, amount if kind == "deposit" else -amount,
             kind if kind == "deposit" else "withdrawal", response.balance.amount_minor)
    return response


async def test_three_hub_processes_share_wallets_exactly_once(tmp_path, mariadb_url: str) -> None:  # type: ignore[no-untyped-def]
    operator_id = new_operator_id()
    rng = random.Random(operator_id)
    acks = Acks()
    hubs: list[HubProcess] = []
    streams: list[PlayStream] = []
    async with studio_server(SECRET) as (studio_url, studio):
        try:
            configs = []
            for i in range(HUBS):
                port = free_port()
                config = write_config(tmp_path / f"hub{i}.toml", port=port, database_url=mariadb_url,
                                      operator_id=operator_id, studio_url=studio_url, secret=SECRET)
                configs.append(config)
                hubs.append(await HubProcess.start(config, port, tmp_path / f"hub{i}.log"))
            for hub in hubs:
                await hub.wait_serving()
            clients = [hub.client(mariadb_url, operator_id) for hub in hubs]

            players, sessions = [], {}
            for p in range(PLAYERS):
                player, token = await clients[p % HUBS].new_player()
                funded = await cashier(clients[p % HUBS], acks, "deposit", player, FUNDING, f"fund-{player}")
                assert isinstance(funded, wpb.DepositResponse)
                sessions[player] = (await launch(clients[p % HUBS], token, GAME), token)
                players.append(player)

            async def opened(client: Client, player: str) -> PlayStream:
                stream = PlayStream(client)
                streams.append(stream)
                stream.open(*sessions[player])
                assert (await stream.next(timeout=READ_TIMEOUT)).WhichOneof("event") == "session_opened"
                return stream

            # One stream per (player, hub) for the bet workers, one more for the duplicate bets: every
            # stream of a player plays on the player's one game session, so a key replayed on another hub
            # is the same request.
            bet_streams = {(p, h): await opened(clients[h], p) for p in players for h in range(HUBS)}
            dup_streams = {(p, h): await opened(clients[h], p) for p in players for h in range(HUBS)}
            studio.faults.update({"error_rate": 0.2, "latency_ms": 20, "seed": 7})

            async def bet_worker(player: str, h: int) -> None:
                for i in range(BETS_PER_WORKER):
                    key, amount = f"bet-{player[:8]}-{h}-{i}", rng.choice([10, 50, 100, 500, 1000])
                    acks.counts["bets_sent"] += 1
                    events = await play_bet(bet_streams[player, h], key, amount, timeout=READ_TIMEOUT)
                    record_bet(acks, player, key, amount, events)

            async def cashier_worker(player: str, h: int) -> None:
                for i in range(CASHIER_PER_WORKER):
                    kind = rng.choice(["deposit", "withdrawal"])
                    acks.counts[f"{kind}s_sent"] += 1
                    await cashier(clients[h], acks, kind, player, rng.choice([100, 2_500, 10_000]),
                                  f"{kind}-{player[:8]}-{h}-{i}")

            async def settle_duplicate_cashier(kind: str, player: str, amount: int, key: str) -> None:
                """The same key to every hub at the same instant: one effect, the same answer everywhere."""
                answers = list(await asyncio.gather(
                    *(cashier(c, acks, kind, player, amount, key) for c in clients)))
                for i, answer in enumerate(answers):
                    for _ in range(IN_PROGRESS_RETRIES):
                        if not isinstance(answer, tuple) or answer[1] != "REQUEST_IN_PROGRESS":
                            break
                        acks.counts[f"duplicate_{kind}_in_progress"] += 1
                        await asyncio.sleep(0.1)
                        answer = await cashier(clients[i], acks, kind, player, amount, key)
                    answers[i] = answer
                assert all(not isinstance(a, tuple) for a in answers), answers
                assert len({a.SerializeToString(deterministic=True) for a in answers}) == 1, answers
                acks.counts[f"duplicate_{kind}s"] += 1

            async def duplicate_bet(player: str, key: str, amount: int) -> None:
                answers = list(await asyncio.gather(
                    *(play_bet(dup_streams[player, h], key, amount, timeout=READ_TIMEOUT) for h in range(HUBS))))
                for h, events in enumerate(answers):
                    for _ in range(IN_PROGRESS_RETRIES):
                        # Retried as a client would: in play elsewhere, or refused with nothing taken by a hub
                        # whose circuit to the studio is open (the retry gets the round another hub played).
                        if record_bet(acks, player, key, amount, events) not in ("REQUEST_IN_PROGRESS",
                                                                                 "PROVIDER_UNAVAILABLE"):
                            break
                        acks.counts["duplicate_bet_in_progress"] += 1
                        await asyncio.sleep(0.1)
                        events = await play_bet(dup_streams[player, h], key, amount, timeout=READ_TIMEOUT)
                    answers[h] = events
                # Every hub answered with the events of the one round: the hub that played it with the
                # originals, the others with copies that name the originals' seqs.
                payloads = {tuple(without_seqs(e) for e in events) for events in answers}
                assert len(payloads) == 1, [[e.WhichOneof("event") for e in a] for a in answers]
                assert answers[0][0].WhichOneof("event") == "round_opened", answers[0]
                originals = [a for a in answers if not any(e.replay_of_seq for e in a)]
                assert len(originals) == 1, [[(e.seq, e.replay_of_seq) for e in a] for a in answers]
                for events in answers:
                    assert [e.replay_of_seq or e.seq for e in events] == [e.seq for e in originals[0]]
                acks.counts["duplicate_bets"] += 1

            async def duplicates() -> None:
                jobs = ([("deposit", i) for i in range(DUPLICATE_DEPOSITS)]
                        + [("withdrawal", i) for i in range(DUPLICATE_WITHDRAWALS)]
                        + [("bet", i) for i in range(DUPLICATE_BETS)])
                rng.shuffle(jobs)
                for kind, i in jobs:
                    player = rng.choice(players)
                    if kind == "bet":
                        await duplicate_bet(player, f"dup-bet-{i}", rng.choice([10, 100, 1000]))
                    else:
                        amount = rng.choice([100, 5_000])
                        await settle_duplicate_cashier(kind, player, amount, f"dup-{kind}-{i}")

            load_done = asyncio.Event()

            async def audit_under_load() -> None:
                """`hub ledger check` while the three hubs write: its snapshot must never see half a transaction."""
                while not load_done.is_set() and acks.counts["audits_under_load"] < 4:
                    code, output = await ledger_check_cli(configs[0], operator_id)
                    assert code == 0, output
                    acks.counts["audits_under_load"] += 1

            async def load() -> None:
                try:
                    await asyncio.gather(
                        *(bet_worker(p, h) for p in players for h in range(HUBS)),
                        *(cashier_worker(p, h) for p in players for h in range(HUBS)),
                        duplicates())
                finally:
                    load_done.set()

            await asyncio.wait_for(asyncio.gather(load(), audit_under_load()), 300)
            for stream in streams:
                await stream.close()
            streams.clear()

            # The ledger audit, as ops run it: a separate process, exit code 0.
            code, output = await ledger_check_cli(configs[0], operator_id)
            assert code == 0, output

            ledger = read_ledger(mariadb_url, operator_id)
            assert ledger.transaction_id_rows == len(ledger.transactions)
            # Every acknowledged transaction is in the ledger once, as acknowledged.
            for tx_id, (player, amount, kind) in acks.effects.items():
                row = ledger.transactions.get(tx_id)
                assert row is not None, f"acknowledged {kind} {tx_id} is not in the ledger"
                assert (row["player_id"], row["amount"], row["kind"]) == (player, amount, kind), row
                if tx_id in acks.balances:
                    assert row["balance_after"] == acks.balances[tx_id], (row, acks.balances[tx_id])
            # ... and nothing else is: the only unacknowledged-by-id rows are the refunds clients were told of.
            refund_rows = {tx: r for tx, r in ledger.transactions.items() if tx not in acks.effects}
            assert sorted(ledger.bet_key(r) for r in refund_rows.values()) == sorted(acks.refunds)
            for row in refund_rows.values():
                player, refund = acks.refunds[ledger.bet_key(row)]
                assert (row["kind"], row["player_id"], row["amount"]) == ("rollback", player, refund), row
            # Every round is closed, as its player was told.
            assert {r: (row["status"], row["win_amount"]) for r, row in ledger.rounds.items()} == {
                r: ("SETTLED" if outcome == "settled" else "ROLLED_BACK", win)
                for r, (outcome, win) in acks.rounds.items()}
            # Balances: funding plus every acknowledged effect, seen the same through every hub.
            for player in players:
                expected = acks.expected_balance(player)
                assert ledger.player_balance[player] == expected
                assert [await c.balance(player) for c in clients] == [expected] * HUBS
            for hub in hubs:
                assert hub.log_errors() == [], hub.log_errors()[:5]
        finally:
            for stream in streams:
                await stream.close()
            for hub in hubs:
                await hub.close()
        retries = sum(hub.log_path.read_text().count("db.retry_after_conflict") for hub in hubs)
    kinds = Counter(kind for _, _, kind in acks.effects.values())
    print(f"\nmulti-process: {dict(kinds)}, refunds {len(acks.refunds)}, rounds {len(acks.rounds)}, "
          f"key races retried in the hubs {retries}, counts {dict(acks.counts)}")


async def test_three_hub_processes_start_together_on_an_empty_database(tmp_path, empty_mariadb_url: str) -> None:  # type: ignore[no-untyped-def]
    operator_id = new_operator_id()
    hubs: list[HubProcess] = []
    async with studio_server(SECRET) as (studio_url, _):
        try:
            for i in range(HUBS):
                port = free_port()
                config = write_config(tmp_path / f"hub{i}.toml", port=port, database_url=empty_mariadb_url,
                                      operator_id=operator_id, studio_url=studio_url, secret=SECRET)
                hubs.append(await HubProcess.start(config, port, tmp_path / f"hub{i}.log"))
            for hub in hubs:
                await hub.wait_serving()
        finally:
            for hub in hubs:
                await hub.close()

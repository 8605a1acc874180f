"""kill -9 a `hub serve` at full load mid-settlement, restart it on the same database: nothing half-applied.

32 Play streams bet back to back, four per player on four game sessions (the studio answers in milliseconds
and refuses a tenth of the spins, so rollbacks are in flight too), while three clients deposit to one more
player; the hub is SIGKILLed once the load is up and rounds are between their debit and their settlement.
Everything a client saw acknowledged must be in the ledger exactly once, every round seen settled settled
with the balance its Settled event reported; what was sent but not acknowledged is either wholly there or
wholly absent, and a retry with the same key after the restart takes effect at most once. Rounds the crash
left OPEN keep their bet debited and have no win (the reconciler that settles them is separate work); they
are counted, not settled, here.
"""

import asyncio
import random
from collections import Counter

import grpc

from casinohub.v1 import common_pb2, game_service_pb2 as gpb, wallet_service_pb2 as wpb
from tests.e2e.play_client import PlayStream
from tests.e2e.processes import (
    Acks,
    Bettor,
    HubProcess,
    check_retried_bet,
    free_port,
    ledger_check_cli,
    new_bettors,
    new_operator_id,
    play_bet,
    read_ledger,
    settled_balances_agree,
    studio_server,
    write_config,
)

SECRET = "crash-secret"
PLAYERS, STREAMS_PER_PLAYER = 8, 4  # 32 streams betting back to back
DEPOSITORS = 3  # clients depositing to one more player meanwhile
FUNDING = 1_000_000
READ_TIMEOUT = 60.0
LOAD_S = 2.0  # full load at least this long before the kill
SETTLED_BEFORE_KILL = 2 * PLAYERS * STREAMS_PER_PLAYER


async def test_sigkill_at_full_load_leaves_nothing_half_applied(tmp_path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    operator_id = new_operator_id()
    rng = random.Random(operator_id)
    acks, counts = Acks(), Counter()
    sent_deposits: dict[str, tuple[str, int]] = {}  # key -> (player, amount)
    acked_deposits: dict[str, str] = {}  # key -> transaction id
    streams: list[PlayStream] = []
    bettors: list[Bettor] = []
    hubs: list[HubProcess] = []
    async with studio_server(SECRET) as (studio_url, studio):
        try:
            port = free_port()
            config = write_config(tmp_path / "hub.toml", port=port, database_url=database_url,
                                  operator_id=operator_id, studio_url=studio_url, secret=SECRET)
            hub = await HubProcess.start(config, port, tmp_path / "hub-1.log")
            hubs.append(hub)
            await hub.wait_serving()
            client = hub.client(database_url, operator_id)

            cashier, _token = await client.new_player()
            response = await client.wallet.Deposit(wpb.DepositRequest(
                player_id=cashier, amount=common_pb2.Money(currency="USD", amount_minor=FUNDING),
                idempotency_key=f"fund-{cashier}"), metadata=client.metadata, timeout=READ_TIMEOUT)
            acks.ack(response.transaction_id, cashier, FUNDING, "deposit", response.balance.amount_minor)
            bettors = await new_bettors(client, PLAYERS, "crash-bet", acks, streams_per_player=STREAMS_PER_PLAYER,
                                        funding=FUNDING, read_timeout=READ_TIMEOUT)
            # Fast spins keep the hub busy; a few refused spins put rollbacks in flight too.
            studio.faults.update({"latency_ms": 10, "error_rate": 0.1, "seed": 3})
            stop = asyncio.Event()  # never set: the bettors run until the hub dies under them

            async def deposit_worker(n: int, player: str) -> None:
                for i in range(10_000):
                    key, amount = f"crash-dep-{n}-{i}", rng.choice([100, 2_500])
                    sent_deposits[key] = (player, amount)
                    try:
                        response = await client.wallet.Deposit(wpb.DepositRequest(
                            player_id=player, amount=common_pb2.Money(currency="USD", amount_minor=amount),
                            idempotency_key=key), metadata=client.metadata, timeout=READ_TIMEOUT)
                    except grpc.aio.AioRpcError:
                        return
                    acks.ack(response.transaction_id, player, amount, "deposit", response.balance.amount_minor)
                    acked_deposits[key] = response.transaction_id

            workers = [asyncio.create_task(b.run(stop)) for b in bettors]
            workers += [asyncio.create_task(deposit_worker(n, cashier)) for n in range(DEPOSITORS)]
            # Kill once the load is up and some round is between its debit and its settlement.
            loop = asyncio.get_running_loop()
            load_from = loop.time()
            deadline = load_from + 60
            while loop.time() < deadline:
                settled = sum(b.outcomes["settled"] for b in bettors)
                debited_not_settled = [b for b in bettors if b.sent and [
                    e.WhichOneof("event") for e in b.events[list(b.sent)[-1]]] == ["round_opened", "bet_accepted"]]
                if loop.time() - load_from >= LOAD_S and settled >= SETTLED_BEFORE_KILL and debited_not_settled:
                    break
                await asyncio.sleep(0.01 + rng.random() * 0.02)
            load_s = loop.time() - load_from
            await hub.kill()
            done, pending = await asyncio.wait(workers, timeout=READ_TIMEOUT + 10)
            assert not pending, "clients still waiting on a dead hub"
            for task in done:
                task.result()  # an assertion in a worker fails the test
            for bettor in bettors:
                assert len(bettor.cut) == 1 and bettor.stream is None, (bettor.name, bettor.cut, bettor.failures)
            sent_bets = {key: (b.player, amount) for b in bettors for key, amount in b.sent.items()}
            in_flight = {key: b for b in bettors for key in b.cut}

            crashed = read_ledger(database_url, operator_id)  # the database as the crash left it
            # Restart on the same database (a new port: the old one may linger in TIME_WAIT).
            port = free_port()
            config = write_config(tmp_path / "hub.toml", port=port, database_url=database_url,
                                  operator_id=operator_id, studio_url=studio_url, secret=SECRET)
            studio.faults.update({"latency_ms": 0, "error_rate": 0.0})
            hub = await HubProcess.start(config, port, tmp_path / "hub-2.log")
            hubs.append(hub)
            await hub.wait_serving()
            client = hub.client(database_url, operator_id)

            code, output = await ledger_check_cli(config, operator_id)
            assert code == 0, output
            ledger = read_ledger(database_url, operator_id)
            assert ledger.transaction_id_rows == len(ledger.transactions)
            # Restarting only adds (a reconciler may close crashed rounds); it never changes a row.
            assert {tx: ledger.transactions[tx] for tx in crashed.transactions} == crashed.transactions

            # What clients saw: complete bets are booked already; the ones the crash cut short are booked now.
            for bettor in bettors:
                counts.update(f"bet_cut_{outcome}" for outcome in bettor.book_cut().elements())

            # 1. Every acknowledged transaction is in the ledger exactly once, as acknowledged.
            for tx_id, (player, amount, kind) in acks.effects.items():
                row = crashed.transactions.get(tx_id)
                assert row is not None, f"acknowledged {kind} {tx_id} lost in the crash"
                assert (row["player_id"], row["amount"], row["kind"]) == (player, amount, kind), row
                if tx_id in acks.balances:
                    assert row["balance_after"] == acks.balances[tx_id], row
            for key in acks.refunds:
                assert [r["kind"] for r in crashed.transactions.values()
                        if r["kind"] == "rollback" and crashed.bet_key(r) == key] == ["rollback"]

            # 2. Nothing in the ledger that no client asked for, and no effect twice.
            for row in crashed.transactions.values():
                key = crashed.bet_key(row)
                if row["kind"] == "deposit":
                    assert key in sent_deposits or key.startswith("fund-"), f"a deposit nobody sent: {row}"
                    if key in sent_deposits:
                        assert (row["player_id"], row["amount"]) == sent_deposits[key], row
                else:
                    assert key in sent_bets, f"a {row['kind']} for a bet nobody sent: {row}"
                    player, amount = sent_bets[key]
                    assert row["player_id"] == player
                    if row["kind"] != "win":
                        assert row["amount"] == (-amount if row["kind"] == "bet" else amount), row
            assert all(len(rows) == 1 for rows in crashed.by_key.values())

            # 3. Rounds as the crash left them: closed ones whole; interrupted ones OPEN with the bet debited and
            # nothing else. After the restart, each is still that, or closed whole.
            open_rounds = 0
            for state in (crashed, ledger):
                for round_id, r in state.rounds.items():
                    bet = next(b for b in state.bets.values() if b["round_id"] == round_id)
                    assert bet["transaction_id"] in state.transactions and r["bet_amount"] == bet["amount"]
                    kinds = state.round_kinds(round_id)
                    if r["status"] == "OPEN":
                        open_rounds += state is crashed
                        assert (bet["status"], r["win_amount"], kinds) == ("ACTIVE", 0, ["bet"]), (r, bet, kinds)
                    elif r["status"] == "SETTLED":
                        assert bet["status"] == "ACTIVE"
                        assert kinds == (["bet", "win"] if r["win_amount"] else ["bet"]), (r, kinds)
                    else:
                        assert (r["status"], bet["status"], kinds) == ("ROLLED_BACK", "ROLLED_BACK",
                                                                       ["bet", "rollback"]), (r, bet, kinds)
            for round_id, (outcome, win) in acks.rounds.items():
                assert (crashed.rounds[round_id]["status"], crashed.rounds[round_id]["win_amount"]) == (
                    "SETTLED" if outcome == "settled" else "ROLLED_BACK", win)
            balances_checked = sum(settled_balances_agree(b, crashed, only_stream=False) for b in bettors)
            assert balances_checked >= SETTLED_BEFORE_KILL

            # 4. Every persisted event agrees with the ledger: Resume from 0 replays each session's log.
            for bettor in bettors:
                game_session_id, token = bettor.game_session_id, bettor.token
                stream = PlayStream(client)
                streams.append(stream)
                stream.send(gpb.PlayRequest(resume=gpb.ResumeAction(
                    game_session_id=game_session_id, session_token=token, last_seen_seq=0)))
                last_seq = ledger.sessions[game_session_id]
                replayed = [await stream.next(timeout=READ_TIMEOUT) for _ in range(last_seq)]
                reopened = await stream.next(timeout=READ_TIMEOUT)
                assert reopened.session_opened.game_session_id == game_session_id
                accepted = {e.bet_accepted.transaction_id for e in replayed if e.HasField("bet_accepted")}
                debited = {r["transaction_id"] for r in ledger.transactions.values()
                           if r["kind"] == "bet" and r["idempotency_key"] in bettor.sent}
                assert accepted == debited, "a bet debit without its persisted event, or the reverse"
                assert [e.seq for e in replayed] == list(range(1, len(replayed) + 1))

            # 5. Deposits sent but not acknowledged: all there or not at all; a retry applies at most once.
            unacked = {k: v for k, v in sent_deposits.items() if k not in acked_deposits}
            for key, (player, amount) in unacked.items():
                present = ledger.by_key.get(key, [])
                counts["deposit_unacked_present" if present else "deposit_unacked_absent"] += 1
                response = await client.wallet.Deposit(wpb.DepositRequest(
                    player_id=player, amount=common_pb2.Money(currency="USD", amount_minor=amount),
                    idempotency_key=key), metadata=client.metadata, timeout=READ_TIMEOUT)
                if present:
                    assert response.transaction_id == present[0]["transaction_id"]
                    assert response.balance.amount_minor == present[0]["balance_after"]
                acks.ack(response.transaction_id, player, amount, "deposit")
                again = await client.wallet.Deposit(wpb.DepositRequest(
                    player_id=player, amount=common_pb2.Money(currency="USD", amount_minor=amount),
                    idempotency_key=key), metadata=client.metadata, timeout=READ_TIMEOUT)
                assert again == response

            # 6. Bets cut short, retried with their key: an OPEN round answers REQUEST_IN_PROGRESS (until the
            # reconciler settles it); a closed one replays its events; one never debited plays now, once.
            ledger = read_ledger(database_url, operator_id)
            for key, bettor in sorted(in_flight.items()):
                bettor.hub = client  # the restarted hub
                await bettor.open()
                assert bettor.stream is not None
                player, amount = sent_bets[key]
                events = await play_bet(bettor.stream, key, amount, timeout=READ_TIMEOUT)
                await bettor.close()
                outcome = check_retried_bet(acks, ledger, player, key, amount, events)
                counts[f"bet_retry_{outcome}"] += 1

            final = read_ledger(database_url, operator_id)
            for rows in final.by_key.values():
                assert len(rows) == 1, rows
            code, output = await ledger_check_cli(config, operator_id)
            assert code == 0, output
            # Balances: every acknowledged effect, plus the debits of the rounds still OPEN (acknowledged or
            # not, they are in the ledger and the reconciler will settle them).
            for player in {b.player for b in bettors} | {cashier}:
                unacknowledged = [r for r in final.transactions.values()
                                  if r["player_id"] == player and r["transaction_id"] not in acks.effects
                                  and not (r["kind"] == "rollback" and final.bet_key(r) in acks.refunds)]
                assert all(r["kind"] == "bet" and final.rounds[r["round_id"]]["status"] == "OPEN"
                           for r in unacknowledged), "an effect no client was told of, other than an open bet"
                expected = acks.expected_balance(player) + sum(r["amount"] for r in unacknowledged)
                assert final.player_balance[player] == expected
                assert await client.balance(player) == expected
            assert hub.log_errors() == [], hub.log_errors()[:5]
        finally:
            for stream in streams:
                await stream.close()
            for bettor in bettors:
                await bettor.close()
            for process in hubs:
                await process.close()
    print(f"\ncrash ({database_url.split(':')[0]}): killed after {load_s:.1f}s of load, bets sent {len(sent_bets)},"
          f" deposits sent {len(sent_deposits)} acked {len(acked_deposits)}, rounds {len(ledger.rounds)} of which"
          f" OPEN after the crash {open_rounds}, {balances_checked} settled balances checked, {dict(counts)}")

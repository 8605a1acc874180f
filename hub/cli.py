"""`hub` console script: serve, dev (serve with the sandbox studios), migrate, ledger check and totals."""

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import structlog

from hub import config as hub_config
from hub.logs import configure
from hub.migrate import upgrade
from hub.workers import die_with_parent, listen_port, supervise, worker_argv

# Sandbox studios `hub dev` can start, by adapter kind: the module that runs the mock server.
MOCK_STUDIOS = {"reelhouse": "mock_providers.reelhouse", "tablehouse": "mock_providers.tablehouse"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub", description="casinohub: provider-aggregation hub")
    parser.add_argument("--config", help="TOML config file (default: $HUB_CONFIG); HUB_* env vars override it")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gRPC hub until SIGTERM")
    dev = commands.add_parser("dev", help="start the sandbox mock studios, then serve (the README's run command)")
    for command, default in ((serve, "1"), (dev, "one per CPU")):
        command.add_argument("--workers", type=int, metavar="N",
                             help=f"hub processes sharing the listen port (default: the workers key, else {default})")
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set by the supervising parent
    commands.add_parser("migrate", help="bring the database schema to the newest version")
    ledger = commands.add_parser("ledger", help="audit the ledger").add_subparsers(
        dest="ledger_command", required=True)
    check = ledger.add_parser("check", help="verify sums, balances and hash chains; exit 1 on any violation")
    check.add_argument("--operator", help="check only this operator (default: every operator)")
    check.add_argument("--json", action="store_true", help="print the reports as JSON")
    totals = ledger.add_parser("totals", help="what each kind of account holds per currency (the house as "
                                              "the sum of its shards); the same numbers as ReportService")
    totals.add_argument("--operator", help="only this operator (default: every operator with accounts)")
    totals.add_argument("--currency", help="only this currency (default: every currency)")
    totals.add_argument("--json", action="store_true", help="print the totals as JSON")
    reconcile = commands.add_parser(
        "reconcile", help="settle or refund rounds left open, against each provider's record; exit 1 if any "
                          "round needs a human")
    reconcile.add_argument("--operator", help="only this operator's rounds (default: every operator)")
    reconcile.add_argument("--older-than", type=float, metavar="SECONDS",
                           help="rounds open at least this long (default: reconcile_after_s)")
    args = parser.parse_args(argv)

    cfg = hub_config.load(args.config)
    worker_index = getattr(args, "worker_index", None)
    configure(cfg.log_format, static=None if worker_index is None else {"worker": worker_index, "pid": os.getpid()})
    if args.command == "migrate":
        upgrade(cfg.database_url)
        print(f"database at newest schema: {cfg.database_url.split('@')[-1]}")
        return 0
    if args.command == "ledger" and args.ledger_command == "totals":
        return ledger_totals(cfg, args.operator, args.currency or "", args.json)
    if args.command == "ledger":
        return ledger_check(cfg.database_url, args.operator, args.json)
    if args.command == "reconcile":
        if args.older_than is not None:
            cfg = dataclasses.replace(cfg, reconcile_after_s=args.older_than)
        return asyncio.run(reconcile_once(cfg, args.operator))
    workers = args.workers or cfg.workers or (cpu_count() if args.command == "dev" else 1)
    if workers < 1:
        parser.error("--workers must be at least 1")
    cfg = dataclasses.replace(cfg, workers=workers)
    if workers > 1 and worker_index is None and listen_port(cfg.listen) == 0:
        # Processes that bind port 0 separately get different ports: there is no one port to share.
        print(f"hub: --workers {workers} needs a fixed port to share; listen is {cfg.listen}", file=sys.stderr)
        return 2
    if args.command == "dev" and cfg.environment != "sandbox":
        print("hub: `hub dev` runs the sandbox (mock studios, test money); environment is "
              f"{cfg.environment!r}: use `hub serve`", file=sys.stderr)
        return 2
    if args.command == "dev":
        cfg = dev_credentials(cfg)
        with mock_studios(cfg):
            return run_hub(cfg, args.config, worker_index)
    return run_hub(cfg, args.config, worker_index)


def run_hub(cfg: hub_config.Config, config_path: str | None, worker_index: int | None) -> int:
    """One process serving, or (workers > 1) the parent that supervises `workers` serving processes."""
    if cfg.workers > 1 and worker_index is None:
        configure(cfg.log_format, static={"pid": os.getpid(), "role": "supervisor"})
        return supervise(lambda index: worker_argv(config_path, cfg.workers, index), cfg.workers,
                         cfg.shutdown_grace_s)
    from hub.server import serve  # imported late: `hub migrate` and the supervisor need no gRPC

    try:
        asyncio.run(serve(cfg))
    except hub_config.RefusedConfiguration as refused:  # logged where it was decided
        print(f"hub: {refused}", file=sys.stderr)
        return 2
    return 0


def dev_credentials(cfg: hub_config.Config) -> hub_config.Config:
    """`hub dev`: the sandbox operator (if missing) and a new API key for it, printed with how to call the
    hub. Without a configured admin_token, one for this run only (every worker inherits it)."""
    from hub.auth.admin import OperatorAdmin  # imported late, like serve
    from hub.ledger.db import Database
    from hub.operators import Operators
    from hub.page_tokens import load
    from hub.passwords import hashing as password_hashing

    upgrade(cfg.database_url)

    async def _key() -> tuple[str, str]:
        db = Database.from_url(cfg.database_url, workers=1)
        try:
            await Operators(db).ensure(cfg.sandbox_operator_id, "Sandbox operator")
            hashing = password_hashing(cfg.password_hash_time_cost, cfg.password_hash_memory_kib)
            new = await OperatorAdmin(db, await load(db), hashing).create_api_key(cfg.sandbox_operator_id, [])
        finally:
            db.close()
        return new.key.key_id, new.secret

    key_id, secret = asyncio.run(_key())
    if not cfg.admin_token:
        cfg = dataclasses.replace(cfg, admin_token=secrets.token_urlsafe(32))
        os.environ["HUB_ADMIN_TOKEN"] = cfg.admin_token
    address = cfg.listen
    # With TLS configured grpcurl needs the CA that issued the hub's certificate (README, Transport security).
    transport = "-cacert CA.pem" if cfg.tls_cert_file else "-plaintext"
    print(f"""sandbox operator {cfg.sandbox_operator_id!r}: a new API key (the secret is shown once; each run makes one)
  key id:  {key_id}
  secret:  {secret}
  get a token:  grpcurl {transport} -d '{{"key_id": "{key_id}", "secret": "{secret}"}}' {address} casinohub.v1.AuthService/IssueToken
  call with it: grpcurl {transport} -H "authorization: Bearer $TOKEN" {address} casinohub.v1.GameService/ListGames
administrator token for AdminService: {cfg.admin_token}""", file=sys.stderr, flush=True)
    return cfg


def cpu_count() -> int:
    """CPUs this process may run on (a container's cpuset, not the host's count)."""
    return len(os.sched_getaffinity(0))


async def reconcile_once(cfg: hub_config.Config, operator_id: str | None) -> int:
    from hub.bootstrap import bootstrap  # imported late, like serve

    hub = await bootstrap(cfg)
    try:
        report = await hub.reconciler.run_once(operator_id)
    finally:
        await hub.close()
    print(report.render())
    return 1 if report.flagged else 0


def ledger_check(url: str, operator_id: str | None, as_json: bool) -> int:
    from hub.ledger.check import check  # imported late: it pulls in gRPC, which `hub migrate` does not need

    reports = check(url, operator_id)
    ok = all(report.ok for report in reports)
    if as_json:
        print(json.dumps({"ok": ok, "operators": [report.as_dict() for report in reports]}, indent=2))
    else:
        print("\n".join([report.render() for report in reports]
                        + [f"ledger check: {'clean' if ok else 'VIOLATIONS FOUND'}"]))
    return 0 if ok else 1


TOTALS_COLUMNS = ("house", "house_shards", "player_cash", "player_hold", "player_bonus", "promotion",
                  "external", "other", "net")


def ledger_totals(cfg: hub_config.Config, operator_id: str | None, currency: str, as_json: bool) -> int:
    """Straight from the database through hub.reports, the code GetLedgerTotals runs: no server needed."""
    from hub.errors import DomainError  # imported late, like ledger check
    from hub.ledger.db import Database
    from hub.money import add_currency
    from hub.reports import Reports

    for code, exponent in cfg.currencies.items():
        add_currency(code, exponent)
    # Logs (a database retry, an unlisted account kind) to stderr: stdout is the report, parsed with --json.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

    async def _collect(reports: Reports) -> dict[str, list[dict[str, object]]]:
        operators = [operator_id] if operator_id else await reports.operators()
        return {op: [t.as_dict() for t in await reports.ledger_totals(op, currency)] for op in operators}

    db = Database.from_url(cfg.database_url, workers=1)
    try:
        by_operator = asyncio.run(_collect(Reports(db)))
    except DomainError as err:
        print(f"hub ledger totals: {err.message}", file=sys.stderr)
        return 2
    finally:
        db.close()
    if as_json:
        print(json.dumps({"operators": [{"operator_id": op, "totals": totals}
                                        for op, totals in by_operator.items()]}, indent=2))
        return 0
    header = ("operator", "currency", *TOTALS_COLUMNS)
    rows = [header] + [(op, str(t["currency"]), *(str(t[c]) for c in TOTALS_COLUMNS))
                       for op, totals in by_operator.items() for t in totals]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print("amounts in minor units; net is zero on an intact ledger")
    for row in rows:  # text left, numbers right
        print("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))))
    return 0


@contextlib.contextmanager
def mock_studios(cfg: hub_config.Config) -> Iterator[None]:
    """Start each configured provider's mock studio as its own process on the configured port."""
    processes = []
    try:
        for provider in cfg.providers:
            module = MOCK_STUDIOS.get(provider.adapter)
            if module is None:
                continue
            url = urlsplit(provider.url)
            process = subprocess.Popen(
                [sys.executable, "-m", module, "--host", url.hostname or "127.0.0.1", "--port", str(url.port),
                 "--secret", provider.secret], stdout=subprocess.PIPE, text=True,
                preexec_fn=die_with_parent(os.getpid()))  # gone with the hub, even after a kill -9
            processes.append(process)
            ready = process.stdout.readline() if process.stdout else ""
            if not ready.startswith("READY"):
                raise SystemExit(f"mock studio {provider.name} did not start (is port {url.port} free?)")
            print(f"mock studio {provider.name} listening on {provider.url}", file=sys.stderr)
        yield
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())

"""`hub` console script: serve, dev (serve with the sandbox studios), migrate, ledger check and totals, and
sign (a studio's or operator's request signature, for grpcurl)."""

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
MOCK_STUDIOS = {"reelhouse": "mock_providers.reelhouse", "tablehouse": "mock_providers.tablehouse",
                "livehouse": "mock_providers.livehouse", "instanthouse": "mock_providers.instanthouse"}
# Push-style studios call the hub's ProviderWalletService themselves: they are told where and with which key.
PUSH_STUDIOS = {"livehouse"}
# Studios that call the hub in their own wallet protocol: told the hub's inbound HTTP URL (hub/inbound.py).
INBOUND_STUDIOS = {"instanthouse"}
DEV_METRICS_LISTEN = "127.0.0.1:9464"  # `hub dev` serves /metrics here unless metrics_listen is set


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
    sign = commands.add_parser(
        "sign", help="print grpcurl -H flags that sign one unary call (grpcurl cannot sign by itself)")
    sign.add_argument("--key-id", required=True, help="the key id: sk_... (a studio's) or ck_... (an operator's)")
    sign.add_argument("--key-file", required=True, help="the key's Ed25519 private key, PKCS#8 PEM")
    sign.add_argument("method", help="the RPC, e.g. casinohub.provider.v1.ProviderWalletService/Bet")
    sign.add_argument("body", help="the request as grpcurl's -d JSON (sign exactly what you send)")
    args = parser.parse_args(argv)
    if args.command == "sign":
        print(" ".join(signature_flags(args.key_id, args.key_file, args.method, args.body)))
        return 0

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
        cfg = dataclasses.replace(cfg, metrics_listen=cfg.metrics_listen or DEV_METRICS_LISTEN)
        cfg, keys = dev_credentials(cfg)
        with mock_studios(cfg, keys):
            return run_hub(cfg, args.config, worker_index)
    return run_hub(cfg, args.config, worker_index)


def run_hub(cfg: hub_config.Config, config_path: str | None, worker_index: int | None) -> int:
    """One process serving, or (workers > 1) the parent that supervises `workers` serving processes."""
    if worker_index:  # the inbound HTTP server is worker 0's alone (hub/inbound.py says why)
        cfg = dataclasses.replace(cfg, inbound_listen="")
    if worker_index is not None:  # the parent serves /metrics, every worker's counts added up (hub/workers.py)
        cfg = dataclasses.replace(cfg, metrics_listen="")
    if cfg.workers > 1 and worker_index is None:
        configure(cfg.log_format, static={"pid": os.getpid(), "role": "supervisor"})
        return supervise(lambda index: worker_argv(config_path, cfg.workers, index), cfg.workers,
                         cfg.shutdown_grace_s, cfg.metrics_listen)
    from hub.server import serve  # imported late: `hub migrate` and the supervisor need no gRPC

    try:
        asyncio.run(serve(cfg))
    except hub_config.RefusedConfiguration as refused:  # logged where it was decided
        print(f"hub: {refused}", file=sys.stderr)
        return 2
    return 0


def dev_credentials(cfg: hub_config.Config) -> tuple[hub_config.Config, dict[str, tuple[str, str]]]:
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
    studios = studio_keys(cfg)
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
    for studio, (studio_key_id, path) in studios.items():
        print(f"studio {studio!r}: a new key for ProviderWalletService: key id {studio_key_id}, private key {path}"
              f" (sign a call: hub sign --key-id {studio_key_id} --key-file {path} METHOD JSON)",
              file=sys.stderr, flush=True)
    return cfg, studios


def studio_key_dir(database_url: str) -> str:
    """Beside an SQLite database (var/studio-keys for `make run`), else var/studio-keys."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return os.path.join(os.path.dirname(url.database) or ".", "studio-keys")
    return os.path.join("var", "studio-keys")


def studio_keys(cfg: hub_config.Config) -> dict[str, tuple[str, str]]:
    """`hub dev`: a new sandbox key for each configured studio to sign ProviderWalletService calls with;
    its private key written to <studio_key_dir>/<studio>.pem (owner-only). Returns studio -> (key id, path)."""
    from hub.auth.admin import OperatorAdmin
    from hub.ledger.db import Database
    from hub.page_tokens import load

    async def _create() -> dict[str, tuple[str, str]]:
        db = Database.from_url(cfg.database_url, workers=1)
        made = {}
        try:
            admin = OperatorAdmin(db, await load(db))
            for provider in cfg.providers:
                new = await admin.create_studio_key(provider.name, generate_signing_key=True)
                directory = studio_key_dir(cfg.database_url)
                os.makedirs(directory, exist_ok=True)
                path = os.path.join(directory, f"{provider.name}.pem")
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as pem:
                    pem.write(new.private_key_pem)
                made[provider.name] = (new.key.key_id, path)
        finally:
            db.close()
        return made

    return asyncio.run(_create())


def signature_flags(key_id: str, key_file: str, method: str, body: str) -> list[str]:
    """grpcurl flags (-H=name:value, no spaces, so a shell's $(...) splits them right) carrying the request
    signature of README "Authentication": over the bytes of body as the RPC's request message."""
    import base64
    import time
    import uuid

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from google.protobuf import descriptor_pool, json_format
    from google.protobuf.message_factory import GetMessageClass

    import casinohub.provider.v1.provider_wallet_service_pb2  # noqa: F401 - registers the services' types
    import hub.server  # noqa: F401 - every service the hub serves
    from hub.auth.credentials import SIGNATURE_HEADERS, body_digest, signed_text

    service, _, name = method.strip("/").partition("/")
    rpc = descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]
    request = json_format.Parse(body, GetMessageClass(rpc.input_type)())
    with open(key_file, "rb") as pem:
        private = load_pem_private_key(pem.read(), None)
    if not isinstance(private, Ed25519PrivateKey):
        raise SystemExit(f"{key_file} is not an Ed25519 private key")
    path, timestamp, nonce = f"/{service}/{name}", str(int(time.time())), uuid.uuid4().hex
    signature = private.sign(signed_text(path, timestamp, nonce, body_digest(request.SerializeToString())))
    values = (key_id, timestamp, nonce, base64.urlsafe_b64encode(signature).decode())
    return [f"-H={header}:{value}" for header, value in zip(SIGNATURE_HEADERS, values, strict=True)]


def hub_address(listen: str) -> str:
    """Where a process on this host reaches the hub: its listen address, a wildcard host made loopback."""
    host, _, port = listen.rpartition(":")
    return f"{'127.0.0.1' if host in ('', '0.0.0.0', '[::]', '::') else host}:{port}"


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
def mock_studios(cfg: hub_config.Config, keys: dict[str, tuple[str, str]]) -> Iterator[None]:
    """Start each configured provider's mock studio as its own process on the configured port; a push-style
    one with the hub's address and its studio key (keys: studio -> (key id, private key file))."""
    processes = []
    try:
        for provider in cfg.providers:
            module = MOCK_STUDIOS.get(provider.adapter)
            if module is None:
                continue
            url = urlsplit(provider.url)
            push = []
            if provider.adapter in PUSH_STUDIOS:
                key_id, key_file = keys[provider.name]
                push = ["--hub", hub_address(cfg.listen), "--key-id", key_id, "--key-file", key_file]
            if provider.adapter in INBOUND_STUDIOS:
                push = ["--wallet-url", f"http://{hub_address(cfg.inbound_listen)}/{provider.name}"]
            process = subprocess.Popen(
                [sys.executable, "-m", module, "--host", url.hostname or "127.0.0.1", "--port", str(url.port),
                 "--secret", provider.secret, *push], stdout=subprocess.PIPE, text=True,
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

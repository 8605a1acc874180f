"""Hub configuration: defaults, overridden by a TOML file, overridden by HUB_* environment variables."""

import os
import pathlib
import tomllib
from dataclasses import dataclass, field, fields, replace
from typing import Any

from adapters.base import ProviderConfig

ENVIRONMENTS = ("sandbox", "production")  # of a hub, an operator and an API key


class RefusedConfiguration(ValueError):
    """The hub will not start with this configuration; the message says why (`hub serve` exits 2)."""

DEFAULT_PROVIDERS = (
    # The sandbox studios `hub dev` starts next to the hub.
    {"name": "reelhouse", "adapter": "reelhouse", "url": "http://127.0.0.1:8701",
     "secret": "reelhouse-sandbox-secret", "timeout_s": 5.0},
    {"name": "tablehouse", "adapter": "tablehouse", "url": "grpc://127.0.0.1:8702",
     "secret": "tablehouse-sandbox-secret", "timeout_s": 5.0},
    {"name": "livehouse", "adapter": "livehouse", "url": "http://127.0.0.1:8703",
     "secret": "livehouse-sandbox-secret", "timeout_s": 5.0},
    {"name": "instanthouse", "adapter": "instanthouse", "url": "http://127.0.0.1:8704",
     "secret": "instanthouse-sandbox-secret", "timeout_s": 5.0},
)


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    adapter: str
    url: str
    secret: str
    timeout_s: float = 5.0
    # A studio for sandboxes only (a mock, a studio's demo server): a production hub refuses to start with it.
    # Adapters can also declare it for every studio they serve (adapters.registry.is_sandbox_only).
    sandbox_only: bool = False

    def adapter_config(self) -> ProviderConfig:
        return ProviderConfig(name=self.name, url=self.url, secret=self.secret, timeout_s=self.timeout_s)


@dataclass(frozen=True)
class CashierLimit:
    """One operator's cashier limits in one currency; 0 means no limit."""

    operator_id: str
    currency: str
    daily_deposit_minor: int = 0  # per player, per UTC day
    max_withdrawal_minor: int = 0  # per withdrawal request


@dataclass(frozen=True)
class Config:
    listen: str = "127.0.0.1:50051"
    # HTTP server for studios that call the hub in their own wallet protocol (hub/inbound.py), started only when
    # a configured adapter serves one; "" turns it off. With --workers N only worker 0 binds it.
    inbound_listen: str = "127.0.0.1:8711"
    # calls each studio may have in flight there at once; more get HTTP 503 with Retry-After (a flooding studio
    # must not take every database thread from the others' players)
    inbound_max_calls_in_flight: int = 64
    # Prometheus metrics (hub/metrics.py) at GET /metrics on this address; "" turns it off. `hub dev` (make run)
    # serves it on 127.0.0.1:9464 unless this is set. With --workers N the supervising parent serves every
    # worker's counts added up.
    metrics_listen: str = ""
    database_url: str = "sqlite:///var/casinohub.db"
    # sandbox: creates the sandbox operator, runs the mock studios, accepts sandbox keys only. production:
    # refuses mock (sandbox-only) studios at start-up, sandbox keys and the sandbox operator (hub/environments.py).
    # `mode`, its old name, is still read from files and HUB_MODE.
    environment: str = "sandbox"
    sandbox_operator_id: str = "sandbox"
    db_workers: int = 8
    # Hub processes sharing the listen port (SO_REUSEPORT); 0: one for `hub serve`, one per CPU for `hub dev`.
    workers: int = 0
    # Admission control (hub/servicers/admission.py): past either limit a call is refused at once with
    # RESOURCE_EXHAUSTED / OVERLOADED and a retry pushback of overload_pushback_ms (jittered up to 2x).
    max_calls_in_flight: int = 256  # unary calls at once: 32 per default db worker, beyond that only queueing
    max_play_streams: int = 2000  # open Play streams (long-lived; each holds a slot until it ends)
    overload_pushback_ms: int = 200
    # Per operator, the defaults of what AdminService.SetOperatorLimits sets (OperatorLimits in
    # hub/servicers/admission.py): calls a second (unary calls and Play stream opens; 0: no limit), with up to
    # rate_limit_burst saved up, and Play streams open at once (0: only max_play_streams, hub-wide). Totals of
    # all hub processes: with --workers N each process enforces 1/N of each (at least 1).
    rate_limit_per_s: float = 1000.0
    rate_limit_burst: int = 2000
    max_play_streams_per_operator: int = 0
    # Each process re-reads an operator's limits set through AdminService at most this often.
    operator_limits_ttl_s: float = 5.0
    # Per studio key, ProviderWalletService calls a second with up to studio_rate_limit_burst saved up (0: no
    # limit); split across --workers like the operators' figures. A studio calls for every operator's players.
    studio_rate_limit_per_s: float = 5000.0
    studio_rate_limit_burst: int = 10_000
    # AuthService.IssueToken has no operator until it has checked the secret (an argon2 hash): it is limited per
    # peer address and hub process instead, so guessing secrets or burning CPU on hashes stays slow.
    token_issue_per_s: float = 10.0
    token_issue_burst: int = 50
    # Transport (hub/transport.py, README "Transport security"). TLS from PEM files: cert and key turn it on,
    # a client CA also makes it mutual (every client must present a certificate that CA issued). All empty:
    # plaintext, `make run`'s default.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    max_message_bytes: int = 1_048_576  # a larger request is refused by grpc with RESOURCE_EXHAUSTED
    handshake_timeout_s: float = 10.0  # a connection must finish its TLS/HTTP2 handshake within this
    max_connection_idle_s: float = 300.0  # a connection without a call for this long is closed (0: never)
    max_connection_age_s: float = 0.0  # every connection is closed after this long (0: never) ...
    max_connection_age_grace_s: float = 300.0  # ... once its calls in flight end, or after this grace
    keepalive_time_s: float = 60.0  # the hub pings a connection quiet this long ...
    keepalive_timeout_s: float = 20.0  # ... and closes it if the ping is not answered within this
    house_shards: int = 8  # house and promotion accounts per operator and currency
    bonus_spending: str = "cash_first"  # cash_first | bonus_first: which balance a bet spends first
    # Authentication (hub/auth, README "Authentication"). admin_token: the administrator's bearer token for
    # AdminService ("" disables AdminService; set it in the file's [hub] table or HUB_ADMIN_TOKEN).
    admin_token: str = ""
    # HS256 key of the access tokens, at least 32 characters; "" uses a key the hub generates once and keeps in
    # its database (hub_keys), so every hub process on the database accepts every other's tokens.
    token_key: str = ""
    token_ttl_s: int = 900  # access tokens from AuthService.IssueToken live this long
    signature_window_s: int = 300  # a signed request's timestamp may be this far from the hub's clock
    # Player sessions (hub/players.py, README "Player sessions"): a session token lives session_ttl_s and is
    # renewed with the refresh token until the login's hard end, session_max_s after Login; a login unused
    # for session_idle_s ends. A player holds at most session_cap live logins (session_caps: per operator,
    # AdminService.SetOperatorLimits over both); a new Login past the cap ends the oldest.
    session_ttl_s: int = 900
    session_max_s: int = 86_400
    session_idle_s: int = 1_800
    session_cap: int = 5
    session_caps: dict[str, int] = field(default_factory=dict)
    # Raising a responsible-gaming limit takes effect this long after it is asked for (lowering: at once).
    limit_cooling_off_s: int = 86_400
    # How often an open Play stream of a player with a reality-check interval looks whether a check is due
    # (hub/reality.py): a check reaches an idle stream at most this late; a message on the stream looks at once.
    reality_check_poll_s: float = 5.0
    # argon2id cost of players' password and API-key secret hashes (hub/passwords.py). The defaults are the
    # RFC 9106 low-memory profile; lower them only where the hashes protect nothing (test suites).
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 65_536
    game_session_ttl_s: int = 14_400
    shutdown_grace_s: float = 10.0
    health_interval_s: float = 2.0
    # Each process re-reads an operator's catalog settings (AdminService) and re-checks each studio's
    # health at most this often: other processes see a settings change, and the catalog a studio's
    # failure or recovery, within this many seconds.
    catalog_settings_ttl_s: float = 5.0
    studio_health_ttl_s: float = 5.0
    reconcile_after_s: float = 300.0  # a round still OPEN this long after its bet is asked about
    reconcile_interval_s: float = 60.0  # how often the server looks (0 disables the periodic pass)
    # Calls to studios (hub/studio_guard.py): tries per call for errors a studio marks retryable, the first
    # backoff (full jitter, doubling); failures in a row that open a studio's circuit, and for how long.
    studio_attempts: int = 3
    studio_backoff_s: float = 0.05
    breaker_failures: int = 5
    breaker_open_s: float = 10.0
    log_format: str = "json"  # json | console
    # Extra currencies (crypto) and their minor-unit exponents, e.g. {"DOGE": 8}; ISO ones are built in.
    currencies: dict[str, int] = field(default_factory=dict)
    # The most one transaction may move, per currency, e.g. {"USD": 1_000_000_000}; by default a billion
    # major units (at most int64-max / 1e6 minor units).
    max_transaction_minor: dict[str, int] = field(default_factory=dict)
    cashier_limits: tuple[CashierLimit, ...] = ()
    providers: tuple[ProviderSettings, ...] = field(
        default_factory=lambda: tuple(ProviderSettings(**p) for p in DEFAULT_PROVIDERS))  # type: ignore[arg-type]  # plain-dict defaults

    @property
    def mode(self) -> str:
        """environment's old name, for code written before it."""
        return self.environment


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Config from an optional TOML file (`[hub]` keys, `[currencies]` and `[max_transaction_minor]` tables,
    `[session_caps]`, `[[cashier_limits]]` and `[[providers]]` tables), then HUB_<KEY> environment variables for the scalar keys."""
    env = dict(os.environ if env is None else env)
    path = path or env.get("HUB_CONFIG")
    values: dict[str, Any] = {}
    if path:
        document = tomllib.loads(pathlib.Path(path).read_text())
        values.update(document.get("hub", {}))
        if "currencies" in document:
            values["currencies"] = {code: int(exp) for code, exp in document["currencies"].items()}
        if "max_transaction_minor" in document:
            values["max_transaction_minor"] = {code: int(v) for code, v in document["max_transaction_minor"].items()}
        if "session_caps" in document:
            values["session_caps"] = {operator: int(cap) for operator, cap in document["session_caps"].items()}
        if "cashier_limits" in document:
            values["cashier_limits"] = tuple(CashierLimit(**limit) for limit in document["cashier_limits"])
        if "providers" in document:
            values["providers"] = tuple(ProviderSettings(**p) for p in document["providers"])
    for f in fields(Config):
        raw = env.get(f"HUB_{f.name.upper()}")
        if raw is not None and f.name not in ("providers", "currencies", "cashier_limits", "max_transaction_minor",
                                              "session_caps"):
            values[f.name] = type(getattr(Config(), f.name))(raw)
    old_name = env.get("HUB_MODE") or values.pop("mode", None)  # environment's old name
    values.pop("mode", None)
    if old_name:
        values.setdefault("environment", old_name)
    if values.get("environment", "sandbox") not in ENVIRONMENTS:
        raise ValueError("environment must be sandbox or production")
    unknown = set(values) - {f.name for f in fields(Config)}
    if unknown:
        raise ValueError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
    return replace(Config(), **values)

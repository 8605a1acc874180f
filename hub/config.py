"""Hub configuration: defaults, overridden by a TOML file, overridden by HUB_* environment variables."""

import os
import pathlib
import tomllib
from dataclasses import dataclass, field, fields, replace
from typing import Any

from adapters.base import ProviderConfig

DEFAULT_PROVIDERS = (
    # The sandbox studios `hub dev` starts next to the hub.
    {"name": "reelhouse", "adapter": "reelhouse", "url": "http://127.0.0.1:8701",
     "secret": "reelhouse-sandbox-secret", "timeout_s": 5.0},
    {"name": "tablehouse", "adapter": "tablehouse", "url": "grpc://127.0.0.1:8702",
     "secret": "tablehouse-sandbox-secret", "timeout_s": 5.0},
    {"name": "livehouse", "adapter": "livehouse", "url": "http://127.0.0.1:8703",
     "secret": "livehouse-sandbox-secret", "timeout_s": 5.0},
)


@dataclass(frozen=True)
class ProviderSettings:
    name: str
    adapter: str
    url: str
    secret: str
    timeout_s: float = 5.0

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
    database_url: str = "sqlite:///var/casinohub.db"
    mode: str = "sandbox"  # sandbox | production
    sandbox_operator_id: str = "sandbox"
    db_workers: int = 8
    # Hub processes sharing the listen port (SO_REUSEPORT); 0: one for `hub serve`, one per CPU for `hub dev`.
    workers: int = 0
    # Admission control (hub/servicers/admission.py): past either limit a call is refused at once with
    # RESOURCE_EXHAUSTED / OVERLOADED and a retry pushback of overload_pushback_ms (jittered up to 2x).
    max_calls_in_flight: int = 256  # unary calls at once: 32 per default db worker, beyond that only queueing
    max_play_streams: int = 2000  # open Play streams (long-lived; each holds a slot until it ends)
    overload_pushback_ms: int = 200
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
    session_ttl_s: int = 86_400
    game_session_ttl_s: int = 14_400
    shutdown_grace_s: float = 10.0
    health_interval_s: float = 2.0
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


def load(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """Config from an optional TOML file (`[hub]` keys, `[currencies]` and `[max_transaction_minor]` tables,
    `[[cashier_limits]]` and `[[providers]]` tables), then HUB_<KEY> environment variables for the scalar keys."""
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
        if "cashier_limits" in document:
            values["cashier_limits"] = tuple(CashierLimit(**limit) for limit in document["cashier_limits"])
        if "providers" in document:
            values["providers"] = tuple(ProviderSettings(**p) for p in document["providers"])
    for f in fields(Config):
        raw = env.get(f"HUB_{f.name.upper()}")
        if raw is not None and f.name not in ("providers", "currencies", "cashier_limits", "max_transaction_minor"):
            values[f.name] = type(getattr(Config(), f.name))(raw)
    unknown = set(values) - {f.name for f in fields(Config)}
    if unknown:
        raise ValueError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
    return replace(Config(), **values)

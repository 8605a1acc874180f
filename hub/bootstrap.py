"""The one place where the hub is wired together from its configuration."""

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from adapters import registry
from adapters.base import ProviderAdapter
from hub import environments, page_tokens, stats
from hub.catalog import Catalog
from hub.catalog_settings import CatalogSettings
from hub.config import Config
from hub.demo import DemoSessions
from hub.ledger.db import Database
from hub.ledger.engine import SettlementEngine
from hub.ledger.rounds import RoundLedger
from hub.migrate import upgrade
from hub.money import add_currency, set_max_transaction
from hub.operator_limits import Defaults, OperatorLimitSettings
from hub.operators import Operators
from hub.passwords import Hashing, hashing as password_hashing
from hub.play import Play
from hub.players import Players, SessionSettings
from hub.promotions import Promotions
from hub.provider_wallet import ProviderWallet
from hub.reconciler import Reconciler
from hub.reports import Reports
from hub.responsible import ResponsibleGaming
from hub.studio_guard import GuardedAdapter, GuardPolicy
from hub.wallet import Wallet


@dataclass
class Hub:
    config: Config
    db: Database
    engine: SettlementEngine
    operators: Operators
    players: Players
    wallet: Wallet
    catalog: Catalog
    play: Play
    reconciler: Reconciler
    adapters: dict[str, ProviderAdapter]
    reports: Reports
    promotions: Promotions
    demo: DemoSessions
    responsible: ResponsibleGaming
    provider_wallet: ProviderWallet
    hashing: Hashing
    limits: OperatorLimitSettings

    async def close(self) -> None:
        await self.play.drain()
        for adapter in self.adapters.values():
            await adapter.close()
        await asyncio.to_thread(self.engine.close)  # batches already submitted commit first
        self.db.close()


async def bootstrap(config: Config, adapters: dict[str, ProviderAdapter] | None = None) -> Hub:
    """Migrate (the embedded default needs no separate step), then build every component once."""
    environments.check(config, adapters)  # a production hub with a mock studio stops here, before any work
    for code, exponent in config.currencies.items():
        add_currency(code, exponent)
    for code, amount in config.max_transaction_minor.items():
        set_max_transaction(code, amount)
    await asyncio.to_thread(upgrade, config.database_url)  # blocking I/O stays off the event loop
    db = Database.from_url(config.database_url, workers=config.db_workers)
    engine = SettlementEngine(db)
    # The benchmark's counters (hub.stats): nothing unless CASINOHUB_STATS_FILE is set.
    stats.enable_from_env(*db.engines, batches=engine.stats)
    operators = Operators(db)
    if config.environment == "sandbox":
        await operators.ensure(config.sandbox_operator_id, "Sandbox operator")
    tokens = await page_tokens.load(db)
    hashing = password_hashing(config.password_hash_time_cost, config.password_hash_memory_kib)
    limits = OperatorLimitSettings(db, Defaults(
        config.rate_limit_per_s, config.rate_limit_burst, config.max_play_streams_per_operator, config.session_cap,
        dict(config.session_caps)), config.operator_limits_ttl_s)
    players = Players(db, SessionSettings(
        timedelta(seconds=config.session_ttl_s), timedelta(seconds=config.session_max_s),
        timedelta(seconds=config.session_idle_s)), tokens, hashing, limits.session_cap)
    if adapters is None:
        adapters = {p.name: registry.create(p.adapter, p.adapter_config()) for p in config.providers}
    policy = GuardPolicy(attempts=config.studio_attempts, backoff_s=config.studio_backoff_s,
                         failures_to_open=config.breaker_failures, open_s=config.breaker_open_s)
    adapters = {name: GuardedAdapter(adapter, policy) for name, adapter in adapters.items()}
    catalog = Catalog(adapters, tokens, CatalogSettings(db, config.catalog_settings_ttl_s),
                      config.studio_health_ttl_s)
    await catalog.refresh()
    rounds = RoundLedger(config.house_shards, config.bonus_spending)
    # A round still OPEN after reconcile_after_s is closed by the next reconciler pass: waiting longer
    # for it on a resumed stream means the provider cannot answer.
    play = Play(db, engine, catalog, players, rounds, timedelta(seconds=config.game_session_ttl_s),
                timedelta(seconds=config.reconcile_after_s + config.reconcile_interval_s), operators)
    reconciler = Reconciler(db, engine, catalog, rounds, timedelta(seconds=config.reconcile_after_s), play.reconciled)
    wallet = Wallet(db, engine, config.house_shards, tokens, config.cashier_limits)
    return Hub(config, db, engine, operators, players, wallet, catalog, play, reconciler, adapters, Reports(db),
               Promotions(db, engine, catalog, config.house_shards),
               DemoSessions(catalog, players, timedelta(seconds=config.game_session_ttl_s)),
               ResponsibleGaming(db, timedelta(seconds=config.limit_cooling_off_s)),
               ProviderWallet(db, engine, rounds, config.house_shards), hashing, limits)

"""Sandbox and production: what a production hub refuses before it serves anything.

A hub runs in one environment (config `environment`). A sandbox hub (the default, `hub dev`, `make run`)
creates the sandbox operator and plays against the mock studios with test money. A production hub refuses
to start with a studio declared sandbox-only, by its adapter (`sandbox_only = True` on the class, as the
mock studios' adapters declare, or at registration) or by its `[[providers]]` entry (`sandbox_only = true`): real money must
never reach a mock. Keys and operators are checked per call, by hub.auth.credentials: a key works only on a
hub of its own environment, and a production hub refuses the sandbox operator.
"""

from collections.abc import Mapping

import structlog

from adapters import registry
from adapters.base import ProviderAdapter
from hub.config import ENVIRONMENTS, Config, RefusedConfiguration

log = structlog.get_logger("hub.environment")


def check(config: Config, adapters: Mapping[str, ProviderAdapter] | None) -> None:
    """Raise RefusedConfiguration (logged as `hub.refused` with its reason) if this hub may not start so.
    adapters: those given to the hub instead of the configured providers (tests), if any."""
    if config.environment not in ENVIRONMENTS:
        _refuse("UNKNOWN_ENVIRONMENT", f"environment must be sandbox or production, not {config.environment[:20]!r}")
    if config.environment != "production":
        return
    if adapters is not None:
        declared = {name: registry.declares_sandbox_only(adapter) for name, adapter in adapters.items()}
    else:
        declared = {p.name: p.sandbox_only or registry.is_sandbox_only(p.adapter)
                    for p in config.providers}
    for name, sandbox_only in sorted(declared.items()):
        if sandbox_only:
            _refuse("SANDBOX_STUDIO_IN_PRODUCTION", f"provider {name!r} is a sandbox-only (mock) studio; a "
                    "production hub refuses it: list only real studios under [[providers]]", provider=name)


def _refuse(reason: str, message: str, **fields: str) -> None:
    log.error("hub.refused", reason=reason, message=message, **fields)
    raise RefusedConfiguration(message)

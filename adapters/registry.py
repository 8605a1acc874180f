"""Finds adapter classes by short name: explicit registration first, then the `casinohub.adapters`
entry-point group, so a third party can ship an adapter as its own package."""

from collections.abc import Callable
from importlib.metadata import entry_points

from adapters.base import ProviderAdapter, ProviderConfig

ENTRY_POINT_GROUP = "casinohub.adapters"

AdapterFactory = Callable[[ProviderConfig], ProviderAdapter]

_registered: dict[str, AdapterFactory] = {}
_sandbox_only: set[str] = set()  # kinds registered as serving sandbox studios only


class UnknownAdapter(LookupError):
    pass


def register(kind: str, factory: AdapterFactory, sandbox_only: bool = False) -> None:
    """sandbox_only: the kind serves sandbox studios only (mocks, demo servers); a production hub refuses it."""
    _registered[kind] = factory
    if sandbox_only:
        _sandbox_only.add(kind)
    else:
        _sandbox_only.discard(kind)


def unregister(kind: str) -> None:
    _registered.pop(kind, None)
    _sandbox_only.discard(kind)


def available() -> list[str]:
    return sorted(set(_registered) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def factory_for(kind: str) -> AdapterFactory:
    if kind in _registered:
        return _registered[kind]
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=kind):
        return ep.load()
    raise UnknownAdapter(f"no adapter {kind!r}; available: {', '.join(available()) or 'none'}")


def create(kind: str, config: ProviderConfig) -> ProviderAdapter:
    return factory_for(kind)(config)


def declares_sandbox_only(adapter: object) -> bool:
    """Whether an adapter class or instance declares it serves sandbox studios only (`sandbox_only = True`)."""
    return getattr(adapter, "sandbox_only", False) is True


def offers_demo_play(adapter: object) -> bool:
    """Whether a demo launch can play the adapter's games: not when it declares `demo_play = False`."""
    return getattr(adapter, "demo_play", True) is not False


def is_sandbox_only(kind: str) -> bool:
    """Whether the adapter kind serves sandbox studios only: registered so, or its class says so (an entry
    point's class, e.g. the mock studios' adapters). A production hub refuses it."""
    return kind in _sandbox_only or declares_sandbox_only(factory_for(kind))

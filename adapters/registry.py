"""Finds adapter classes by short name: explicit registration first, then the `casinohub.adapters`
entry-point group, so a third party can ship an adapter as its own package."""

from collections.abc import Callable
from importlib.metadata import entry_points

from adapters.base import ProviderAdapter, ProviderConfig

ENTRY_POINT_GROUP = "casinohub.adapters"

AdapterFactory = Callable[[ProviderConfig], ProviderAdapter]

_registered: dict[str, AdapterFactory] = {}


class UnknownAdapter(LookupError):
    pass


def register(kind: str, factory: AdapterFactory) -> None:
    _registered[kind] = factory


def unregister(kind: str) -> None:
    _registered.pop(kind, None)


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

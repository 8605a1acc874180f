import pytest

from adapters import registry
from adapters.base import ProviderAdapter, ProviderConfig
from tests.fakes import FakeStudio


def test_explicit_registration_wins_and_can_be_removed() -> None:
    registry.register("fake-for-test", lambda config: FakeStudio(name=config.name))
    try:
        adapter = registry.create("fake-for-test", ProviderConfig(name="x", url="", secret=""))
        assert isinstance(adapter, ProviderAdapter) and adapter.name == "x"
        assert "fake-for-test" in registry.available()
    finally:
        registry.unregister("fake-for-test")
    with pytest.raises(registry.UnknownAdapter, match="fake-for-test"):
        registry.factory_for("fake-for-test")


def test_installed_adapters_are_found_by_entry_point() -> None:
    assert "reelhouse" in registry.available()
    factory = registry.factory_for("reelhouse")
    adapter = factory(ProviderConfig(name="reelhouse", url="http://127.0.0.1:1", secret="s"))
    assert isinstance(adapter, ProviderAdapter)


def test_tablehouse_is_registered_by_entry_point() -> None:
    assert "tablehouse" in registry.available()
    adapter = registry.create("tablehouse", ProviderConfig(name="tablehouse", url="grpc://127.0.0.1:1", secret="s"))
    assert adapter.name == "tablehouse"

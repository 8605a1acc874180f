"""Every adapter registered under the casinohub.adapters entry points is run by one of the kits (pull, push or
its own wallet protocol): an adapter added without joining a kit fails here, not in production."""

from importlib.metadata import entry_points

from adapters.registry import ENTRY_POINT_GROUP
from tests.conformance.push_studios import PUSH_STUDIOS
from tests.conformance.studios import STUDIOS
from tests.conformance.test_instant_kit import INSTANT_STUDIOS


def test_every_registered_adapter_is_in_exactly_one_kit() -> None:
    registered = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    kits = [set(STUDIOS), set(PUSH_STUDIOS), set(INSTANT_STUDIOS)]
    assert registered == set().union(*kits), "add the adapter's studio to a kit (README: Writing an adapter)"
    assert sum(len(kit) for kit in kits) == len(registered)  # no adapter counted by two kits
    assert len(registered) >= 4

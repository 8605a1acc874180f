import dataclasses
import pathlib

import pytest

from hub.config import Config, load


def test_defaults_need_nothing_installed() -> None:
    config = load(env={})
    assert config.database_url.startswith("sqlite:///")
    assert [p.name for p in config.providers] == ["reelhouse", "tablehouse", "livehouse", "instanthouse"]
    assert config.inbound_listen == "127.0.0.1:8711"


def test_file_then_environment_override(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hub.toml"
    path.write_text('[hub]\nlisten = "0.0.0.0:6000"\nhouse_shards = 4\n\n'
                    '[currencies]\nDOGE = 8\n\n[max_transaction_minor]\nUSD = 1000000\n\n'
                    '[[providers]]\nname = "a"\nadapter = "reelhouse"\nurl = "http://x"\nsecret = "s"\n')
    config = load(path, env={"HUB_HOUSE_SHARDS": "16", "HUB_DATABASE_URL": "sqlite:///other.db"})
    assert (config.listen, config.house_shards, config.database_url) == ("0.0.0.0:6000", 16, "sqlite:///other.db")
    assert [(p.name, p.timeout_s) for p in config.providers] == [("a", 5.0)]
    assert config.currencies == {"DOGE": 8}
    assert config.max_transaction_minor == {"USD": 1_000_000}
    assert isinstance(config, Config)


def test_unknown_key_is_an_error_not_ignored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hub.toml"
    path.write_text('[hub]\nlisten_adress = "typo"\n')
    with pytest.raises(ValueError, match="listen_adress"):
        load(path, env={})


def test_a_maximum_above_the_ceiling_or_for_an_unknown_currency_is_refused() -> None:
    from hub.errors import DomainError
    from hub.money import MAX_TRANSACTION_CEILING, set_max_transaction
    with pytest.raises(ValueError):
        set_max_transaction("USD", MAX_TRANSACTION_CEILING + 1)
    with pytest.raises(DomainError):
        set_max_transaction("XXX", 100)


def test_every_configuration_key_is_documented_in_the_readme() -> None:
    """A key added to Config without a line in the README's Configuration section fails here."""
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Configuration"):]
    undocumented = [f.name for f in dataclasses.fields(Config)
                    if f"`{f.name}`" not in section and f"[{f.name}]" not in section
                    and f"[[{f.name}]]" not in readme]
    assert not undocumented, f"document these in README.md, Configuration: {undocumented}"

"""the settings in sections: read flat, each knob of the consumer's dataclasses fed by
exactly one setting, and the dataclasses built from them with nothing copied by hand."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field

from jetstream.config import ConsumerConfig
from jetstream.flood import FloodLimits
from jetstream.frames import FrameLimits
from jetstream.records import RecordLimits
from worker.settings import SECTIONS, JetstreamSettings, Section, Settings
from worker.settings.feeds import build, default_of, fed_fields, feeds
from worker.settings.jetstream import HOST_SETTINGS
from worker.wiring import consumer_config, frame_limits

CONFIGS = (ConsumerConfig, FloodLimits, FrameLimits, RecordLimits)
# fields no setting feeds on purpose: the hosts come from JETSTREAM_URL(S) through
# `jetstream_hosts`, and a nested dataclass is built from its own fields' settings.
GIVEN = {"ConsumerConfig.hosts"}


def knobs(config: type) -> list[str]:
    """the fields of `config` a setting must feed."""
    types = typing.get_type_hints(config)
    return [
        f"{config.__name__}.{field.name}"
        for field in dataclasses.fields(config)
        if field.init
        and not dataclasses.is_dataclass(types[field.name])
        and f"{config.__name__}.{field.name}" not in GIVEN
    ]


def test_every_knob_of_the_consumer_is_fed_by_exactly_one_setting() -> None:
    fed = fed_fields(Settings)  # raises on a knob fed twice
    wanted = [knob for config in CONFIGS for knob in knobs(config)]
    assert sorted(fed) == sorted(wanted), (
        f"knobs with no setting: {sorted(set(wanted) - set(fed))}; "
        f"settings feeding no knob: {sorted(set(fed) - set(wanted))}"
    )


def test_every_consumer_setting_feeds_a_knob() -> None:
    """a setting added to the consumer's section but not declared with `feeds` would be
    read and then ignored."""
    fed = set(fed_fields(JetstreamSettings).values())
    assert sorted(set(JetstreamSettings.model_fields) - set(HOST_SETTINGS)) == sorted(fed)


def test_a_fed_settings_default_is_the_dataclasses() -> None:
    for target, setting in fed_fields(Settings).items():
        config_name, name = target.split(".")
        config = next(config for config in CONFIGS if config.__name__ == config_name)
        assert Settings.model_fields[setting].default == default_of(config, name), setting


def reachable(config: object) -> dict[str, object]:
    """the dataclass values inside a built config, by class name."""
    found = {type(config).__name__: config}
    for field in dataclasses.fields(typing.cast(Any, config)):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            found.update(reachable(value))
    return found


def other_value(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value * 2 + 1  # keeps the flood limits nested (total >= per DID)
    assert isinstance(value, str), value
    return value + "x"


def test_every_setting_reaches_its_knob() -> None:
    fed = fed_fields(Settings)
    values = {
        setting: other_value(Settings.model_fields[setting].default) for setting in fed.values()
    }
    built = reachable(consumer_config(Settings.model_construct(**values)))
    for target, setting in fed.items():
        config_name, name = target.split(".")
        assert getattr(built[config_name], name) == values[setting], f"{setting} -> {target}"


def test_the_environment_is_read_flat_whatever_the_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JETSTREAM_DID_BURST", "7")
    monkeypatch.setenv("JETSTREAM_MAX_PENDING_BYTES", str(80 * 1024 * 1024))
    monkeypatch.setenv("LIST_MAX_ITEMS", "9")
    monkeypatch.setenv("REDIS_URL", "redis://db:6379/0")
    settings = Settings(_env_file=None)
    assert settings.redis_url == "redis://db:6379/0"
    config = consumer_config(settings)
    assert (config.flood.burst, config.flood.max_total_pending_bytes) == (7, 80 * 1024 * 1024)
    assert config.limits.record.max_items == 9
    # a section alone reads the same variables
    alone = JetstreamSettings(_env_file=None)
    assert consumer_config(alone) == config
    assert frame_limits(alone) == config.limits


def test_each_section_is_a_type_of_its_own_and_settings_is_all_of_them() -> None:
    assert len(SECTIONS) == len(set(SECTIONS)) >= 10
    assert len({section.title for section in SECTIONS}) == len(SECTIONS)
    for section in SECTIONS:
        assert issubclass(Settings, section)
        assert section.model_fields, section.__name__


@dataclasses.dataclass(frozen=True)
class _Knobs:
    fed: int = 1
    forgotten: float = 2.0


class _OneFed(Section):
    title = "test"
    knob_fed: int = feeds(_Knobs, "fed", description="fed.")


class _FedTwice(_OneFed):
    knob_again: int = feeds(_Knobs, "fed", description="fed again.")


def test_a_knob_with_no_setting_is_refused_by_name() -> None:
    with pytest.raises(LookupError, match=r"no setting feeds _Knobs\.forgotten"):
        build(_Knobs, _OneFed(_env_file=None))
    assert build(_Knobs, _OneFed(_env_file=None, knob_fed=5), forgotten=3.0) == _Knobs(5, 3.0)


def test_a_knob_fed_twice_is_refused() -> None:
    with pytest.raises(LookupError, match=r"_Knobs\.fed is fed by two settings"):
        fed_fields(_FedTwice)


def test_a_plain_field_feeds_nothing() -> None:
    class Plain(Section):
        title = "plain"
        knob_fed: int = Field(default=1, description="not declared with feeds.")

    with pytest.raises(LookupError, match=r"no setting feeds _Knobs\.fed"):
        build(_Knobs, Plain(_env_file=None), forgotten=1.0)


ROOT = Path(__file__).resolve().parents[1]
# variables in fly.toml's [env] that are read by a library, not by the settings
NOT_SETTINGS = {"OPENBLAS_NUM_THREADS"}


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def fly_env() -> dict[str, str]:
    env = tomllib.loads((ROOT / "fly.toml").read_text())["env"]
    assert isinstance(env, dict)
    return {str(name): str(value) for name, value in env.items()}


@pytest.mark.parametrize("source", [env_example, fly_env], ids=[".env.example", "fly.toml"])
def test_deployment_files_name_only_settings_and_valid_values(
    monkeypatch: pytest.MonkeyPatch, source: Callable[[], dict[str, str]]
) -> None:
    variables = source()
    known = {name.upper() for name in Settings.model_fields} | NOT_SETTINGS
    assert sorted(set(variables) - known) == []
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    Settings(_env_file=None)  # every value is one the settings accept

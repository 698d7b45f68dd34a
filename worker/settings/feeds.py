"""settings that feed a config dataclass, and the dataclass built from them.

a part configured by a frozen dataclass (the consumer's `ConsumerConfig`,
`FloodLimits`, `FrameLimits`, `RecordLimits`) writes each default once, in the
dataclass. the setting for one of its fields is declared with `feeds(Config,
"field")`: its default is read from the dataclass, and the field it feeds is
recorded on the setting (in its JSON schema, as "Config.field"). `build` then
makes the dataclass from the settings by those records, with no field-by-field
copy; a dataclass field no setting feeds, or one fed twice, is an error, and
`tests/test_settings_sections.py` holds both sides to it.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, Field

FEEDS_KEY = "feeds"

Config = TypeVar("Config")


def default_of(config: type, name: str) -> Any:
    """a config dataclass's own default for `name`."""
    for config_field in dataclasses.fields(config):
        if config_field.name == name and config_field.default is not dataclasses.MISSING:
            return config_field.default
    raise LookupError(f"{config.__name__}.{name} has no plain default")


def feeds(config: type, name: str, *, description: str, pattern: str | None = None) -> Any:
    """the pydantic field of a setting that feeds `config.name`: that field's default,
    and the record `build` follows."""
    return Field(
        default=default_of(config, name),
        description=description,
        pattern=pattern,
        json_schema_extra={FEEDS_KEY: f"{config.__name__}.{name}"},
    )


def fed_fields(settings: type[BaseModel]) -> dict[str, str]:
    """the setting that feeds each "Config.field", for every setting of `settings`
    declared with `feeds`."""
    fed: dict[str, str] = {}
    for setting, info in settings.model_fields.items():
        extra = info.json_schema_extra
        target = extra.get(FEEDS_KEY) if isinstance(extra, dict) else None
        if not isinstance(target, str):
            continue
        if target in fed:
            raise LookupError(f"{target} is fed by two settings: {fed[target]} and {setting}")
        fed[target] = setting
    return fed


def build(config: type[Config], settings: BaseModel, **given: Any) -> Config:
    """`config` made from `settings`: each field from the setting that feeds it, a field
    whose type is itself a dataclass built the same way, `given` fields as they are."""
    fed = fed_fields(type(settings))
    types = typing.get_type_hints(config)
    values: dict[str, Any] = {}
    for config_field in dataclasses.fields(typing.cast(Any, config)):
        name = config_field.name
        key = f"{config.__name__}.{name}"
        if not config_field.init:
            continue
        if name in given:
            values[name] = given[name]
        elif key in fed:
            values[name] = getattr(settings, fed[key])
        elif dataclasses.is_dataclass(types[name]):
            values[name] = build(types[name], settings)
        else:
            raise LookupError(
                f"no setting feeds {key}: declare one with feeds({config.__name__}, {name!r})"
            )
    return config(**values)

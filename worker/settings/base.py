"""what every section of the settings shares: how it is read, and the value shapes
several sections use.

a section is a `BaseSettings` of its own, so it can be read (or built in a test)
alone; `worker.settings.Settings` inherits every section, so the environment is
still read flat: a field's variable is its name in upper case, whichever section
holds it.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar

from pydantic import BeforeValidator, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Section(BaseSettings):
    """one group of settings about one part of the service (`title` heads its table
    in the README)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    title: ClassVar[str]


def _blank_is_none(value: object) -> object:
    # an empty variable in fly.toml or .env means "not set", not "connect to ''"
    # (or, for a secret, "an empty password that matches an empty header")
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _words(value: object) -> object:
    # a list in the environment is written "a, b" or "a b"
    if isinstance(value, str):
        return tuple(part for part in value.replace(",", " ").split() if part)
    return value


def _urls(value: object) -> object:
    words = _words(value)
    return words or None  # a blank list is unset


def _networks(value: object) -> object:
    words = _words(value)
    if isinstance(words, tuple | list):
        for part in words:  # a typo fails at start-up, by name
            ipaddress.ip_network(str(part).strip(), strict=False)
    return words


# a URL or a name that may be unset (blank included)
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_none)]
# a secret that may be unset (blank included); never shown in a repr or a log line
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_blank_is_none)]
# URLs separated by commas or spaces; blank is unset
UrlList = Annotated[tuple[str, ...] | None, NoDecode, BeforeValidator(_urls)]
# addresses or CIDR networks separated by commas or spaces, each checked
NetworkList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_networks)]

"""one settings object for every process, read from the environment (and `.env`).

the defaults are the embedded mode: with nothing set, `plyr-recs run` works on a
machine with no servers. production sets the URLs and secrets (see fly.toml).
secrets are `SecretStr`, so they never appear in a repr or a log line.

the settings come in sections, one module each, one type each (`RedisSettings`,
`JetstreamSettings`, ...); `Settings` inherits them all, so every variable is
still read flat under its own name (`REDIS_URL`, `JETSTREAM_DID_BURST`) and
`settings.<field>` reads any of them. a part that needs one section takes that
section's type (`worker.wiring.consumer_config(settings: JetstreamSettings)`),
and a test may build that section alone. the README's settings tables follow
`SECTIONS` (tests/test_readme.py).

a new knob: one field in the section it belongs to, with its default and its
description (a knob of the consumer's dataclasses: the dataclass field with its
default, and one `feeds(...)` field in `jetstream.py`), a row in the README's
table of that section. tests/test_readme.py and tests/test_settings_sections.py
fail until both are there.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from worker.settings.answers import AnswerSettings
from worker.settings.api import ApiSettings
from worker.settings.auth import AuthSettings
from worker.settings.base import Section
from worker.settings.cache import CacheSettings
from worker.settings.database import DatabaseSettings
from worker.settings.jetstream import PUBLIC_JETSTREAM_HOSTS, JetstreamSettings
from worker.settings.ops import OpsSettings
from worker.settings.pds import PdsSettings
from worker.settings.reconcile import ReconcileSettings
from worker.settings.redis import RedisSettings
from worker.settings.turbopuffer import TurbopufferSettings
from worker.settings.withdrawals import WithdrawalSettings
from worker.settings.worker import WorkerSettings

__all__ = [
    "PUBLIC_JETSTREAM_HOSTS",
    "SECTIONS",
    "AnswerSettings",
    "ApiSettings",
    "AuthSettings",
    "CacheSettings",
    "DatabaseSettings",
    "JetstreamSettings",
    "OpsSettings",
    "PdsSettings",
    "ReconcileSettings",
    "RedisSettings",
    "Section",
    "Settings",
    "TurbopufferSettings",
    "WithdrawalSettings",
    "WorkerSettings",
    "get_settings",
]


class Settings(
    RedisSettings,
    DatabaseSettings,
    TurbopufferSettings,
    AnswerSettings,
    WorkerSettings,
    CacheSettings,
    WithdrawalSettings,
    ReconcileSettings,
    PdsSettings,
    JetstreamSettings,
    AuthSettings,
    ApiSettings,
    OpsSettings,
):
    """every knob of plyr-recs; environment variable = field name in upper case."""

    title = "every setting"


# the sections in the order the README gives them: Settings' own bases, so the two
# cannot disagree.
SECTIONS: Final[tuple[type[Section], ...]] = tuple(
    base for base in Settings.__bases__ if issubclass(base, Section)
)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """the process's settings, read once."""
    return Settings()

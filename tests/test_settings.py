"""settings: defaults are the embedded mode; bad values are clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from worker.settings import PUBLIC_JETSTREAM_HOSTS, Settings


def test_defaults_are_the_embedded_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "DATABASE_URL", "TURBOPUFFER_API_KEY", "JETSTREAM_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.redis_url is None
    assert settings.docket_url == "memory://"
    assert settings.database_url is None
    assert settings.turbopuffer_api_key is None
    assert settings.jetstream_hosts == PUBLIC_JETSTREAM_HOSTS
    assert settings.list_collection == "fm.plyr.list"


@pytest.mark.parametrize(
    "name", ["DATABASE_URL", "TURBOPUFFER_API_KEY", "INTERNAL_API_TOKEN", "REDIS_URL"]
)
def test_a_blank_variable_means_unset(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "  ")
    settings = Settings(_env_file=None)
    assert getattr(settings, name.lower()) is None


def test_secrets_never_show_in_a_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TURBOPUFFER_API_KEY", "tpuf_secret_value")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@db/plyr")
    settings = Settings(_env_file=None)
    assert "tpuf_secret_value" not in repr(settings)
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LIST_COLLECTION", "not an nsid"),
        ("API_PORT", "70000"),
        ("DEBOUNCE_SECONDS", "-1"),
        ("FUSION_MODE", "average"),
        ("WORKER_CONCURRENCY", "0"),
        ("WORKER_CHECK_SECONDS", "0"),
    ],
)
def test_bad_values_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings(_env_file=None)

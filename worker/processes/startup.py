"""what every command checks before it starts, and how it says no: one line, status 2.

an operator who mistypes a setting should read which setting, what is wrong with
it and what to do, not 50 lines of a pydantic or websockets traceback (issue 22).
every refusal here is a `ConfigurationError` whose message is that line;
`refusals` turns it (and the few library errors that mean the same) into the
line and the exit status, for every command alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final
from urllib.parse import SplitResult, urlsplit

import typer
from pydantic import SecretStr, ValidationError

from engine.ports import CatalogError
from worker.settings import Settings
from worker.wiring import ConfigurationError

EXIT_REFUSED: Final = 2  # the status of every refusal (a usage error, as click's)
MAX_QUOTED: Final = 80  # characters of a refused value quoted back

REDIS_SCHEMES: Final = ("redis", "rediss", "unix")
DATABASE_SCHEMES: Final = ("postgresql", "postgres")
JETSTREAM_SCHEMES: Final = ("ws", "wss")
HTTP_SCHEMES: Final = ("http", "https")


@contextmanager
def refusals(command: str) -> Iterator[None]:
    """run a command's body; a refusal becomes `plyr-recs <command>: <line>` on stderr
    and exit status 2, with no traceback."""
    try:
        yield
    except ConfigurationError as error:
        _refuse(command, str(error))
    except ValidationError as error:  # settings read lazily inside a command
        _refuse(command, settings_problem(error))
    except CatalogError as error:  # at start-up: the database refused us, or a query
        _refuse(
            command,
            f"plyr.fm's database (DATABASE_URL) cannot be used: {error}. Check the DSN, "
            "the role's rights and that PostgreSQL is up.",
        )


def _refuse(command: str, line: str) -> None:
    typer.echo(f"plyr-recs {command}: {line}", err=True)
    raise typer.Exit(EXIT_REFUSED)


def load_settings() -> Settings:
    """the settings, their URLs checked; `ConfigurationError` names what is wrong."""
    from worker.settings import get_settings

    try:
        settings = get_settings()
    except ValidationError as error:
        raise ConfigurationError(settings_problem(error)) from None
    check_urls(settings)
    return settings


def load_process_settings(process: str, *, at_least: str = "DEBUG") -> Settings:
    """`load_settings`, then the process's logging (LOG_LEVEL, LOG_FORMAT; `at_least`
    for the commands with a console of their own) and traces (OTEL_EXPORTER_OTLP_*)."""
    from worker.ops.tracing import configure_tracing
    from worker.processes.logs import configure_logging

    settings = load_settings()
    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    configure_logging(
        max(settings.log_level, at_least, key=levels.index), log_format=settings.log_format
    )
    configure_tracing(settings, process=process)
    return settings


def settings_problem(error: ValidationError) -> str:
    """one line for the bad settings: each one's name, the value, what is wrong, and
    what to do (set it right, or unset it for its default)."""
    problems = []
    for detail in error.errors():
        name = str(detail["loc"][0]) if detail["loc"] else "a setting"
        field = Settings.model_fields.get(name)
        default = "" if field is None else f", {_shown_default(field.default)}"
        secret = field is not None and "SecretStr" in str(field.annotation)
        shown = "'***'" if secret else _quoted(detail.get("input"))
        problems.append(
            f"{name.upper()}={shown} is refused: "
            f"{_lower_first(detail['msg'])}. Set {name.upper()} to a valid value, or unset "
            f"it for its default{default}"
        )
    return "; ".join(problems) + "."


def check_urls(settings: Settings) -> None:
    """every URL that is set has the shape its client needs: a typo is refused at start,
    not found as a traceback minutes later."""
    if settings.redis_url is not None:
        _check("REDIS_URL", settings.redis_url, REDIS_SCHEMES, example="redis://host:6379/0")
    if not settings.docket_url.startswith("memory://"):
        _check(
            "DOCKET_URL",
            settings.docket_url,
            REDIS_SCHEMES,
            example="redis://host:6379/1, or memory:// for the embedded mode",
        )
    if settings.database_url is not None:
        _check(
            "DATABASE_URL",
            settings.database_url,
            DATABASE_SCHEMES,
            example="postgresql://user:password@host:5432/plyr",
        )
    if settings.jetstream_url is not None:
        _check("JETSTREAM_URL", settings.jetstream_url, JETSTREAM_SCHEMES, example=_JETSTREAM)
    for index, url in enumerate(settings.jetstream_urls or ()):
        _check(f"JETSTREAM_URLS (entry {index + 1})", url, JETSTREAM_SCHEMES, example=_JETSTREAM)
    if settings.turbopuffer_base_url is not None:
        _check(
            "TURBOPUFFER_BASE_URL",
            settings.turbopuffer_base_url,
            HTTP_SCHEMES,
            example="https://gcp-us-central1.turbopuffer.com, or unset it to use the region",
        )
    if settings.otel_exporter_otlp_endpoint is not None:
        _check(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            settings.otel_exporter_otlp_endpoint,
            HTTP_SCHEMES,
            example="http://collector:4318, or unset it for no traces",
        )
    _check(
        "PLC_DIRECTORY_URL",
        settings.plc_directory_url,
        HTTP_SCHEMES,
        example="https://plc.directory",
    )


_JETSTREAM: Final = "wss://jetstream1.us-east.bsky.network/subscribe"


def _check(name: str, url: str | SecretStr, schemes: tuple[str, ...], *, example: str) -> None:
    text = url.get_secret_value() if isinstance(url, SecretStr) else url
    shown = _quoted(redacted(text))
    parts = _split(text)
    if parts is None or parts.scheme not in schemes:
        raise ConfigurationError(
            f"{name}: {shown} is not a {_either(schemes)} URL. Write it like {example}."
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigurationError(f"{name}: {shown} names no host. Write it like {example}.")


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # a port that is not a number raises here
    except ValueError:
        return None
    return parts


def redacted(url: str) -> str:
    """`url` with its password (if any) replaced by `***`, for messages and logs."""
    parts = _split(url)
    if parts is None or parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def _either(schemes: tuple[str, ...]) -> str:
    names = [f"{scheme}://" for scheme in schemes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _quoted(value: object) -> str:
    text = repr(value) if isinstance(value, str) else repr(str(value))
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 4] + "...'"


def _shown_default(value: object) -> str:
    if value is None:
        return "unset"
    return str(value)


def _lower_first(message: str) -> str:
    return message[:1].lower() + message[1:]

"""one settings object for every process, read from the environment (and `.env`).

the defaults are the embedded mode: with nothing set, `plyr-recs run` works on a
machine with no servers. production sets the URLs and secrets (see fly.toml).
secrets are `SecretStr`, so they never appear in a repr or a log line.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engine.recommend import DEFAULT_FUSION, DEFAULT_MAX_PER_ARTIST
from engine.types import FusionMode
from jetstream.config import ConsumerConfig
from jetstream.flood import FloodLimits
from jetstream.frames import FrameLimits
from jetstream.records import RecordLimits
from jetstream.syntax import NSID

# the public Jetstream fleet, rotated on reconnect when neither JETSTREAM_URLS nor
# JETSTREAM_URL is set: the four v1 hosts (jetstream-legacy) and the two v2 hosts
# (bluesky-social/jetstream, `subscribeEvents`). the wires alternate so that a
# rotation away from a host that went blind usually lands on the other
# implementation too; the cursor keeps a position for each wire.
_V2_PATH = "/xrpc/network.bsky.jetstream.subscribeEvents"
PUBLIC_JETSTREAM_HOSTS = (
    "wss://jetstream1.us-east.bsky.network/subscribe",
    f"wss://jetstream.us-east.bsky.network{_V2_PATH}",
    "wss://jetstream2.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    f"wss://jetstream.us-west.bsky.network{_V2_PATH}",
    "wss://jetstream2.us-west.bsky.network/subscribe",
)

NSID_PATTERN = rf"^{NSID}$"


def default_of(config: type, name: str) -> Any:
    """a config dataclass's own default for `name`: each default is written once, beside
    the part it configures, and the setting that feeds it repeats none of them."""
    for config_field in dataclasses.fields(config):
        if config_field.name == name and config_field.default is not dataclasses.MISSING:
            return config_field.default
    raise LookupError(f"{config.__name__}.{name} has no plain default")


class Settings(BaseSettings):
    """every knob of plyr-recs; environment variable = field name in upper case."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    # --- redis and docket -------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        description="Redis for the cache and the consumer's state (cursor, revs). "
        "Unset: an in-process Redis (embedded mode only; nothing survives a restart).",
    )
    docket_url: str = Field(
        default="memory://",
        description="Redis URL of the docket task queue. 'memory://' runs it in-process "
        "(embedded mode and tests); production points it at the shared Redis.",
    )
    docket_name: str = Field(
        default="plyr-recs", description="docket queue name (Redis key prefix)."
    )

    # --- plyr.fm's database -------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL DSN of plyr.fm's database (read-only). "
        "Unset: the embedded demo catalog.",
    )
    database_pool_size: Annotated[int, Field(ge=1, le=100)] = Field(
        default=5, description="asyncpg pool size per process."
    )

    # --- turbopuffer -----------------------------------------------------------
    turbopuffer_api_key: SecretStr | None = Field(
        default=None,
        description="turbopuffer API key. Unset: the embedded exact vector store.",
    )
    turbopuffer_region: str = Field(
        default="gcp-us-central1", description="turbopuffer region (ignored with a base URL)."
    )
    turbopuffer_base_url: str | None = Field(
        default=None, description="turbopuffer endpoint; overrides the region (tests, proxies)."
    )
    turbopuffer_namespace: str = Field(
        default="plyr-tracks", description="namespace holding the CLAP embeddings."
    )
    turbopuffer_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = Field(
        default=10.0, description="per-request timeout for turbopuffer calls."
    )

    turbopuffer_max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=2,
        description="retries inside the turbopuffer client for one call (429/5xx/timeouts); "
        "the worker's task retries sit above these.",
    )
    turbopuffer_max_concurrent_queries: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=16,
        description="turbopuffer requests in flight at once across the whole deployment "
        "(every worker and API process; held in Redis): turbopuffer's per-namespace "
        "concurrency limit.",
    )
    turbopuffer_api_reserved_queries: Annotated[int, Field(ge=0, le=1023)] = Field(
        default=4,
        description="of those, slots only the API's inline computes may use, so a person "
        "waiting on a miss never queues behind the workers' background recomputes.",
    )
    vector_cache_size: Annotated[int, Field(ge=0, le=1_000_000)] = Field(
        default=20_000,
        description="track embeddings each process keeps in memory (least recently used "
        "out first; 20,000 are about 45 MiB), so a recompute asks turbopuffer only for the "
        "tracks it has not seen lately. 0 turns the cache off.",
    )
    vector_cache_ttl_seconds: Annotated[float, Field(gt=0, le=86400)] = Field(
        default=600.0,
        description="how long a cached embedding is used after it was fetched: a "
        "re-uploaded track's new embedding is served at most this late.",
    )

    # --- the engine ----------------------------------------------------------
    fusion_mode: FusionMode = Field(
        default=DEFAULT_FUSION,
        description="how per-query candidate lists are fused: 'proportional' (slots "
        "shared by cluster size, each cluster's best pick first; chosen with `plyr-recs "
        "bench quality`) or 'rrf' (plyr.fm's original reciprocal rank fusion).",
    )
    max_tracks_per_artist: Annotated[int, Field(ge=1, le=100)] = Field(
        default=DEFAULT_MAX_PER_ARTIST,
        description="most tracks of one artist in an answer (plyr.fm's own rule for its "
        "'for you' feed), applied after eligibility.",
    )
    speculative_answers: Annotated[int, Field(ge=0, le=10)] = Field(
        default=3,
        description="after an answer is served to a playlist's owner, the API computes in "
        "the background the answers of the playlist plus each of this many tracks it "
        "showed (the versions '+' makes), so the refetch right after '+' is already "
        "computed; 0 turns it off.",
    )

    # --- the worker ------------------------------------------------------------
    worker_concurrency: Annotated[int, Field(ge=1, le=256)] = Field(
        default=10,
        description="recomputes one `plyr-recs worker` process runs at once (they wait on "
        "turbopuffer and PostgreSQL, so more than the cores).",
    )
    worker_redelivery_seconds: Annotated[float, Field(ge=1, le=3600)] = Field(
        default=180.0,
        description="how long a task stays claimed by a worker that stopped renewing its "
        "lease (killed, partitioned) before another worker takes it over. above the task "
        "timeout (120 s), so a slow but alive worker is never doubled up; the reliability "
        "tests lower it to see a SIGKILLed worker's task redelivered in seconds.",
    )
    playlist_wait_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=120.0,
        description="how long a recompute waits, retrying with backoff, for plyr.fm to "
        "ingest a playlist it does not know yet (its own ingest lags the firehose by "
        "seconds) before dropping it with a log line.",
    )
    withdrawal_check_seconds: Annotated[float, Field(ge=0.1, le=60)] = Field(
        default=1.0,
        description="how often the withdrawal check round runs (one per deployment, however "
        "many workers): it asks plyr.fm's database, in one query, which tracks of the live "
        "answers are no longer surfaceable (takedown, label, visibility, deactivated artist, "
        "row gone), marks them withdrawn and recomputes the playlists that carried them.",
    )
    withdrawal_stale_seconds: Annotated[float, Field(ge=0.5, le=300)] = Field(
        default=3.0,
        description="the API serves a cached answer screened by the withdrawn set only while "
        "a check round began within this many seconds (and after the API last regained "
        "Redis); otherwise it checks the answer's tracks with plyr.fm's database itself. "
        "Below the 5 s in which a withdrawal must leave every answer.",
    )

    # --- the cache and the reconcile loop ------------------------------------------
    cache_ttl_seconds: Annotated[int, Field(ge=5, le=30 * 86_400)] = Field(
        default=86_400,
        description="how long every cache key lives (answers, version sets, states, the "
        "record-URI and delete markers). the reconcile loop refreshes an active playlist's "
        "entry before this runs out; tests and the journey benchmark shorten it.",
    )
    reconcile_interval_seconds: Annotated[float, Field(ge=1, le=86_400)] = Field(
        default=300.0,
        description="time between two reconcile passes (the first runs when a worker "
        "starts and no pass is scheduled). a pass walks plyr.fm's playlists and enqueues "
        "the recompute of each whose current version is not cached, or is due for refresh.",
    )
    reconcile_max_per_second: Annotated[float, Field(gt=0, le=10_000)] = Field(
        default=50.0,
        description="most recomputes a pass enqueues per second (a cold deploy of 2,000 "
        "playlists takes 40 s at the default); keeps a pass from flooding the workers, "
        "turbopuffer and the owners' PDSes.",
    )
    reconcile_page_size: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=200,
        description="playlists read from plyr.fm's database per page of a pass (keyset "
        "pagination; one pipelined Redis round trip per page).",
    )
    reconcile_heal_grace_seconds: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=60.0,
        description="how long after a playlist's `updated_at` the firehose has to deliver "
        "its edit before the reconcile counts it missed_by_firehose (plyr.fm's ingest and "
        "the consumer's settle delay both take seconds).",
    )
    refresh_active_days: Annotated[float, Field(gt=0, le=365)] = Field(
        default=14.0,
        description="a playlist edited (its `updated_at`) or viewed through the API within "
        "this many days is active: its entry is recomputed before it expires. an inactive "
        "one lapses and is computed on its next view.",
    )
    refresh_margin_seconds: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=3600.0,
        description="how long before expiry an active playlist's entry is refreshed, on "
        "top of one reconcile interval (the last pass before expiry does it); covers the "
        "queue and a pass's own length.",
    )
    pds_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        default=5.0,
        description="time bound on one request to an owner's PDS by the reconcile loop "
        "(getRecord or one listRecords page); a PDS that fails is skipped for the rest of "
        "the pass (and remembered with a backoff by a client that outlives the pass: "
        "worker/identity/pds_backoff.py).",
    )
    pds_max_in_flight_per_host: Annotated[int, Field(ge=1, le=64)] = Field(
        default=4,
        description="requests the reconcile loop keeps in flight to one PDS host.",
    )
    pds_max_in_flight: Annotated[int, Field(ge=1, le=512)] = Field(
        default=32,
        description="requests the reconcile loop keeps in flight to all PDS hosts together.",
    )
    pds_allow_private: bool = Field(
        default=False,
        description="let PDS requests use plain http and loopback or private addresses. only "
        "for a PDS this deployment runs itself (tests, benchmarks on loopback); never in "
        "production, where a PDS URL comes from anyone's DID document.",
    )

    # --- jetstream -----------------------------------------------------------
    jetstream_url: str | None = Field(
        default=None,
        description="one Jetstream endpoint (the single-host form of JETSTREAM_URLS). Unset: "
        "the public fleet.",
    )
    jetstream_urls: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        default=None,
        description="the Jetstream fleet, rotated on reconnect: ws(s):// URLs separated by "
        "commas or spaces. A path of /subscribe speaks v1, "
        "/xrpc/network.bsky.jetstream.subscribeEvents v2. Wins over JETSTREAM_URL. Unset: "
        "the public fleet (four v1 hosts and two v2 hosts).",
    )
    # plyr.fm is small: its own consumer's logs show fm.plyr.* silent for hours
    # overnight ("~20 rotations a night" at a 1800 s window, plyr.fm #1775), so no
    # window short enough to be useful avoids rotating on a quiet stream. the
    # window is therefore sized for what a rotation costs, not to avoid one: a
    # false rotation loses nothing (the next host resumes from the last plyr.fm
    # position) and costs one handshake plus reading the window's identity and
    # account events again (about 2 MB for 15 min at ~10 frames/s of ~250 B),
    # and a real blind host delays a missed edit by at most the window. 15 min
    # keeps that delay a quarter of the hour in which plyr.fm's write-echo alert
    # pages, at four reconnects per quiet hour.
    jetstream_blind_host_seconds: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=default_of(ConsumerConfig, "blind_host_seconds"),
        description="rotate to another host when no fm.plyr.* commit arrived for this many "
        "seconds of stream while other frames flowed (a host blind to plyr.fm, plyr.fm's "
        "incident of 2026-07-30), resuming from the last plyr.fm commit's position. "
        "0 disables the watch.",
    )
    jetstream_v1_deflate: bool = Field(
        default=default_of(ConsumerConfig, "v1_deflate"),
        description="offer permessage-deflate to v1 hosts (a host that declines is read "
        "plain): about a third of the bytes for a fifth more decode CPU.",
    )
    jetstream_v2_zstd: bool = Field(
        default=default_of(ConsumerConfig, "v2_zstd"),
        description="ask v2 hosts for dictionary-zstd frames (the dictionary is fetched from "
        "each host); a host without one is read uncompressed.",
    )
    list_collection: str = Field(
        default=default_of(FrameLimits, "list_collection"),
        pattern=NSID_PATTERN,
        description="the exact NSID of plyr.fm's list records (staging uses its own).",
    )
    track_collection: str = Field(
        default=default_of(RecordLimits, "track_collection"),
        pattern=NSID_PATTERN,
        description="the exact NSID of plyr.fm's track records, which list items must point at.",
    )
    debounce_seconds: Annotated[float, Field(ge=0, le=300)] = Field(
        default=default_of(ConsumerConfig, "debounce_seconds"),
        description="settle delay: rapid edits of one playlist within this window collapse "
        "into one recompute of the newest state.",
    )
    list_max_items: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=default_of(RecordLimits, "max_items"),
        description="most items a list record may hold (the lexicon's bound); a bigger "
        "record is rejected and counted, not truncated.",
    )
    list_max_name_length: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=default_of(RecordLimits, "max_name_length"),
        description="longest list name, in characters, a record may carry.",
    )
    jetstream_max_frame_bytes: Annotated[int, Field(ge=16 * 1024, le=16 * 1024 * 1024)] = Field(
        default=default_of(FrameLimits, "max_frame_bytes"),
        description="largest Jetstream frame decoded; bigger ones are counted and skipped. "
        "A full 500-item list is about 100 KiB.",
    )
    jetstream_batch_frames: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=default_of(ConsumerConfig, "batch_frames"),
        description="most frames handled together (one guard read, one enqueue pipeline) "
        "when they arrive faster than they are handled.",
    )
    jetstream_cursor_flush_seconds: Annotated[float, Field(ge=0.05, le=300)] = Field(
        default=default_of(ConsumerConfig, "cursor_flush_seconds"),
        description="how often the cursor is written to Redis (and always on shutdown); "
        "a crash replays at most this much, which the rev guard absorbs.",
    )
    jetstream_cursor_rewind_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=default_of(ConsumerConfig, "cursor_rewind_seconds"),
        description="how far before the cursor a reconnect to the same host resumes.",
    )
    jetstream_rotation_rewind_seconds: Annotated[float, Field(ge=0, le=86_400)] = Field(
        default=default_of(ConsumerConfig, "rotation_rewind_seconds"),
        description="how far before the cursor a connection to a different host (or a "
        "fresh start) resumes: each host stamps time_us itself, so positions differ.",
    )
    jetstream_lost_state_rewind_seconds: Annotated[float, Field(ge=0, le=7 * 86_400)] = Field(
        default=default_of(ConsumerConfig, "lost_state_rewind_seconds"),
        description="how far before its position the consumer resumes when it finds Redis "
        "lost its state (restarted empty, failed over, flushed): with the cursor, the rev "
        "guard, docket's queue and the cache gone, it replays the cache's lifetime (24 h) so "
        "every playlist edited since is recomputed. Jetstream keeps about a day.",
    )
    jetstream_backoff_base_seconds: Annotated[float, Field(gt=0, le=60)] = Field(
        default=default_of(ConsumerConfig, "backoff_base_seconds"),
        description="first reconnect delay; doubles per failure, with jitter.",
    )
    jetstream_backoff_cap_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        default=default_of(ConsumerConfig, "backoff_cap_seconds"),
        description="longest reconnect delay.",
    )
    jetstream_open_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = Field(
        default=default_of(ConsumerConfig, "open_timeout_seconds"),
        description="time bound on one websocket handshake.",
    )
    jetstream_rev_ttl_seconds: Annotated[int, Field(ge=3600, le=90 * 86_400)] = Field(
        default=default_of(ConsumerConfig, "rev_ttl_seconds"),
        description="how long the last accepted rev of a playlist is remembered; longer "
        "than any replay (Jetstream keeps about a day), so a replay is always recognised.",
    )
    jetstream_did_changes_per_minute: Annotated[float, Field(gt=0, le=100_000)] = Field(
        default=default_of(FloodLimits, "changes_per_minute"),
        description="pace of new recomputes (and forgets) one repo DID may cause once past "
        "its burst; its further tasks are deferred to this pace, never dropped, so one "
        "account editing many playlists cannot push everyone else's recomputes back. edits "
        "of a playlist whose task is still pending cost nothing (they are coalesced).",
    )
    jetstream_did_burst: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=default_of(FloodLimits, "burst"),
        description="new tasks one DID may cause at once before its pace applies.",
    )
    jetstream_did_max_pending: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=default_of(FloodLimits, "max_pending"),
        description="most pending tasks one DID may hold (ten minutes at the default pace); "
        "further playlists of that DID are not precomputed until some run (counted as "
        "skipped:flood_shed; the API still computes them on request).",
    )
    jetstream_did_max_pending_bytes: Annotated[int, Field(ge=64 * 1024, le=1 << 34)] = Field(
        default=2 * 1024 * 1024,
        description="most bytes of task arguments one DID's tasks may hold in Redis "
        "(counted as jetstream.flood.task_bytes) until they finish: pending, running, "
        "retrying (a playlist plyr.fm has not ingested yet waits up to "
        "PLAYLIST_WAIT_SECONDS), or kept as docket's run record; past it that DID's new "
        "work is shed (skipped:flood_shed).",
    )
    jetstream_max_pending_bytes: Annotated[int, Field(ge=64 * 1024, le=1 << 36)] = Field(
        default=64 * 1024 * 1024,
        description="most bytes of task arguments all DIDs' tasks together may hold in "
        "Redis until they finish (as JETSTREAM_DID_MAX_PENDING_BYTES); past it new work is "
        "shed. at least JETSTREAM_DID_MAX_PENDING_BYTES.",
    )
    jetstream_stats_seconds: Annotated[float, Field(ge=1, le=3600)] = Field(
        default=default_of(ConsumerConfig, "stats_seconds"),
        description="how often the consumer logs its counters and publishes them to Redis "
        "for `plyr-recs status`.",
    )

    # --- the API -----------------------------------------------------------------
    service_did: str = Field(
        default="did:web:recs.plyr.fm",
        description="this service's DID: the `aud` a service-auth JWT must carry.",
    )
    internal_api_token: SecretStr | None = Field(
        default=None,
        description="shared secret of plyr.fm's backend (X-Internal-Token). Unset: that "
        "way in is closed.",
    )
    plc_directory_url: str = Field(
        default="https://plc.directory",
        description="where did:plc documents are resolved, to verify service-auth JWTs.",
    )
    did_cache_seconds: Annotated[float, Field(ge=0, le=86400)] = Field(
        default=600.0, description="how long a resolved DID document (signing key) is reused."
    )
    did_resolve_timeout_seconds: Annotated[float, Field(gt=0, le=30)] = Field(
        default=3.0, description="time bound on one DID resolution."
    )
    api_client_ip_header: str | None = Field(
        default=None,
        description="the header a trusted proxy names the client's address in "
        "(`Fly-Client-IP` on Fly), for the per-client identity budget. believed only on "
        "connections from `api_trusted_proxies`; unset: the peer address is the client "
        "(issue 23: behind Fly's proxy that made every user one client).",
    )
    api_trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="addresses or CIDR networks of the proxies whose "
        "`api_client_ip_header` is believed, comma-separated. empty: none is, "
        "loopback included (X-Forwarded-For is never read).",
    )
    api_host: str = Field(default="127.0.0.1", description="address the API binds to.")
    api_port: Annotated[int, Field(ge=0, le=65535)] = Field(default=8000, description="API port.")

    # --- operating every process -----------------------------------------------
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
    ] = Field(default="INFO", description="the lowest level logged (any case).")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="'text': one readable line per record; 'json': one JSON object per "
        "line (time, level, logger, message, exception) for a log pipeline. one format "
        "per process, docket's and uvicorn's records included.",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="address the worker's and the consumer's /metrics and /health server "
        "binds to (fly.toml: 0.0.0.0, reached on the private network only).",
    )
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0,
        description="port of /metrics (Prometheus text), /health, /health/live and "
        "/health/ready in `plyr-recs worker`, `plyr-recs jetstream` and `plyr-recs api` "
        "(fly.toml: 9091, the port Fly scrapes; the API's /metrics then leaves the public "
        "port). 0: no such server, and the API serves /metrics on API_PORT.",
    )
    startup_wait_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=30.0,
        description="how long a process waits at start for the Redis and PostgreSQL it "
        "needs (a deploy may start it before them), saying which URL it waits for, before "
        "exiting with status 2.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="where traces go by OTLP/HTTP (a collector, or logfire's "
        "https://logfire-api.pydantic.dev with OTEL_EXPORTER_OTLP_HEADERS="
        "Authorization=<token>). Unset: no traces, and no cost.",
    )
    health_store_check_seconds: Annotated[float, Field(ge=1, le=3600)] = Field(
        default=30.0,
        description="how long /health/ready reuses its answer on turbopuffer (one id "
        "lookup): a dead vector store shows within this, at one cheap request per "
        "interval and process.",
    )

    @field_validator(
        "jetstream_url",
        "redis_url",
        "turbopuffer_base_url",
        "database_url",
        "turbopuffer_api_key",
        "internal_api_token",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # an empty variable in fly.toml or .env means "not set", not "connect to ''"
        # (or, for a secret, "an empty password that matches an empty header")
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("api_trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part for part in value.replace(",", " ").split() if part)
        if isinstance(value, tuple | list):
            for part in value:  # a typo fails at start-up, by name
                ipaddress.ip_network(str(part).strip(), strict=False)
        return value

    @field_validator("jetstream_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        # a list in the environment is written "wss://a/subscribe, wss://b/subscribe"
        if isinstance(value, str):
            urls = tuple(part for part in value.replace(",", " ").split() if part)
            return urls or None
        return value

    @property
    def jetstream_hosts(self) -> tuple[str, ...]:
        if self.jetstream_urls:
            return self.jetstream_urls
        return (self.jetstream_url,) if self.jetstream_url else PUBLIC_JETSTREAM_HOSTS


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """the process's settings, read once."""
    return Settings()

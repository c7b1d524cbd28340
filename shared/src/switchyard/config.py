"""Settings for every service: environment variables, an optional TOML file, sane defaults.

Precedence, highest first: keyword arguments, environment, the TOML file named by
``SWITCHYARD_CONFIG``, defaults. Nested sections use ``__`` in environment names, e.g.
``BATCHER__MAX_SIZE=500`` or ``[batcher] max_size = 500`` in the file.

Guarantee: a process reads a config file only when ``SWITCHYARD_CONFIG`` names one; what
happens to lie in its working directory never changes its settings.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_FILE_ENV = "SWITCHYARD_CONFIG"
ADMIN_TOKEN_MIN_LENGTH = 32
# Values copied from examples and templates; compared case-insensitively.
PLACEHOLDER_TOKENS = frozenset(
    {
        "change-me", "changeme", "change_me", "changeit", "replace-me", "replaceme",
        "admin", "admin-token", "secret", "password", "passw0rd", "token", "default",
        "example", "test", "dev", "dev-admin-token", "test-admin-token", "todo", "xxx",
    }
)  # fmt: skip
HOW_TO_MAKE_ONE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


class ConfigError(RuntimeError):
    """A setting has a value the service cannot run with; the message names each one."""


class KafkaSettings(BaseModel):
    topic_prefix: str = ""
    partitions: int = Field(default=6, ge=1, le=1000)
    replication_factor: int = Field(default=1, ge=1, le=10)
    # Set on the topics we create; None: replication_factor - 1 capped at 2, so a
    # partition keeps taking acks=all writes with one replica down (1 when unreplicated).
    min_insync_replicas: int | None = Field(default=None, ge=1, le=10)
    # Connection security, used by every producer, consumer and admin client
    # (switchyard.kafka.client_config.common_config).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # PEM bundle of the CAs that signed the brokers' certificates; None: the system's.
    ssl_ca_location: Path | None = None
    # tansu (the dev broker) takes about half of this to finish a group join.
    session_timeout_ms: int = Field(default=10_000, ge=1_000, le=300_000)
    producer_linger_ms: int = Field(default=2, ge=0, le=1_000)
    producer_max_buffered_messages: int = Field(default=100_000, ge=1, le=10_000_000)
    delivery_timeout_ms: int = Field(default=30_000, ge=1_000, le=600_000)

    @property
    def topic_min_insync_replicas(self) -> int:
        """``min.insync.replicas`` for new topics: never above the replication factor."""
        if self.min_insync_replicas is not None:
            return self.min_insync_replicas
        return max(1, min(2, self.replication_factor - 1))

    @field_validator("ssl_ca_location")
    @classmethod
    def _ca_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _security_is_complete(self) -> KafkaSettings:
        problems = []
        if self.security_protocol.startswith("SASL_"):
            if not self.sasl_username:
                problems.append("KAFKA__SASL_USERNAME is required")
            if self.sasl_password is None or not self.sasl_password.get_secret_value():
                problems.append("KAFKA__SASL_PASSWORD is required")
        if self.ssl_ca_location is not None and not self.security_protocol.endswith("SSL"):
            problems.append("KAFKA__SSL_CA_LOCATION needs SSL or SASL_SSL")
        if self.min_insync_replicas is not None and (
            self.min_insync_replicas > self.replication_factor
        ):
            problems.append(
                f"KAFKA__MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) is above "
                f"KAFKA__REPLICATION_FACTOR ({self.replication_factor}): no write could succeed"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=2, ge=1, le=64)
    threads: int = Field(default=16, ge=1, le=1024)
    max_body_bytes: int = Field(default=1_048_576, ge=1_024, le=104_857_600)
    user_cache_ttl_seconds: int = Field(default=300, ge=1, le=86_400)
    # The jobs API over gRPC (`switchyard-api grpc`); 0: any free port (logged).
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    # GET /metrics on the public port (the dev contract); false: 404 there, and metrics
    # only on ADMIN_PORT (served by the gunicorn master for every worker, always).
    public_metrics: bool = True


class CouponSettings(BaseModel):
    """How ``POST /api/coupons/claim`` takes stock; the coupons DESIGN.md says why."""

    # for_update: a transaction per claim behind SELECT ... FOR UPDATE (the baseline);
    # conditional: INSERT the claim, then UPDATE ... WHERE remaining_amount > 0;
    # fast: the gate of facts PostgreSQL committed, then group commit per coupon.
    strategy: Literal["for_update", "conditional", "fast"] = "fast"
    gate: bool = True
    max_batch: int = Field(default=256, ge=1, le=10_000)
    # Claimant ids of sold-out coupons cached: per coupon in Redis, in all in each process.
    gate_max_claimants: int = Field(default=100_000, ge=0, le=10_000_000)
    gate_ttl_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)
    # After a Redis error the gate is skipped this long, so a dead Redis costs nothing.
    gate_retry_seconds: float = Field(default=5.0, gt=0, le=600)


class OutboxSettings(BaseModel):
    batch_size: int = Field(default=500, ge=1, le=10_000)
    poll_interval_seconds: float = Field(default=0.05, gt=0, le=60)
    # Published rows are kept this long for inspection, then deleted.
    retention_seconds: int = Field(default=3_600, ge=0, le=30 * 86_400)


class IngestSettings(BaseModel):
    """The API's ingest endpoints (POST /logs, POST /health)."""

    # The bounded buffer between request handlers and Kafka, per API process: events and
    # bytes handed to the producer and not yet acknowledged. A request that does not fit
    # whole gets 429; its events are never produced.
    max_in_flight_events: int = Field(default=20_000, ge=1, le=1_000_000)
    max_in_flight_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=4 * 1024**3)
    # How long a request may wait for room before it gets 429 (0: answer at once).
    admission_wait_seconds: float = Field(default=0.05, ge=0, le=10)
    retry_after_seconds: int = Field(default=1, ge=1, le=3600)
    max_events_per_request: int = Field(default=10_000, ge=1, le=1_000_000)


class TopicBatchSettings(BaseModel):
    # 500: the batch-size sweep (README "Batcher") met end-to-end p99 <= 500 ms at half
    # the peak with it in both runs, and 2,000 in neither, at no throughput cost there.
    max_size: int = Field(default=500, ge=1, le=100_000)
    max_wait_seconds: float = Field(default=0.2, gt=0, le=60)
    # Consumer threads (group members) for the topic; each writes its own batches.
    workers: int = Field(default=3, ge=1, le=64)


class BatcherSettings(BaseModel):
    """The batcher: batching per topic, sinks, retries and the circuit breaker."""

    logs: TopicBatchSettings = TopicBatchSettings()
    health: TopicBatchSettings = TopicBatchSettings(max_size=1_000, max_wait_seconds=0.5, workers=1)
    sinks: list[Literal["postgres", "jsonl"]] = Field(default=["postgres", "jsonl"], min_length=1)
    jsonl_dir: Path = Path("var/sinks")
    jsonl_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=16 * 1024**3)
    jsonl_max_age_seconds: float = Field(default=300, gt=0, le=86_400)
    retry_base_seconds: float = Field(default=0.2, gt=0, le=60)
    retry_cap_seconds: float = Field(default=5.0, gt=0, le=600)
    breaker_failures: int = Field(default=3, ge=1, le=1000)
    breaker_reset_seconds: float = Field(default=2.0, gt=0, le=600)


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class FetchSettings(BaseModel):
    """Fetching URLs given by users (product images, ``http.request`` jobs)."""

    # Addresses or networks the SSRF guard lets through although they are private,
    # loopback, ...: ``FETCH__ALLOW=127.0.0.1/32,10.1.0.0/16``. Empty: none.
    allow: Annotated[tuple[IpNetwork, ...], NoDecode] = ()
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    # The whole fetch, redirects and body included.
    total_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, le=1024**3)
    max_redirects: int = Field(default=5, ge=0, le=20)
    # Fetches in flight per process, and per origin host (so one slow supplier cannot
    # take every slot).
    max_concurrency: int = Field(default=32, ge=1, le=10_000)
    max_per_host: int = Field(default=4, ge=1, le=1_000)

    @field_validator("allow", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> tuple[IpNetwork, ...]:
        items = value.split(",") if isinstance(value, str) else list(value)
        networks: list[IpNetwork] = []
        bad: list[str] = []
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=True))
            except ValueError:
                bad.append(text)
        if bad:
            raise ValueError(f"not an address or network: {', '.join(bad)}")
        return tuple(networks)


class ImageWorkerSettings(BaseModel):
    """How the image-worker compresses product images."""

    longest_side: int = Field(default=1600, ge=16, le=16_384)
    # Images with transparency are written as WebP whatever this says.
    format: Literal["jpeg", "webp"] = "jpeg"
    quality: int = Field(default=82, ge=1, le=100)
    # Refused before decoding: width x height x frames above this.
    max_pixels: int = Field(default=50_000_000, ge=1, le=1_000_000_000)
    # Products taken from Kafka at once and processed concurrently (one batch).
    max_batch: int = Field(default=16, ge=1, le=1_000)
    batch_wait_seconds: float = Field(default=0.2, gt=0, le=60)
    # Images decoded and encoded at once (threads): with max_pixels, this bounds the
    # memory compression can take (about 4 bytes per pixel per image at once).
    compress_workers: int = Field(default=2, ge=1, le=64)
    # Images held at once (downloading, waiting for a compress worker, compressing):
    # with FETCH__MAX_BYTES, this bounds the memory taken by downloaded bytes.
    max_images_in_flight: int = Field(default=32, ge=1, le=10_000)
    # A transient fetch failure (timeout, 5xx, 429, connection, DNS) is retried within
    # the product: at most this many attempts per image, exponential backoff with full
    # jitter, and no new attempt once the image has taken ``fetch_retry_budget_seconds``.
    fetch_attempts: int = Field(default=4, ge=1, le=20)
    fetch_retry_base_seconds: float = Field(default=0.5, gt=0, le=60)
    fetch_retry_cap_seconds: float = Field(default=10.0, gt=0, le=600)
    fetch_retry_budget_seconds: float = Field(default=60.0, gt=0, le=3_600)
    # A product whose processing failed for another reason than its images (PostgreSQL
    # down is retried for as long as it takes): attempts before it is marked failed and
    # its event dead-lettered; backoff between attempts.
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_base_seconds: float = Field(default=0.5, gt=0, le=60)
    retry_cap_seconds: float = Field(default=15.0, gt=0, le=600)
    # Temp files a crash left under MEDIA_ROOT are removed at start and every
    # ``sweep_interval_seconds``, once older than ``sweep_min_age_seconds``.
    sweep_interval_seconds: float = Field(default=600.0, gt=0, le=86_400)
    sweep_min_age_seconds: float = Field(default=900.0, ge=0, le=86_400)
    # How often products_by_status is refreshed (one COUNT ... GROUP BY status).
    status_refresh_seconds: float = Field(default=15.0, gt=0, le=3_600)
    # A product still pending or processing this long after its last change gets a new
    # product.created through the outbox (its event may be gone: an in-memory dev broker
    # stopped, a record dead-lettered while PostgreSQL was down). 0: never. Checked every
    # minute; processing is idempotent, so a product that was only slow is done twice at
    # worst. Keep it above the longest backlog the consumers may have.
    requeue_after_seconds: float = Field(default=1_800.0, ge=0, le=604_800)


class JobTypeLimit(BaseModel):
    """Cluster-wide limits of one job type; unset: unlimited."""

    model_config = {"extra": "forbid"}
    concurrency: int | None = Field(default=None, ge=1, le=100_000)
    rate_per_second: float | None = Field(default=None, gt=0, le=100_000)


class JobSettings(BaseModel):
    """Background jobs: the API's defaults and the job-worker (``JOBS__*``)."""

    default_max_attempts: int = Field(default=5, ge=1, le=100)
    default_timeout_seconds: int = Field(default=300, ge=1, le=86_400)
    # Per type, e.g. JOBS__LIMITS='{"http.request": {"concurrency": 3, "rate_per_second": 10}}'.
    limits: dict[str, JobTypeLimit] = Field(default_factory=dict)
    # Jobs one worker process runs at once (asyncio tasks on one event loop).
    pool_size: int = Field(default=64, ge=1, le=10_000)
    # Messages claimed in one transaction; the pool may hold this many beyond pool_size.
    max_batch: int = Field(default=200, ge=1, le=5_000)
    batch_wait_seconds: float = Field(default=0.005, gt=0, le=10)
    # A running job's lease; renewed every third of it. A worker that dies loses its
    # jobs to the reaper after this long.
    lease_seconds: float = Field(default=30.0, ge=1, le=3_600)
    # The scheduler leader's lease: a dead leader is replaced within this.
    leader_lease_seconds: float = Field(default=6.0, ge=1, le=600)
    # How often the leader promotes due delayed jobs and fires due schedules.
    tick_seconds: float = Field(default=0.2, gt=0, le=60)
    # A failed attempt waits retry_base * 2^(attempt-1), half of it jittered, capped.
    retry_base_seconds: float = Field(default=1.0, gt=0, le=3_600)
    retry_cap_seconds: float = Field(default=600.0, gt=0, le=86_400)
    # SIGTERM: running jobs get this long to finish before they go back to the queue.
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=3_600)
    # The leader re-announces a queued job unchanged this long (its message may be lost,
    # e.g. an in-memory dev broker restarted); a duplicate message is harmless.
    reannounce_after_seconds: float = Field(default=900.0, ge=10, le=604_800)
    # Succeeded and cancelled jobs (and schedule runs) are deleted this long after they
    # finished; dead jobs stay until replayed.
    keep_finished_seconds: float = Field(default=7 * 86_400, ge=60, le=365 * 86_400)
    # Bounds on what a job's result keeps (http.request keeps a body excerpt).
    max_result_bytes: int = Field(default=65_536, ge=256, le=10_485_760)
    http_body_excerpt_bytes: int = Field(default=2_048, ge=0, le=1_048_576)


class HealthCheckerSettings(BaseModel):
    """The health-checker (``HEALTH_CHECKER__*``)."""

    # A replica's shard leases: a replica that dies has its targets taken over within
    # this (plus one rebalance), so keep it at or below the shortest interval you use.
    lease_seconds: float = Field(default=5.0, ge=1, le=600)
    rebalance_seconds: float = Field(default=1.0, gt=0, le=60)
    # A full reload of this replica's targets, besides the change notices.
    resync_seconds: float = Field(default=30.0, gt=0, le=3_600)
    # Probes in flight at once, per process and per target host.
    max_in_flight: int = Field(default=1_000, ge=1, le=100_000)
    max_per_host: int = Field(default=100, ge=1, le=100_000)
    keep_alive: bool = True
    # Apply the SSRF guard (and FETCH__ALLOW) to targets. Off by default: the services a
    # health checker watches are normally internal (private addresses).
    guard: bool = False
    # Counters and last checks are written in batches this often.
    flush_seconds: float = Field(default=1.0, gt=0, le=60)
    # SIGTERM: probes in flight get this long, then the shards go back at once.
    shutdown_grace_seconds: float = Field(default=3.0, ge=0, le=300)

    @model_validator(mode="after")
    def _renewals_fit_in_a_lease(self) -> HealthCheckerSettings:
        # Targets are dropped once no renewal succeeded for 0.8 of a lease.
        if self.rebalance_seconds >= self.lease_seconds * 0.8:
            raise ValueError(
                f"rebalance_seconds ({self.rebalance_seconds}) must be below 0.8 x "
                f"lease_seconds ({self.lease_seconds}), or replicas drop their targets"
            )
        return self


class Settings(BaseSettings):
    """Everything a Switchyard process reads from its environment."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    service_name: str = "switchyard"
    environment: Literal["dev", "test", "prod"] = "dev"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/switchyard"
    # Per engine (one per process): at most pool_size + max_overflow connections; the
    # README's connection budget multiplies this by processes and replicas.
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Namespaces every Redis key, so stacks (or test runs) can share one server.
    redis_key_prefix: str = ""
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    admin_token: SecretStr | None = None
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["json", "console"] = "json"
    # Port of the /healthz /readyz /metrics server of every service (the API's too, in
    # its gunicorn master); 0 picks a free one (logged).
    admin_port: int = Field(default=9100, ge=0, le=65535)
    otel_exporter_otlp_endpoint: str | None = None
    # Where the image-worker stores compressed images (env ``MEDIA_ROOT``);
    # ``products.compressed_product_images`` holds paths relative to it.
    media_root: Path = Path("var/media")

    kafka: KafkaSettings = KafkaSettings()
    api: ApiSettings = ApiSettings()
    coupons: CouponSettings = CouponSettings()
    outbox: OutboxSettings = OutboxSettings()
    ingest: IngestSettings = IngestSettings()
    batcher: BatcherSettings = BatcherSettings()
    fetch: FetchSettings = FetchSettings()
    image_worker: ImageWorkerSettings = ImageWorkerSettings()
    jobs: JobSettings = JobSettings()
    health_checker: HealthCheckerSettings = HealthCheckerSettings()

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg2://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_only(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("admin_token")
    @classmethod
    def _strong_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        problem = None if value is None else weak_admin_token(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _prod_has_an_admin_token(self) -> Settings:
        if self.environment == "prod" and self.admin_token is None:
            raise ValueError(
                f"ADMIN_TOKEN is required when ENVIRONMENT=prod; make one with: {HOW_TO_MAKE_ONE}"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with the driver SQLAlchemy should use."""
        scheme, rest = self.database_url.split("://", 1)
        return (
            f"postgresql+psycopg2://{rest}"
            if scheme != "postgresql+psycopg2"
            else (self.database_url)
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = config_file_path()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def weak_admin_token(token: str) -> str | None:
    """Why ``token`` may not guard the admin endpoints (with how to make one); None: fine."""
    if not token.strip():
        reason = "is empty (unset it, or set a real one)"
    elif token.strip().lower() in PLACEHOLDER_TOKENS or len(set(token)) == 1:
        reason = "is a placeholder"
    elif len(token) < ADMIN_TOKEN_MIN_LENGTH:
        reason = f"is shorter than {ADMIN_TOKEN_MIN_LENGTH} characters"
    else:
        return None
    return f"the admin token {reason}; make one with: {HOW_TO_MAKE_ONE}"


def config_file_path() -> Path | None:
    """The TOML file named by ``$SWITCHYARD_CONFIG``; None when it names none."""
    named = os.environ.get(CONFIG_FILE_ENV)
    if not named:
        return None
    path = Path(named)
    if not path.is_file():
        raise ConfigError(f"{CONFIG_FILE_ENV}={named}: no such file")
    return path


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, raising :class:`ConfigError` that names every bad value."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "__".join(str(part) for part in error["loc"]).upper()
            shown = _shown(name, error.get("input"))
            # A check across settings (no location) names its settings in its message.
            problems.append(f"  {name}{shown}: {error['msg']}" if name else f"  {error['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(problems)) from None


def _shown(name: str, value: Any) -> str:
    """``=<value>`` for the error message; never a secret's value, nor a whole section."""
    if "TOKEN" in name or "PASSWORD" in name or isinstance(value, dict) or not name:
        return ""
    return f"={value!r}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()

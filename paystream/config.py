"""Configuration: one settings object, read from ``PAYSTREAM_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".paystream"


def _default_cache() -> Path:
    return Path.home() / ".cache" / "paystream"


class PaystreamSettings(BaseSettings):
    """Every knob of paystream; each field is set by ``PAYSTREAM_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="PAYSTREAM_", extra="ignore")

    kafka_bootstrap: str | None = Field(
        default=None,
        description="Bootstrap servers of an existing cluster; unset means the local broker.",
    )
    home: Path = Field(
        default_factory=_default_home,
        description="State directory: local broker data, pid file, default SQLite database.",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache,
        description="Where the Kafka jars resolved by Maven are kept (outside the repository).",
    )
    namespace: str = Field(
        default="paystream",
        pattern=r"^[A-Za-z0-9._-]{1,80}$",
        description="Prefix of every topic and consumer group, so several stacks share a cluster.",
    )
    schema_registry_url: str | None = Field(
        default=None,
        description="Confluent-compatible Schema Registry; unset means schemas/manifest.json.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the read models; unset means an SQLite file in home.",
    )
    max_amount_minor: int = Field(
        default=10_000_000,
        gt=0,
        description="Largest single payment, in minor units, for currencies without an override.",
    )
    max_amount_minor_by_currency: dict[str, int] = Field(
        default_factory=dict,
        description='Per-currency maximum in minor units, e.g. {"JPY": 1000000}.',
    )
    replication_factor: int = Field(
        default=1,
        gt=0,
        description="Replication factor of the topics paystream creates (1 on the local broker).",
    )
    broker_heap: str = Field(default="512m", description="Heap size of the local broker's JVM.")
    session_timeout_ms: int = Field(
        default=10_000,
        gt=0,
        description="Consumer-group session timeout; joining a group takes about half of it.",
    )

    business_timezone: str = Field(
        default="Asia/Shanghai",
        description="IANA time zone whose calendar day is the business day of daily limits.",
    )
    risk_gather_timeout_ms: int = Field(
        # Long enough to ride out a backlog: the timeout is for features that never come.
        default=60_000,
        gt=0,
        description="How long a payment's risk case waits for its features before it is held.",
    )

    worker_roles: list[str] = Field(
        default_factory=lambda: ["risk", "routing"],
        description='The processors a worker runs, e.g. ["risk"] or ["routing"] (JSON list).',
    )
    routing_max_age_seconds: int = Field(
        default=900,
        gt=0,
        description="A payment cleared by risk longer ago than this expires instead of being "
        "routed (a router reaching old history, a backlog after a long outage).",
    )
    channels_file: Path | None = Field(
        default=None,
        description="The channels' credentials (JSON); unset means <home>/channels.json.",
    )
    notify_port: int = Field(
        default=8470,
        ge=0,
        le=65535,
        description="Loopback port where the dispatcher receives channel notifications.",
    )
    notify_base_url: str | None = Field(
        default=None,
        description="The notification URL the channels are given, without /<channel>; unset "
        "means http://127.0.0.1:<notify_port>/notify.",
    )
    channel_query_seconds: float = Field(
        default=0.5,
        gt=0,
        description="How long an unsettled charge waits for a notification before a query.",
    )

    def resolved_channels_file(self) -> Path:
        """Where the channels' credentials are read from."""
        return self.channels_file or self.home / "channels.json"

    def notify_url(self, channel: str) -> str:
        """The URL a channel is told to send its notifications about ``channel`` to."""
        base = self.notify_base_url or f"http://127.0.0.1:{self.notify_port}/notify"
        return f"{base.rstrip('/')}/{channel}"

    def resolved_database_url(self) -> str:
        """The read-model database URL, defaulting to an SQLite file under ``home``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'paystream.db'}"

    def max_amount_for(self, currency: str) -> int:
        """The configured single-payment maximum for ``currency``, in minor units."""
        return self.max_amount_minor_by_currency.get(currency, self.max_amount_minor)

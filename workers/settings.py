"""Courier's settings: one class, read once from ``COURIER_*`` variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts import Topics


class Settings(BaseSettings):
    """Every knob Courier has; see the README's Configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="COURIER_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongodb_uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    mongodb_database: str = "courier"
    mongodb_lookup: Literal["auto", "in", "point"] = "auto"
    """How to fetch many documents by id; ``auto`` asks the server what it is."""

    topic_prefix: str = ""
    group_prefix: str = "courier"
    partitions: int = Field(default=6, ge=1)
    """Partitions of the inbound topics: the ceiling on parallel workers."""

    directory_cache_size: int = Field(default=10_000, ge=0)
    """Users, and as many conversations, each process keeps; 0 turns it off."""

    batch_max_records: int = Field(default=500, ge=1)
    batch_timeout_ms: int = Field(default=20, ge=1)
    fetch_partition_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Most bytes prefetched per partition: with the batch size, bounds memory."""
    retry_initial_s: float = Field(default=0.1, gt=0)
    retry_max_s: float = Field(default=5.0, gt=0)
    record_attempts: int = Field(default=3, ge=1)
    """Tries of a record that fails for an unknown reason before it is dead-lettered."""
    park_timeout_s: float = Field(default=900.0, gt=0)
    """How long a record may wait for a missing entity before it is dead-lettered."""
    park_sweep_s: float = Field(default=10.0, gt=0)

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    """Port of /metrics, /healthz and /readyz; 0 serves none."""
    lag_refresh_s: float = Field(default=15.0, ge=1.0)
    """Seconds between readings of the consumer-lag gauge (at least 1)."""
    shutdown_grace_s: float = Field(default=25.0, gt=0)
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @property
    def topics(self) -> Topics:
        return Topics(prefix=self.topic_prefix)

    def group(self, worker: str) -> str:
        """The consumer group of a worker; deployments with their own topic
        prefix get their own groups, so they never rebalance each other."""
        return f"{self.group_prefix}.{self.topic_prefix}{worker}"

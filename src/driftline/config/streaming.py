"""Config of streaming inference: the Kafka connection, topics, consumer group and micro-batches."""

from __future__ import annotations

from pydantic import Field

from driftline.config.base import Section


class StreamingConfig(Section):
    bootstrap_servers: str | None = Field(
        None, description="Kafka bootstrap servers (host:port,...); none: `driftline stream` is not configured."
    )

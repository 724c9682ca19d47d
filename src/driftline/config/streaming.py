"""Config of streaming inference: the Kafka connection, topics, consumer group and micro-batches."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from driftline.config.base import Section

KAFKA_PASSWORD_ENV = "DRIFTLINE_KAFKA_PASSWORD"
KAFKA_BOOTSTRAP_ENV = "DRIFTLINE_KAFKA_BOOTSTRAP_SERVERS"  # a connection setting: the environment wins


class StreamingConfig(Section):
    """`driftline stream`: a Kafka topic scored in micro-batches by the champion (docs/deployment.md)."""

    bootstrap_servers: str | None = Field(
        None,
        description=f"Kafka bootstrap servers (host:port,...); the environment variable {KAFKA_BOOTSTRAP_ENV} wins. "
        "none (and the variable unset): `driftline stream` is not configured.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How the client talks to the brokers: TLS (SSL), SASL login, both, or neither."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism with a SASL_* security_protocol (none: PLAIN)."
    )
    sasl_username: str | None = Field(None, description="SASL user name with a SASL_* security_protocol.")
    sasl_password_env: str = Field(
        KAFKA_PASSWORD_ENV,
        description="Environment variable holding the SASL password (a secret: never in the config).",
    )
    ssl_ca_location: str | None = Field(
        None, description="CA certificate file (PEM) that signed the brokers' certificates; none: the system's."
    )
    input_topic: str = Field("driftline-requests", min_length=1, description="Topic of the rows to score (JSON).")
    output_topic: str = Field(
        "driftline-predictions", min_length=1, description="Topic of the answers: one message per input, keyed by id."
    )
    dead_letter_topic: str = Field(
        "driftline-dead-letters",
        min_length=1,
        description="Topic of the messages that could not be scored, each with the reason in its headers and body.",
    )
    group_id: str = Field(
        "driftline-stream",
        min_length=1,
        description="Consumer group: consumers with the same group share the input topic's partitions.",
    )
    batch_size: int = Field(500, ge=1, le=100_000, description="Most messages scored together (one micro-batch).")
    max_wait_seconds: float = Field(
        0.5, gt=0, le=60, description="Longest wait to fill a micro-batch; a partial one is scored after this."
    )
    metrics_host: str = Field("127.0.0.1", description="Address of the consumer's /metrics and /health.")
    metrics_port: int = Field(
        9108, ge=0, le=65535, description="Port of the consumer's /metrics and /health (0: any free port, logged)."
    )
    poll_seconds: float = Field(
        10, gt=0, description="How often the consumer reads the registry's aliases: a promotion is picked up within it."
    )

    @model_validator(mode="after")
    def _sasl_needs_a_user(self) -> StreamingConfig:
        if self.security_protocol.startswith("SASL") and not self.sasl_username:
            raise ValueError(f"sasl_username is required with security_protocol {self.security_protocol}")
        if len({self.input_topic, self.output_topic, self.dead_letter_topic}) < 3:
            raise ValueError("input_topic, output_topic and dead_letter_topic must be three different topics")
        return self

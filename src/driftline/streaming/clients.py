"""The Kafka clients (confluent-kafka, librdkafka): their settings from the config, and the mock broker of tests.

The only module that imports confluent_kafka. The consumer commits by hand (never automatically) and the producer is
idempotent and never gives a message up (`message.timeout.ms` 0): while the broker is away, librdkafka reconnects
on its own and a flush waits for it, so nothing is committed before its outputs are on the broker.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from driftline.config.streaming import KAFKA_BOOTSTRAP_ENV, StreamingConfig
from driftline.errors import ConfigError, DriftlineError

__all__ = ["Consumer", "KafkaError", "KafkaException", "Message", "Producer", "TopicPartition"]

STATS_INTERVAL_MS = 5000  # how often librdkafka reports the consumer lag (/metrics)


def connection_settings(cfg: StreamingConfig, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """librdkafka's connection settings: the brokers (${KAFKA_BOOTSTRAP_ENV} wins), TLS and SASL; the password from
    `sasl_password_env`."""
    environ = os.environ if environ is None else environ
    servers = bootstrap_servers(cfg, environ)
    if not servers:
        raise ConfigError(
            f"streaming.bootstrap_servers is not set (nor ${KAFKA_BOOTSTRAP_ENV}): name the brokers, host:port,..."
        )
    settings: dict[str, Any] = {
        "bootstrap.servers": servers,
        "security.protocol": cfg.security_protocol,
    }
    if cfg.ssl_ca_location:
        settings["ssl.ca.location"] = cfg.ssl_ca_location
    if cfg.security_protocol.startswith("SASL"):
        password = environ.get(cfg.sasl_password_env)
        if not password:
            raise ConfigError(
                f"streaming.security_protocol is {cfg.security_protocol} but ${cfg.sasl_password_env} is not set: "
                "put the SASL password there"
            )
        settings |= {
            "sasl.mechanism": cfg.sasl_mechanism or "PLAIN",
            "sasl.username": cfg.sasl_username,
            "sasl.password": password,
        }
    return settings


def bootstrap_servers(cfg: StreamingConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The brokers to connect to: ${KAFKA_BOOTSTRAP_ENV} when set, else the config's."""
    return (os.environ if environ is None else environ).get(KAFKA_BOOTSTRAP_ENV) or cfg.bootstrap_servers


def consumer(
    cfg: StreamingConfig,
    group_id: str,
    on_error: Callable[[KafkaError], None] | None = None,
    on_stats: Callable[[str], None] | None = None,
) -> Consumer:
    """A consumer of the group that commits only when told, from the earliest offset the first time."""
    settings = connection_settings(cfg) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
    }
    if on_error is not None:
        settings["error_cb"] = on_error
    if on_stats is not None:
        settings |= {"statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": on_stats}
    return Consumer(settings)


class Sender:
    """An idempotent producer that waits out an outage: a message is retried until the broker takes it, and
    `flush` returns once every message sent is on the broker, or raises if the broker refused one for good."""

    def __init__(self, cfg: StreamingConfig, on_error: Callable[[KafkaError], None] | None = None):
        settings = connection_settings(cfg) | {
            "enable.idempotence": True,
            "message.timeout.ms": 0,  # never give a message up: an outage is waited out
            "linger.ms": 5,
            "compression.type": "lz4",
            "delivery.report.only.error": True,
            "on_delivery": self._delivered,
        }
        if on_error is not None:
            settings["error_cb"] = on_error
        self.producer = Producer(settings)
        self._refused: list[str] = []

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._refused.append(f"{message.topic()}: {error.str()}")

    def send(self, topic: str, value: bytes, key: bytes | None = None, headers: list | None = None) -> None:
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, headers=headers)
                return
            except BufferError:  # the local queue is full (the broker is away or slow): let it take some first
                self.producer.poll(0.5)

    def flush(self) -> None:
        while self.producer.flush(5.0) > 0:
            pass
        if self._refused:
            refused, self._refused = self._refused, []
            raise DriftlineError(f"Kafka refused {len(refused)} messages, e.g. {refused[0]}")


def serve_mock_broker() -> None:
    """librdkafka's mock cluster (one broker, the Kafka protocol on 127.0.0.1) for as long as this process lives;
    prints its address. The broker of the integration tests and the benchmark: no Kafka broker installs here."""
    holder = Producer({"test.mock.num.brokers": 1, "bootstrap.servers": "", "log_level": 3})
    brokers = holder.list_topics(timeout=30).brokers.values()
    print(",".join(f"{broker.host}:{broker.port}" for broker in brokers), flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    sys.exit(0)


if __name__ == "__main__":
    serve_mock_broker()

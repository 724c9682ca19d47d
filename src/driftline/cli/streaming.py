"""`driftline stream` and `driftline stream replay-dead-letters`: scoring a Kafka topic in micro-batches."""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from rich.markup import escape

from driftline.cli.render import console
from driftline.config import load_config
from driftline.errors import ConfigError


def add_commands(commands: argparse._SubParsersAction, command: Callable[..., argparse.ArgumentParser]) -> None:
    """The `stream` command of the parser."""
    stream = commands.add_parser(
        "stream",
        help="score a Kafka topic with the champion in micro-batches: answers, dead letters, the prediction log",
    )
    stream.add_argument("--config", default=None, help="config YAML (its streaming: section)")
    stream.add_argument(
        "--metrics-host", default=None, help="address of /metrics and /health (default: streaming.metrics_host)"
    )
    stream.add_argument(
        "--metrics-port", type=int, default=None, help="port of /metrics and /health (default: streaming.metrics_port)"
    )
    stream.set_defaults(handler=cmd_stream)
    actions = stream.add_subparsers(dest="stream_command", required=False)
    replay = command(
        "replay-dead-letters",
        cmd_replay_dead_letters,
        "send the dead letters (or the fixed messages of a file) back to the input topic",
        group=actions,
    )
    replay.add_argument(
        "--fixed",
        default=None,
        help="JSON-lines file of fixed messages, one message value per line (all checked first)",
    )


def cmd_stream(args: argparse.Namespace) -> None:
    from driftline.registry import Registry, registry_folders
    from driftline.streaming.clients import bootstrap_servers
    from driftline.streaming.consumer import StreamScorer
    from driftline.streaming.telemetry import MetricsServer

    if args.config is None:
        raise ConfigError("stream needs --config C: the config with a streaming: section")
    cfg = load_config(args.config)
    streaming = cfg.streaming
    logging.getLogger("driftline.stream").setLevel(logging.INFO)
    scorer = StreamScorer(cfg, Registry(cfg), registry_folders(cfg).prediction_log, progress=_say)
    port = streaming.metrics_port if args.metrics_port is None else args.metrics_port
    host = args.metrics_host or streaming.metrics_host
    server = MetricsServer(scorer.metrics, scorer.health, host, port)
    for received in (signal.SIGTERM, signal.SIGINT):
        signal.signal(received, lambda *_: scorer.stop())
    champion = scorer.start()
    server.start()
    console.print(
        f"streaming {streaming.input_topic} → {streaming.output_topic} (dead letters: {streaming.dead_letter_topic}) "
        f"on {bootstrap_servers(streaming)} as group {streaming.group_id}: micro-batches of {streaming.batch_size} "
        f"or {streaming.max_wait_seconds:g} s, champion v{champion.ref.version}; GET {server.address}/metrics "
        "/health; Ctrl-C stops",
        highlight=False,
        soft_wrap=True,
    )
    try:
        scorer.run()
    finally:
        server.stop()
    totals = scorer.totals
    console.print(f"stopped: scored {totals['scored']}, dead letters {totals['dead_letters']}, offsets committed")


def cmd_replay_dead_letters(args: argparse.Namespace) -> None:
    from driftline.streaming.dead_letters import replay

    cfg = load_config(args.config)
    replayed = replay(cfg, Path(args.fixed) if args.fixed else None, progress=_say)
    console.print(f"sent {replayed.sent} messages of {replayed.source} to {cfg.streaming.input_topic}")


def _say(line: str) -> None:
    console.print(escape(line), highlight=False, soft_wrap=True)

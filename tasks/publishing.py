"""Prefect artifacts under stable keys, so the UI shows each model's latest table and its history."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from driftline.config import DriftlineConfig


def artifact_key(cfg: DriftlineConfig, topic: str) -> str:
    """Keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", f"{cfg.registry.model_name}-{topic}".lower()).strip("-")


def publish_table(cfg: DriftlineConfig, topic: str, rows: list[dict], description: str) -> None:
    create_table_artifact(table=rows, key=artifact_key(cfg, topic), description=description)


def publish_markdown(cfg: DriftlineConfig, topic: str, markdown: str, description: str) -> None:
    create_markdown_artifact(markdown=markdown, key=artifact_key(cfg, topic), description=description)


def links_markdown(links: dict[str, str | None], run_id: str) -> str:
    """Markdown links to what MLflow holds (those it has an address for), and the run id to look it up by."""
    return " · ".join([f"[{label}]({url})" for label, url in links.items() if url] + [f"MLflow run `{run_id}`"])

"""Config of A/B tests: the unit a test randomizes, where business outcomes land, and the statistics' settings."""

from __future__ import annotations

from pydantic import Field

from driftline.config.base import Section


class AbConfig(Section):
    unit_column: str | None = Field(
        None, description="Column naming the unit a test randomizes (a customer). none: dataset.id_column."
    )

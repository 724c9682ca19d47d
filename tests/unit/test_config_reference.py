"""docs/configuration.md is generated from the config models: its tables are what the models say, field by field."""

import re

import pytest
from pydantic import BaseModel
from testkit.paths import PROJECT_ROOT

from driftline.config import DriftlineConfig
from driftline.config.reference_page import REGENERATE, main, render_page, section_blocks

PAGE = PROJECT_ROOT / "docs" / "configuration.md"


def test_the_configuration_reference_is_what_the_config_models_generate():
    text = PAGE.read_text()
    assert render_page(text) == text, f"docs/configuration.md differs from the config models; run: {REGENERATE}"


def test_every_field_of_the_config_tree_has_a_row_with_its_description():
    def leaves(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
        found = {}
        for name, field in model.model_fields.items():
            kind = field.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found |= leaves(kind, f"{prefix}{name}.")
            else:
                found[f"{prefix}{name}"] = field.description
        return found

    fields = leaves(DriftlineConfig)
    assert all(fields.values()), [path for path, about in fields.items() if not about]
    rows = {
        ("" if section == "top level" else f"{section}.") + re.match(r"\| `([^`]+)`", line)[1]
        for section, block in section_blocks().items()
        for line in block.splitlines()
        if line.startswith("| `")
    }
    assert rows == set(fields)


def test_defaults_are_rendered_from_the_models_as_yaml_values():
    rows = {
        line.split(" | ")[0].strip("| `"): line.split(" | ")[1]
        for block in section_blocks().values()
        for line in block.splitlines()
        if line.startswith("| `")
    }
    assert rows["target"] == "required"  # dataset.target
    assert rows["id_column"] == "none"
    assert rows["csv_delimiter"] == '`","`'
    assert rows["max_abs_value"] == "`1e15`"
    assert rows["reproduce_tolerance"] == "`1e-6`"
    assert rows["allowed_modules"] == '`["sklearn"]`'
    assert rows["allow_new_classes"] == "`false`"
    # A nested section's default sets its fields: each schedule has its own cron.
    assert rows["drift_monitoring.cron"] == '`"0 3 * * *"`'
    assert rows["events"] == "all nine"


def test_the_values_a_field_takes_are_listed_from_its_type():
    dataset = section_blocks()["dataset"]
    assert "One of `binary` \\| `multiclass` \\| `regression`." in dataset
    assert "Each value one of `numeric` \\| `categorical`." in dataset


def test_a_page_without_a_section_s_block_is_refused_naming_it():
    text = PAGE.read_text().replace("<!-- generated: rollout -->", "")
    with pytest.raises(ValueError, match=r"missing \['rollout'\]"):
        render_page(text)


def test_check_mode_fails_on_a_stale_page_and_says_how_to_regenerate(tmp_path, capsys):
    page = tmp_path / "configuration.md"
    page.write_text(PAGE.read_text().replace("| `max_rows` | `10000` |", "| `max_rows` | `500` |"))
    assert main([str(page), "--check"]) == 1
    assert capsys.readouterr().err.strip().endswith(f"differs from the config models; regenerate it: {REGENERATE}")
    assert main([str(page)]) == 0
    assert page.read_text() == PAGE.read_text()

"""The configuration reference (docs/configuration.md) generated from the config models: every field's default and
meaning (`Field(description=...)`), one section per top-level section, written between markers in the page.

Regenerate the page after changing a field: `python -m driftline.config.reference_page docs/configuration.md`.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from driftline.config.root import DriftlineConfig

TOP_LEVEL = "top level"
REGENERATE = "python -m driftline.config.reference_page docs/configuration.md"
BLOCK = re.compile(r"(<!-- generated: (?P<section>[^>]+?) -->\n).*?(<!-- end generated -->)", re.DOTALL)
COUNTS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
HEADER = "| field | default | meaning |\n|---|---|---|"
_REQUIRED = object()  # a field's default when it has none
_UnionType = type(int | None)  # `X | None` written with the operator (typing.Union covers Optional[X])


def render_page(page: str, root: type[BaseModel] = DriftlineConfig) -> str:
    """The page with every generated block rewritten from the models; the text outside the blocks is kept as is.
    Each top-level section (and the top level's own fields) has exactly one block."""
    sections = section_blocks(root)
    found = [match["section"] for match in BLOCK.finditer(page)]
    unknown = sorted(set(found) - set(sections))
    missing = [name for name in sections if name not in found]
    repeated = sorted({name for name in found if found.count(name) > 1})
    if unknown or missing or repeated:
        raise ValueError(
            f"generated blocks: unknown {unknown}, missing {missing}, repeated {repeated}; each section needs one "
            f"'<!-- generated: <section> -->' ... '<!-- end generated -->' block (sections: {list(sections)})"
        )
    return BLOCK.sub(lambda match: f"{match[1]}{sections[match['section']]}\n{match[3]}", page)


def section_blocks(root: type[BaseModel] = DriftlineConfig) -> dict[str, str]:
    """Markdown per top-level section, keyed by its name (`top level` for the root's own fields)."""
    scalars = {name: field for name, field in root.model_fields.items() if _section_model(field) is None}
    heading = "## Top level: " + ", ".join(f"`{name}`" for name in scalars)
    blocks = {TOP_LEVEL: _block(heading, _rows(scalars, None, ""))}
    for name, field in root.model_fields.items():
        model = _section_model(field)
        if model is not None:
            blocks[name] = _section(model, _default_of(field), name, "", 2)
    return blocks


def _section(
    model: type[BaseModel], default: BaseModel | None, path: str, relative: str, level: int, about: str | None = None
) -> str:
    """The table of a section's own fields, then each nested section under its own heading (rows named relative to
    the top-level section, as they are written under it in YAML), opened by the nested field's description."""
    fields = {name: field for name, field in model.model_fields.items() if _section_model(field) is None}
    parts = [_block(f"{'#' * level} `{path}`", _rows(fields, default, relative), about)]
    for name, field in model.model_fields.items():
        nested = _section_model(field)
        if nested is not None:
            value = getattr(default, name) if default is not None else _default_of(field)
            parts.append(_section(nested, value, f"{path}.{name}", f"{relative}{name}.", 3, field.description))
    return "\n\n".join(parts)


def _block(heading: str, rows: list[str], about: str | None = None) -> str:
    lines = [heading]
    if about:
        lines += ["", " ".join(about.split())]
    if rows:
        lines += ["", HEADER, *rows]
    return "\n".join(lines)


def _rows(fields: dict[str, FieldInfo], default: BaseModel | None, relative: str) -> list[str]:
    rows = []
    for name, field in fields.items():
        if not field.description:
            raise ValueError(f"{relative}{name}: no description; give the field Field(description=...)")
        value = _default_value(name, field, default)
        meaning = " ".join(field.description.split()) + _choices(field.annotation)
        rows.append(f"| `{relative}{name}` | {_escape(_cell(value, field.annotation))} | {_escape(meaning)} |")
    return rows


def _default_value(name: str, field: FieldInfo, default: BaseModel | None) -> Any:
    """The field's value in its section's default (a nested section's default may set it), else its own default."""
    if default is not None:
        return getattr(default, name)
    if field.is_required():
        return _REQUIRED
    return field.get_default(call_default_factory=True)


def _default_of(field: FieldInfo) -> BaseModel | None:
    return None if field.is_required() else field.get_default(call_default_factory=True)


def _section_model(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _cell(value: Any, annotation: Any) -> str:
    if value is _REQUIRED:
        return "required"
    if value is None:
        return "none"
    every = _allowed(_item_type(annotation))
    if isinstance(value, list) and every and value == every and len(every) > 1:
        return f"all {COUNTS[len(every)] if len(every) < len(COUNTS) else len(every)}"
    return f"`{_yaml_scalar(value)}`"


def _yaml_scalar(value: Any) -> str:
    """A default as it is written in the YAML file."""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        plain = value and value == value.strip() and not set(value) & set(",:#&*!|>'\"%@`[]{}")
        return value if plain else json.dumps(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | dict | BaseModel):
        return json.dumps(to_jsonable_python(value))
    return str(value)


def _number(value: float) -> str:
    """As a person writes it: 2 rather than 2.0, 1e15 rather than 1000000000000000.0, 1e-6 rather than 1e-06."""
    if not math.isfinite(value):
        return repr(value)
    mantissa, _, exponent = (f"{value:.15g}" if value.is_integer() else repr(value)).partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def _choices(annotation: Any) -> str:
    """The values a field takes, when its type names them: `a` | `b` (one), any of them (a list), per entry (a map)."""
    origin = typing.get_origin(annotation)
    if origin is list:
        allowed = _allowed(_item_type(annotation))
        return f" Any of {', '.join(f'`{value}`' for value in allowed)}." if allowed else ""
    if origin is dict:
        allowed = _allowed(typing.get_args(annotation)[1])
        return f" Each value one of {' | '.join(f'`{value}`' for value in allowed)}." if allowed else ""
    allowed = _allowed(annotation)
    return f" One of {' | '.join(f'`{value}`' for value in allowed)}." if allowed else ""


def _item_type(annotation: Any) -> Any:
    return typing.get_args(annotation)[0] if typing.get_origin(annotation) is list else None


def _allowed(annotation: Any) -> list[str]:
    """The values of an Enum or a Literal (None allowed beside them); empty for any other type."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [str(member.value) for member in annotation]
    if typing.get_origin(annotation) is Literal:
        return [str(value) for value in typing.get_args(annotation)]
    if typing.get_origin(annotation) in (typing.Union, _UnionType):
        kinds = [kind for kind in typing.get_args(annotation) if kind is not type(None)]
        return _allowed(kinds[0]) if len(kinds) == 1 else []
    return []


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m driftline.config.reference_page",
        description="Rewrite the generated tables of the configuration reference from the config models.",
    )
    parser.add_argument("page", type=Path, help="the page to rewrite, e.g. docs/configuration.md")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when the page is out of date")
    args = parser.parse_args(argv)
    text = args.page.read_text(encoding="utf-8")
    generated = render_page(text)
    if generated == text:
        return 0
    if args.check:
        print(f"{args.page} differs from the config models; regenerate it: {REGENERATE}", file=sys.stderr)
        return 1
    args.page.write_text(generated, encoding="utf-8")
    print(f"{args.page}: rewritten from the config models")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The docs agree with the code: every list or count a page gives that the code can answer (deployments, commands and
their options, exit codes, config sections and fields, flows, tasks and their retries, notification events, make
targets, the tests a page names) is read from the page and compared with the code, so neither drifts alone."""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import pkgutil
import re
import textwrap
import typing

import pytest
from prefect import Flow, Task
from pydantic import BaseModel
from testkit.paths import PROJECT_ROOT

import driftline.flows as flows
import driftline.tasks as tasks
from driftline.cli import main as cli
from driftline.config import DriftlineConfig, NotificationEvent
from driftline.flows.deploy import FLOWS

DOCS = PROJECT_ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [PROJECT_ROOT / "README.md"]
NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
COUNT = r"\b(" + "|".join(NUMBERS) + r"|\d+)"


def page(name: str) -> str:
    return (DOCS / name).read_text()


def section(text: str, heading: str) -> str:
    """From the heading line that matches `heading` (a regex) to the next heading of the same level or higher."""
    level = heading.split(" ")[0]
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(heading, line))
    ends = (
        i
        for i in range(start + 1, len(lines))
        if re.match(r"#+ ", lines[i]) and len(lines[i].split(" ")[0]) <= len(level)
    )
    return "\n".join(lines[start : next(ends, len(lines))])


def table_rows(text: str, header: str | None = None) -> list[list[str]]:
    """The body rows of the markdown tables in `text` (only those whose header row starts with `header`), each as
    its cells; an escaped pipe (\\|) stays inside its cell."""
    rows, table_header = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            table_header = None
            continue
        if table_header is None:
            table_header = line
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if (header is None or table_header.startswith(header)) and not set(cells[0]) <= set("-: "):
            rows.append(cells)
    return rows


def ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def counted(word: str) -> int:
    return NUMBERS.get(word.lower()) or int(word)


# --- deployments --------------------------------------------------------------------------------------------------
def test_every_count_of_deployments_is_the_number_in_prefect_yaml():
    texts = {path.name: path.read_text() for path in PAGES}
    texts["prefect.yaml"] = "\n".join(
        line for line in (PROJECT_ROOT / "prefect.yaml").read_text().splitlines() if line.startswith("#")
    )
    counts = {
        (name, match.group(0))
        for name, text in texts.items()
        for match in re.finditer(COUNT + r" deployments\b", text, re.IGNORECASE)
    }
    assert counts, "no page counts the deployments: the test reads nothing"
    assert [found for found in counts if counted(found[1].split()[0]) != len(FLOWS)] == []


def test_the_deployment_table_lists_every_deployment_of_prefect_yaml():
    rows = table_rows(section(page("deployment.md"), "## The .* deployments"), "| deployment |")
    documented = [ticked(row[0])[0].removesuffix("/<model>") for row in rows]
    assert documented == FLOWS
    entrypoints = [ticked(row[1])[0] for row in rows]
    for flow_name, entrypoint in zip(FLOWS, entrypoints, strict=True):
        path, function = entrypoint.split(":")
        flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)
        assert isinstance(flow, Flow) and flow.name == flow_name, entrypoint


# --- the driftline command ----------------------------------------------------------------------------------------
def subcommands(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    """Each command's parser by its words: `run`, and for a group of commands each of them (`archive list`)."""
    found = [a for a in (parser or cli.build_parser())._actions if isinstance(a, argparse._SubParsersAction)]
    if not found:
        return {}
    parsers = {}
    for name, sub in found[0].choices.items():
        nested = subcommands(sub)
        parsers.update({f"{name} {words}": nested_parser for words, nested_parser in nested.items()})
        if not nested or sub.get_default("handler") is not None:  # a command that has subcommands too (`stream`)
            parsers[name] = sub
    return parsers


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")} - {"--help"}


def test_cli_md_lists_every_command_with_exactly_its_options():
    parsers, documented = subcommands(), {}
    for row in table_rows(page("cli.md"), "| command |"):
        usage = ticked(row[0])[0]
        words = usage.split()
        documented[" ".join(words[1:3]) if " ".join(words[1:3]) in parsers else words[1]] = usage
    assert sorted(documented) == sorted(parsers)
    wrong = {
        name: (sorted(set(re.findall(r"--[a-z][a-z-]*", usage))), sorted(options(parsers[name])))
        for name, usage in documented.items()
        if set(re.findall(r"--[a-z][a-z-]*", usage)) != options(parsers[name])
    }
    assert wrong == {}, "command: (documented options, the parser's options)"
    stack_actions = next(a for a in parsers["stack"]._actions if a.dest == "action").choices
    assert f"stack {'|'.join(stack_actions)}" in documented["stack"]


# What each exit code means, in words every page that explains the code uses.
MEANINGS = {
    cli.EXIT_FAILED: "failed",
    cli.EXIT_CONFIG: "config",
    cli.EXIT_REJECTED: "rejected",
    cli.EXIT_REFUSED: "refused",
    cli.EXIT_NO_CHAMPION: "no champion",
    cli.EXIT_VIOLATION: "invariant",
    cli.EXIT_FLAGGED: "flagged",
}


def test_exit_codes_documented_are_the_ones_the_cli_returns():
    codes = {value for name, value in vars(cli).items() if name.startswith("EXIT_")}
    assert set(MEANINGS) == codes
    documented = {int(row[0]): row[1] for row in table_rows(section(page("cli.md"), "## Exit codes"), "| code |")}
    assert set(documented) == {0} | codes
    assert {code: text for code, text in documented.items() if code and MEANINGS[code] not in text} == {}
    readme = re.search(
        r"exit code that says what\s+happened \((.*?)\)\.", (PROJECT_ROOT / "README.md").read_text(), re.DOTALL
    )[1]
    explained = dict(re.findall(r"(\d): ([^,]+)", readme))
    assert explained and {c: t for c, t in explained.items() if MEANINGS[int(c)] not in " ".join(t.split())} == {}
    header = next(line for line in page("governance.md").splitlines() if line.startswith("| command | 0 |"))
    assert {int(code) for code in re.findall(r"\| (\d+) ", header)} <= set(documented)


def flows_run_by(command: argparse.ArgumentParser) -> list[str]:
    """The flows a command's handler imports (the CLI imports them inside the command)."""
    source = inspect.getsource(command.get_default("handler"))
    return [
        name.strip()
        for module, names in re.findall(r"from (driftline\.flows\.\w+) import ([\w, ]+)", source)
        for name in names.split(",")
        if isinstance(getattr(importlib.import_module(module), name.strip()), Flow)
    ]


def test_the_commands_said_to_run_a_flow_are_those_that_do():
    listed = re.search(r"The commands that run a flow \(([^)]*)\)", page("cli.md"))[1]
    assert sorted(ticked(listed)) == sorted(name for name, parser in subcommands().items() if flows_run_by(parser))


# --- config -------------------------------------------------------------------------------------------------------
def config_leaves(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field of the config tree by its dotted path; a section inside a section contributes its own fields."""
    found = set()
    for name, field in model.model_fields.items():
        kind = field.annotation
        nested = isinstance(kind, type) and issubclass(kind, BaseModel)
        found |= config_leaves(kind, f"{prefix}{name}.") if nested else {f"{prefix}{name}"}
    return found


def documented_fields(text: str) -> set[str]:
    """The dotted paths configuration.md documents: a row's `a.b` / `.c` is a.b and a.c; `x.*` stands for every
    field of x; under a heading of one section the rows are relative to it; "One entry each for `p`, `q`" repeats
    the rows under each entry."""
    found = set()
    for block in re.split(r"\n(?=## )", text)[1:]:
        heading, sections = block.splitlines()[0], ticked(block.splitlines()[0])
        entries = ticked(re.search(r"One entry each for (.*)", block)[1]) if "One entry each for" in block else [""]
        prefix = "" if heading.startswith("## Top level") or len(sections) > 1 else f"{sections[0]}."
        for row in table_rows(block, "| field |"):
            last = ""
            for name in ticked(row[0]):
                name = last.rpartition(".")[0] + name if name.startswith(".") else name
                last = name
                found |= {f"{prefix}{entry}{'.' if entry else ''}{name}" for entry in entries}
    return found


def test_configuration_md_has_a_heading_for_every_section_and_a_row_for_every_field():
    text = page("configuration.md")
    headings = {name for line in text.splitlines() if line.startswith("## ") for name in ticked(line)}
    assert headings == set(DriftlineConfig.model_fields)
    fields = config_leaves(DriftlineConfig)
    documented = documented_fields(text)
    wildcards = {path.removesuffix(".*") for path in documented if path.endswith(".*")}
    covered = {path for path in fields if any(path.startswith(f"{w}.") for w in wildcards)}
    assert sorted(fields - documented - covered) == [], "fields without a row in docs/configuration.md"
    assert sorted(documented - fields - {f"{w}.*" for w in wildcards}) == [], "rows for fields the config lacks"


def test_the_notification_events_documented_are_the_config_s():
    [row] = [r for r in table_rows(section(page("configuration.md"), "## `notifications`")) if r[0] == "`events`"]
    events = typing.get_args(NotificationEvent)
    assert ticked(row[2]) == list(events)
    assert counted(row[1].split()[-1]) == len(events)


# --- flows and tasks ----------------------------------------------------------------------------------------------
def defined(package, kind: type) -> dict[str, object]:
    modules = [importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    return {thing.name: thing for module in modules for thing in vars(module).values() if isinstance(thing, kind)}


def test_the_flow_table_lists_every_deployed_flow_with_commands_that_exist():
    text = page("architecture.md")
    rows = table_rows(section(text, "## Flows and tasks"), "| flow |")
    assert [ticked(row[0])[0] for row in rows] == FLOWS
    assert {name for row in rows for name in ticked(row[1])} <= set(subcommands())
    steps = {name for row in rows for name in ticked(row[2]) if re.fullmatch(r"[a-z]+(-[a-z]+)+", name)}
    assert sorted(steps - set(defined(tasks, Task)) - set(defined(flows, Flow))) == []
    assert [name for name in defined(flows, Flow) if f"`{name}`" not in text] == []  # subflows are named too


def named_in(function) -> dict[str, object]:
    """What the body of a flow, or of a plain function of flows/, names from its module: tasks, flows, functions."""
    [definition] = ast.parse(textwrap.dedent(inspect.getsource(function))).body
    names = {node.id for statement in definition.body for node in ast.walk(statement) if isinstance(node, ast.Name)}
    return {name: function.__globals__[name] for name in names if name in function.__globals__}


def runnable(function, own_rows: set[str], seen: set | None = None) -> set[str]:
    """The tasks and subflows a flow can run, read from the code: its body and the plain functions of flows/ it calls,
    statically (every branch). A subflow with a row of its own counts by its name; one without (`partitioned-scoring`,
    `backtest-replay`) counts with what it runs."""
    seen = set() if seen is None else seen
    found = set()
    for thing in named_in(function).values():
        if isinstance(thing, Task):
            found.add(thing.name)
        elif isinstance(thing, Flow):
            found.add(thing.name)
            if thing.name not in own_rows and thing.fn not in seen:
                seen.add(thing.fn)
                found |= runnable(thing.fn, own_rows, seen)
        elif inspect.isfunction(thing) and thing.__module__.startswith(f"{flows.__name__}.") and thing not in seen:
            seen.add(thing)
            found |= runnable(thing, own_rows, seen)
    return found


def test_each_flow_s_row_names_exactly_the_tasks_and_subflows_it_can_run():
    rows = table_rows(section(page("architecture.md"), "## Flows and tasks"), "| flow |")
    known, by_name = set(defined(tasks, Task)) | set(defined(flows, Flow)), defined(flows, Flow)
    documented = {
        ticked(row[0])[0]: {name for cell in row[2:] for name in ticked(cell) if name in known} for row in rows
    }
    in_code = {name: runnable(by_name[name].fn, set(documented)) for name in documented}
    missing = {
        name: sorted(in_code[name] - documented[name]) for name in documented if in_code[name] - documented[name]
    }
    not_run = {
        name: sorted(documented[name] - in_code[name]) for name in documented if documented[name] - in_code[name]
    }
    assert (missing, not_run) == ({}, {})


def retries_of(task: Task) -> str:
    """A task's retries as the task table writes them: `2 (2 s, 10 s)`, or `–` for none."""
    if not task.retries:
        return "–"
    delays = task.retry_delay_seconds if isinstance(task.retry_delay_seconds, list) else [task.retry_delay_seconds]
    return f"{task.retries} ({', '.join(f'{delay:g} s' for delay in delays)})"


def test_the_task_table_lists_every_task_with_its_retries():
    documented = {}
    for row in table_rows(section(page("architecture.md"), "## Flows and tasks"), "| task |"):
        names, retries = ticked(row[0]), [part.strip() for part in row[2].split(" / ")]
        documented |= dict(zip(names, retries * len(names) if len(retries) == 1 else retries, strict=True))
    code = {name: retries_of(task) for name, task in defined(tasks, Task).items()}
    assert sorted(documented) == sorted(code)
    assert {name: (retries, code[name]) for name, retries in documented.items() if retries != code[name]} == {}


# --- names a page gives -------------------------------------------------------------------------------------------
def test_the_readme_links_every_docs_page():
    linked = set(
        re.findall(r"\]\(docs/([\w-]+\.md)\)", section((PROJECT_ROOT / "README.md").read_text(), "## Documentation"))
    )
    assert linked == {path.name for path in DOCS.glob("*.md")}


def test_the_secrets_compose_requires_are_the_ones_deployment_md_lists():
    required = set(re.findall(r"\$\{(\w+):\?", (PROJECT_ROOT / "infra" / "docker-compose.yml").read_text()))
    stated = re.search(COUNT + r" secrets \(([^)]*)\)", page("deployment.md"), re.DOTALL)
    assert set(ticked(stated[2])) == required and counted(stated[1]) == len(required)


def test_every_make_target_named_exists():
    targets = set(re.findall(r"^([a-z][a-z-]*):", (PROJECT_ROOT / "Makefile").read_text(), re.MULTILINE))
    named = {
        (path.name, target)
        for path in PAGES
        for target in re.findall(r"(?:`|^)make ([a-z][a-z-]*)", path.read_text(), re.MULTILINE)
    }
    assert sorted((name, target) for name, target in named if target not in targets) == []


@pytest.fixture(scope="module")
def test_functions() -> set[str]:
    """The test functions and the test modules (a page may name either)."""
    paths = list((PROJECT_ROOT / "tests").rglob("test_*.py"))
    return {path.stem for path in paths} | {
        name for path in paths for name in re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE)
    }


def test_every_test_a_page_names_exists(test_functions):
    named = {
        (path.name, name)
        for path in PAGES
        for name in re.findall(r"\b(test_\w+)", path.read_text())
        if not name.endswith("_")
    }
    assert sorted((page_name, name) for page_name, name in named if name not in test_functions) == []


def exists(name: str) -> bool:
    """A path in the repository, or `module.attribute` of one (`flows/training.ask_approval`, `flows/x.py:flow`)."""
    path = name.split(":")[0]
    return (PROJECT_ROOT / path).exists() or (PROJECT_ROOT / (path.split(".")[0] + ".py")).exists()


def test_every_repository_path_a_page_names_exists():
    roots = ("src/", "flows/", "tasks/", "tests/", "infra/", "configs/", "benchmarks/", "docs/")
    made_by_the_user = {"infra/.env"}  # from infra/.env.example
    named = {
        (path.name, name.rstrip("/"))
        for path in PAGES
        for name in re.findall(r"`([^`\s*<>{}]+)`", path.read_text())
        if name.startswith(roots) and not re.search(r"[|$]", name)
    }
    assert (
        sorted((page_name, name) for page_name, name in named if not exists(name) and name not in made_by_the_user)
        == []
    )

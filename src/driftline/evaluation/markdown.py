"""The gate's evidence as Markdown: what a reviewer reads in the Prefect UI and the model card."""

from __future__ import annotations

from driftline.evaluation.gate import GateDecision
from driftline.evaluation.importance import Explanation
from driftline.evaluation.slices import FairnessResult


def gate_markdown(decision: GateDecision, candidate_version: str) -> str:
    """Challenger vs champion, metric by metric, with the verdict: what a reviewer reads in the Prefect UI."""
    champion = decision.champion_metrics or {}
    title = f"v{decision.champion_version}" if decision.champion_version else "none yet"
    lines = [
        f"## Gate: challenger v{candidate_version} **{decision.verdict}**",
        "",
        f"| metric | challenger v{candidate_version} | champion ({title}) |",
        "|---|---|---|",
    ]
    for name, value in decision.challenger_metrics.items():
        other = f"{champion[name]:.4f}" if name in champion else "–"
        marker = " (primary)" if name == decision.metric else ""
        lines.append(f"| {name}{marker} | {value:.4f} | {other} |")
    lines += ["", "**Reasons**", *[f"- {reason}" for reason in decision.reasons]]
    return "\n".join(lines + governance_markdown(decision))


def slices_markdown(decision: GateDecision) -> list[str]:
    lines = [
        f"**{decision.metric} per slice**",
        "",
        "| slice | rows | challenger | champion | decides |",
        "|---|---|---|---|---|",
    ]
    for s in decision.slices:
        decides = "yes" if s.decides else "no"
        lines.append(f"| {s.name} | {s.rows} | {_num(s.challenger)} | {_num(s.champion)} | {decides} |")
    return lines


def fairness_markdown(fairness: FairnessResult) -> list[str]:
    return [
        f"**Fairness on {fairness.attribute}**: disparate impact {_num(fairness.disparate_impact)} "
        f"(minimum {fairness.minimum})",
        "",
        "| group | rows | positive rate |",
        "|---|---|---|",
        *[f"| {g.group} | {g.rows} | {g.positive_rate:.4f} |" for g in fairness.groups],
    ]


def importance_markdown(explanation: Explanation, metric: str) -> list[str]:
    champion = explanation.champion or {}
    lines = [
        f"**Permutation importance** ({metric} drop when shuffled): {explanation.note}",
        "",
        "| feature | challenger | champion |",
        "|---|---|---|",
    ]
    for name, value in sorted(explanation.challenger.items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {value:.4f} | {_num(champion.get(name))} |")
    return lines


def governance_markdown(decision: GateDecision) -> list[str]:
    """Slices, fairness and importance under the gate table (the model card shows each in its own section)."""
    lines = []
    if decision.slices:
        lines += ["", *slices_markdown(decision)]
    if decision.fairness is not None:
        lines += ["", *fairness_markdown(decision.fairness)]
    if decision.explanation is not None:
        lines += ["", *importance_markdown(decision.explanation, decision.metric)]
    return lines


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"

"""The model card of one version, in Markdown: from the config (use, owner, limitations) and the recorded run."""

from __future__ import annotations

from driftline.config import DriftlineConfig
from driftline.evaluation.gate import GateDecision
from driftline.evaluation.markdown import fairness_markdown, importance_markdown, slices_markdown
from driftline.registry.audit_events import Approval

SECTIONS = [
    "Intended use and owner",
    "Training data",
    "Features",
    "Holdout metrics",
    "Sliced metrics",
    "Fairness",
    "Explainability",
    "Gate decision",
    "Known limitations",
    "Lineage",
]


def model_card(
    cfg: DriftlineConfig, version: str, lineage: dict, decision: GateDecision, approval: Approval | None = None
) -> str:
    """`lineage` is the version as `driftline status --json` describes it (VersionInfo.to_dict)."""
    card = cfg.model_card
    intended_use = card.intended_use or cfg.description or "(not stated: set model_card.intended_use)"
    sections = {
        "Intended use and owner": [
            f"- **Owner**: {card.owner}",
            f"- **Intended use**: {intended_use}",
            f"- **Task**: {cfg.dataset.task}, target `{cfg.dataset.target}`",
        ],
        "Training data": [
            f"{lineage['training_rows']} rows from {len(lineage['data'])} file(s), holdout strategy "
            f"{cfg.model.holdout.strategy} ({cfg.model.holdout.fraction:.0%})",
            "",
            "| sha256 | rows |",
            "|---|---|",
            *[f"| `{source['fingerprint']}` | {source['rows']} |" for source in lineage["data"]],
        ],
        "Features": [f"- `{name}`: {kind}" for name, kind in cfg.dataset.features.items()],
        "Holdout metrics": [
            "| metric | value |",
            "|---|---|",
            *[f"| {name} | {value:.4f} |" for name, value in decision.challenger_metrics.items()],
        ],
        "Sliced metrics": slices_markdown(decision) if decision.slices else ["none configured (gate.slices)"],
        "Fairness": fairness_markdown(decision.fairness) if decision.fairness else ["none configured (gate.fairness)"],
        "Explainability": importance_markdown(decision.explanation, decision.metric)
        if decision.explanation
        else ["not computed"],
        "Gate decision": [
            f"**{decision.verdict}** against champion "
            f"{'v' + decision.champion_version if decision.champion_version else '(none: first model)'}",
            "",
            *[f"- {reason}" for reason in decision.reasons],
            *_approval_lines(cfg, approval),
        ],
        "Known limitations": [f"- {line}" for line in cfg.model_card.limitations]
        or ["- none recorded (set model_card.limitations)"],
        "Lineage": [
            f"- MLflow run `{lineage['run_id']}`; config fingerprint `{lineage['config_fingerprint']}`; "
            f"seed {lineage['seed']}",
            f"- code commit `{lineage['git_commit']}`; trigger: {lineage['trigger'] or '–'}",
            "- packages: " + ", ".join(f"{name} {number}" for name, number in lineage["packages"].items()),
        ],
    }
    lines = [f"# Model card: {cfg.registry.model_name} v{version}", ""]
    for title in SECTIONS:
        lines += [f"## {title}", "", *sections[title], ""]
    return "\n".join(lines)


def _approval_lines(cfg: DriftlineConfig, approval: Approval | None) -> list[str]:
    if cfg.gate.mode == "auto":
        return ["", "Approval: automatic (gate.mode auto)"]
    if approval is None:
        return ["", "Approval: not asked (the automatic checks refused)"]
    answer = "timed out: rejected" if approval.timed_out else approval.action
    return ["", f"Approval (gate.mode manual): **{answer}** by {approval.approver}: {approval.reason}"]

"""Flow: score one file, or everything waiting in the scoring inbox, with the champion."""

from __future__ import annotations

from prefect import flow

from driftline.config import load_config
from driftline.errors import DataRejected
from flows.params import ScoringOutcome, ScoringParams, ScoringReport
from flows.steps import admit
from tasks.data import file_as_scored, waiting_in_inbox
from tasks.registry import load_champion
from tasks.scoring import score_batch


@flow(name="batch-scoring")
def batch_scoring(params: ScoringParams) -> ScoringReport:
    cfg = load_config(params.config)
    champion = load_champion(cfg)
    from_inbox = params.data is None  # the scheduled run: every complete file waiting in scoring.inbox
    report = ScoringReport()
    for path in waiting_in_inbox(cfg) if from_inbox else [params.data]:
        try:
            batch = admit(path, cfg, champion)  # load → validate; a rejected file is quarantined
        except DataRejected as rejected:
            if not from_inbox:
                raise
            report.rejected.append(str(rejected))
            continue
        report.scored.append(ScoringOutcome.of(batch, score_batch(batch, champion, cfg, params.output)))
        if from_inbox:
            file_as_scored(batch.path, cfg)
    report.raise_if_rejected()  # after the good files are scored, the run fails naming the bad ones
    return report

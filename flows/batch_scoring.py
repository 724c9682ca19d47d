"""Flow: score one file, or everything waiting in the scoring inbox, with the champion (and, while an A/B test runs,
its arm B on the test's share of the units, read from the registry at the start of each run).

Files are read, validated and scored `scoring.chunk_rows` rows at a time, in one pass in this process or, with
`scoring.engine: dask`, validated first and then scored in row ranges on a Dask cluster: memory does not grow with
the file.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from driftline.config import DriftlineConfig, load_config
from driftline.data.chunking import DataFile
from driftline.errors import DataRejected
from driftline.fleet.flow_runs import record_flow_run
from driftline.flows.params import ScoringOutcome, ScoringParams, ScoringReport
from driftline.flows.partitioned_scoring import score_on_dask
from driftline.governance import rollout
from driftline.registry import Champion
from driftline.serving.batch_scoring import ScoredBatch
from driftline.tasks.data import file_as_scored, waiting_in_inbox
from driftline.tasks.registry import load_challenger, load_champion
from driftline.tasks.scoring import load_ab_arm, validate_and_score_file
from driftline.tasks.validation import validate_file


@flow(
    name="batch-scoring",
    on_completion=[record_flow_run],  # the fleet's record of every flow run (driftline fleet status)
    on_failure=[record_flow_run],
    on_crashed=[record_flow_run],
)
def batch_scoring(params: ScoringParams) -> ScoringReport:
    cfg = load_config(params.config)
    champion = load_champion(cfg)
    # A running A/B test's arm B answers its units; else, with rollout.mode shadow or canary, the held challenger
    challenger = load_ab_arm(cfg) or load_challenger(cfg)
    from_inbox = params.data is None  # the scheduled run: every complete file waiting in scoring.inbox
    report = ScoringReport()
    for path in waiting_in_inbox(cfg) if from_inbox else [params.data]:
        try:
            source, scored = admit_and_score(path, cfg, champion, challenger, params.output)
        except DataRejected as rejected:  # the file is in quarantine, nothing of it was written
            if not from_inbox:
                raise
            report.rejected.append(str(rejected))
            continue
        report.scored.append(ScoringOutcome.of(source, scored))
        if from_inbox:
            file_as_scored(source.path, cfg)
    report.raise_if_rejected()  # after the good files are scored, the run fails naming the bad ones
    return report


def admit_and_score(
    path: str | Path,
    cfg: DriftlineConfig,
    champion: Champion,
    challenger: rollout.Challenger | None,
    output: str | None,
) -> tuple[DataFile, ScoredBatch]:
    """In this process, one pass: each chunk read once, validated, scored and written. On Dask the file is validated
    first, then each worker reads and scores its own row range."""
    if cfg.scoring.engine == "dask":
        profile, classes = champion.reference.profile, champion.reference.trained_classes(cfg.dataset)
        source = validate_file(path, cfg, profile, classes)  # read and validated chunk by chunk, never held whole
        version, ab = (challenger.version, challenger.ab) if challenger else (None, None)
        return source, score_on_dask(source, champion.ref, cfg, output, version, ab)
    return validate_and_score_file(path, champion, cfg, output, challenger)

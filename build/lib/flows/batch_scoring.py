"""Flow: score one file, or everything waiting in the scoring inbox, with the champion.

Files are read, validated and scored `scoring.chunk_rows` rows at a time, in this process or, with
`scoring.engine: dask`, in row ranges on a Dask cluster: memory does not grow with the file.
"""

from __future__ import annotations

from prefect import flow

from driftline.config import load_config
from driftline.errors import DataRejected
from flows.params import ScoringOutcome, ScoringParams, ScoringReport
from flows.partitioned_scoring import score_on_dask
from flows.steps import admit_file
from tasks.data import file_as_scored, waiting_in_inbox
from tasks.registry import load_challenger, load_champion
from tasks.scoring import score_file


@flow(name="batch-scoring")
def batch_scoring(params: ScoringParams) -> ScoringReport:
    cfg = load_config(params.config)
    champion = load_champion(cfg)
    challenger = load_challenger(cfg)  # rollout.mode shadow or canary: the held challenger scores beside
    from_inbox = params.data is None  # the scheduled run: every complete file waiting in scoring.inbox
    report = ScoringReport()
    for path in waiting_in_inbox(cfg) if from_inbox else [params.data]:
        try:
            source = admit_file(path, cfg, champion)  # streamed read → validate; a rejected file is quarantined
        except DataRejected as rejected:
            if not from_inbox:
                raise
            report.rejected.append(str(rejected))
            continue
        if cfg.scoring.engine == "dask":
            scored = score_on_dask(source, champion.ref, cfg, params.output, challenger and challenger.version)
        else:
            scored = score_file(source, champion, cfg, params.output, challenger)
        report.scored.append(ScoringOutcome.of(source, scored))
        if from_inbox:
            file_as_scored(source.path, cfg)
    report.raise_if_rejected()  # after the good files are scored, the run fails naming the bad ones
    return report

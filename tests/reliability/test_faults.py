"""Faults injected for real (SIGKILL, stopped and restarted servers, 5xx answers, a full disk, racing writers) and
what driftline guarantees through them; every case adds a row to the reliability table (tests/reliability)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from testkit.outcomes import expect
from testkit.processes import cli_env, kill_hard, start_cli
from testkit.waiting import wait_for

from driftline.cli.main import EXIT_REFUSED, EXIT_VIOLATION, main
from driftline.config import load_config
from driftline.data import prediction_log
from driftline.data.demo import make_frame
from driftline.data.landing import LandingWatcher
from driftline.data.ledger import Ledger
from driftline.errors import TransitionRefused
from driftline.governance.invariants import check_registry
from driftline.registry import CHAMPION, Registry, registry_folders
from driftline.serving import batch_scoring
from driftline.validation.chunked import validate_file


def logged_rows(cfg, source_name: str) -> pd.DataFrame:
    """Every prediction-log row of one source, across all log files."""
    frames = [pd.read_parquet(path) for path in prediction_log.log_files(registry_folders(cfg).prediction_log)]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({prediction_log.SOURCE: []})
    return frame[frame[prediction_log.SOURCE] == source_name]


def promotion_chain(registry: Registry) -> str:
    """'v1 → v2 → v3' from the audit log's promotions; each must start from where the one before left champion."""
    events = [e for e in registry.audit_log() if e.action.value == "promoted"]
    links = zip(events, events[1:], strict=False)
    broken = [f"v{b.version}" for a, b in links if b.before.champion != a.after.champion]
    return " → ".join(f"v{e.version}" for e in events) + (f" (broken at {', '.join(broken)})" if broken else "")


def rows_once(frame: pd.DataFrame, ids: pd.Series, id_column: str) -> str:
    """'every row once', or what is wrong: the outcome a person checks in an output or the log."""
    found = frame[id_column].astype(str)
    if found.duplicated().any():
        return f"{int(found.duplicated().sum())} rows twice"
    missing = set(ids.astype(str)) - set(found)
    return f"{len(missing)} rows missing" if missing else "every row once"


# --- cheap: in the default run -----------------------------------------------------------------------------------
def test_rescoring_the_same_file_replaces_its_output_and_logs_every_row_once(cfg, trained, tmp_path):
    frame = make_frame(500, seed=7, id_offset=70_000)
    path = tmp_path / "batch.csv"
    frame.to_csv(path, index=False)
    source, _ = validate_file(path, cfg, None, for_training=False)
    output = cfg.folders.outputs / "batch.scored.parquet"
    first = batch_scoring.score_file(source, trained.model.model, cfg, "1", output)
    second = batch_scoring.score_file(source, trained.model.model, cfg, "1", output)
    expect(
        case="same file scored twice (a rerun)",
        expected="one output, every row once; log: every row once",
        observed=f"{'one' if [p.name for p in output.parent.iterdir()] == [output.name] else 'not one'} output, "
        f"{rows_once(pd.read_parquet(output), frame.customer_id, 'customer_id')}; "
        f"log: {rows_once(logged_rows(cfg, 'batch.csv'), frame.customer_id, 'customer_id')}",
    )
    assert first.log == second.log  # the rerun found its rows logged under the same name
    assert not [p.name for p in output.parent.iterdir() if p.name.startswith(".")]  # no temp file left over


def test_check_finds_a_hand_made_violation_and_promotion_refuses_a_gate_refused_version(
    cfg, config_path, trained, champion, capsys
):
    registry = Registry(cfg)
    assert main(["check", "--config", str(config_path)]) == 0
    refused = trained.register(passed=False)
    with pytest.raises(TransitionRefused, match=f"cannot promote v{refused.version}: its gate verdict is 'refused'"):
        registry.promote(refused)
    expect(
        case="promote a version the gate refused",
        expected="refused; champion unchanged",
        observed=f"refused; champion {'unchanged' if registry.champion() == champion else 'moved'}",
    )
    capsys.readouterr()
    registry.client.set_registered_model_alias(registry.name, CHAMPION, refused.version)  # by hand, around driftline
    code = main(["check", "--config", str(config_path), "--json"])
    found = json.loads(capsys.readouterr().out)
    expect(
        case="champion moved by hand to a gate-refused version",
        expected=f"check exits {EXIT_VIOLATION}: champion-gated, aliases-audited",
        observed=f"check exits {code}: {', '.join(v['rule'] for v in found['violations'])}",
    )


def test_two_watchers_see_a_copy_and_a_second_file_at_once_and_announce_one_run_per_content(cfg, demo_files):
    landing = cfg.folders.landing
    landing.mkdir(parents=True)
    for name, source in [("a.csv", "stable"), ("a_copy.csv", "stable"), ("b.csv", "covariate_shift")]:
        shutil.copyfile(demo_files[source], landing / name)
    ledger_path = cfg.folders.root / "landing.jsonl"
    announced: list = []
    start = threading.Barrier(2)

    def watch() -> None:
        watcher = LandingWatcher(landing, Ledger(ledger_path), stable_seconds=0)
        start.wait()
        watcher.poll(announced.append, time.monotonic())

    watchers = [threading.Thread(target=watch) for _ in range(2)]
    for thread in watchers:
        thread.start()
    for thread in watchers:
        thread.join()
    (landing / "a.csv").unlink()  # the same file arriving again later, under its old name
    shutil.copyfile(demo_files["stable"], landing / "a.csv")
    LandingWatcher(landing, Ledger(ledger_path), stable_seconds=0).poll(announced.append, time.monotonic() + 1)
    runs = sorted(Path(a.path).name for a in announced if not a.duplicate)
    copies = sorted(Path(a.path).name for a in announced if a.duplicate)
    expect(
        case="a file, its copy and another file land at once (two watchers); the file again later",
        expected="2 runs (a.csv, b.csv); 2 duplicates announced, not run",
        observed=f"{len(runs)} runs ({', '.join(runs)}); {len(copies)} duplicates announced, not run",
    )


@pytest.mark.integration
def test_racing_promotions_leave_one_gated_champion_at_every_moment(cfg, trained, champion):
    registry = Registry(cfg)
    passed = [trained.register() for _ in range(3)]
    refused = trained.register(passed=False)
    gated = {champion.version} | {ref.version for ref in passed}
    seen: set[str | None] = set()
    done = threading.Event()

    def observe() -> None:
        while not done.is_set():
            holder = registry.champion()
            seen.add(holder.version if holder else None)

    def promote(ref) -> str:
        try:
            Registry(cfg).promote(ref)
            return "promoted"
        except TransitionRefused:
            return "refused"

    outcomes: dict[str, str] = {}
    racers = [
        threading.Thread(target=lambda r=ref: outcomes.__setitem__(r.version, promote(r))) for ref in [*passed, refused]
    ]
    watcher = threading.Thread(target=observe)
    watcher.start()
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    done.set()
    watcher.join()
    ungated = sorted(str(v) for v in seen - gated)
    violations = check_registry(registry)
    expect(
        case="four promotions race (one gate-refused)",
        expected="3 promoted, 1 refused; champion always a gated version; check: consistent",
        observed=f"{sorted(outcomes.values()).count('promoted')} promoted, "
        f"{sorted(outcomes.values()).count('refused')} refused; "
        f"champion {'always a gated version' if not ungated else 'was ' + ', '.join(ungated)}; "
        f"check: {'consistent' if not violations else '; '.join(map(str, violations))}",
    )
    assert "broken" not in promotion_chain(registry)


# --- integration: processes killed, servers stopped and restarted, disks filled -----------------------------------
def write_batch(path: Path, rows: int, seed: int) -> pd.DataFrame:
    frame = make_frame(rows, seed=seed, id_offset=100_000 * seed)
    frame.drop(columns=["churned"]).to_csv(path, index=False)
    return frame


class OutputReader(threading.Thread):
    """A reader polling an output path while it is written: counts what it sees that is not the whole file."""

    def __init__(self, path: Path, rows: int):
        super().__init__(daemon=True)
        self.path, self.rows, self.reads, self.partial = path, rows, 0, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            if self.path.exists():
                try:
                    self.partial += len(pd.read_parquet(self.path)) != self.rows
                except FileNotFoundError:
                    continue  # replaced between the check and the read
                except Exception:
                    self.partial += 1
                self.reads += 1

    def done(self) -> str:
        self.stop.set()
        self.join()
        return "no half file seen" if not self.partial else f"{self.partial} partial reads"


@pytest.mark.integration
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_scoring_killed_at_a_random_point_then_rerun_writes_every_row_once(
    seed, config_factory, cfg, champion, prefect_api_url, tmp_path
):
    config = config_factory(scoring={"chunk_rows": 2000})
    frame = write_batch(tmp_path / "big.csv", 60_000, seed)
    output = tmp_path / "scored" / "big.scored.parquet"
    args = ["score", "--config", str(config), "--data", str(tmp_path / "big.csv"), "--output", str(output)]
    env = cli_env(prefect_api_url)
    reader = OutputReader(output, len(frame))
    reader.start()
    scoring_run = start_cli(args, env, tmp_path)
    # Killed somewhere between the first chunk written and a moment after the end
    wait_for(lambda: scoring_run.poll() is not None or any(output.parent.glob(".*.tmp")), 300, "scoring started")
    time.sleep(random.Random(seed).uniform(0, 4))
    assert scoring_run.poll() is None, "scoring finished before the kill: nothing was interrupted"
    kill_hard(scoring_run)
    visible = sorted(p.name for p in output.parent.iterdir() if not p.name.startswith("."))
    rerun = start_cli(args, env, tmp_path)
    _, errors = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, errors
    seen = reader.done()
    ids = frame.customer_id
    expect(
        case=f"scoring SIGKILLed at a random point (seed {seed}), then rerun",
        expected="readers: no half file seen; rerun: output every row once, log every row once",
        observed=f"readers: {seen if visible in ([], [output.name]) else 'stray ' + str(visible)}; rerun: output "
        f"{rows_once(pd.read_parquet(output), ids, 'customer_id')}, log "
        f"{rows_once(logged_rows(cfg, 'big.csv'), ids, 'customer_id')}",
    )


def training_slot_taken(api_url: str, cfg) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from driftline.tasks.concurrency import training_limit_name

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        try:
            return client.read_global_concurrency_limit_by_name(training_limit_name(cfg)).active_slots > 0
        except Exception:  # not created yet
            return False


@pytest.mark.integration
def test_training_killed_midway_leaves_the_registry_whole_and_frees_its_slot_for_the_next(
    cfg, config_path, champion, prefect_server, demo_files, tmp_path
):
    api_url = prefect_server.health_url.removesuffix("/health")
    env = cli_env(api_url)
    args = ["train", "--config", str(config_path), "--data", str(demo_files["reference"]), "--reason", "killed"]
    training = start_cli(args, env, tmp_path)
    wait_for(lambda: training_slot_taken(api_url, cfg), 300, "the training took its slot", 0.2)
    time.sleep(random.Random(7).uniform(1, 6))
    kill_hard(training)
    registry = Registry(cfg)
    holders = registry.alias_holders()
    violations = check_registry(registry)
    expect(
        case="training SIGKILLed midway",
        expected="champion unchanged, previous unset; check: consistent",
        observed=f"champion {'unchanged' if holders.champion == champion.version else 'v' + str(holders.champion)}"
        f", previous {'unset' if holders.previous is None else 'v' + holders.previous}; check: "
        f"{'consistent' if not violations else '; '.join(map(str, violations))}",
    )
    # Prefect's default lease (300 s) would keep the next training waiting longer than this.
    following = start_cli(args[:-1] + ["after the kill"], env, tmp_path)
    try:
        following.communicate(timeout=240)
        finished = "finished: gate decided" if following.returncode in (0, EXIT_REFUSED) else "failed"
    except subprocess.TimeoutExpired:
        kill_hard(following)
        finished = "still waiting for the slot after 240 s"
    expect(case="the next training after a killed one", expected="finished: gate decided", observed=finished)


@pytest.mark.integration
@pytest.mark.parametrize("outage", ["503", "stopped"])
def test_mlflow_answering_503_or_stopped_is_retried_then_fails_in_one_line_naming_the_cause(
    outage, config_factory, demo_files, flaky_proxy, prefect_api_url, tmp_path
):
    from driftline.stack import free_port

    proxy = flaky_proxy(None) if outage == "503" else None
    url = proxy.url if proxy else f"http://127.0.0.1:{free_port()}"
    config = config_factory(
        registry={"model_name": "churn-demo", "tracking_uri": url},
        reliability={"registry_http_retries": 2, "registry_backoff_seconds": 0},
    )
    done = start_cli(
        ["score", "--config", str(config), "--data", str(demo_files["stable"])], cli_env(prefect_api_url), tmp_path
    )
    _, errors = done.communicate(timeout=600)
    lines = errors.strip().splitlines()
    cause = "HTTP 503" if outage == "503" else "Connection refused"
    named = len(lines) == 1 and url in lines[0] and cause in lines[0]
    if proxy is not None:  # MLflow's retries (2) of each call, times the load-champion task's attempts (3)
        expect(case="MLflow server answering 503: calls made", expected="9 calls", observed=f"{len(proxy.seen)} calls")
    expect(
        case=f"MLflow server {'answering 503' if outage == '503' else 'stopped'} while scoring",
        expected=f"exit 1; one line naming {url.split(':')[0]}://…, {cause}",
        observed=f"exit {done.returncode}; "
        + (f"one line naming {url.split(':')[0]}://…, {cause}" if named else f"stderr: {errors.strip()[-300:]}"),
    )


@pytest.mark.integration
def test_promotion_cut_off_midway_by_503_is_finished_by_the_next_transition(
    cfg, config_factory, trained, champion, mlflow_server, flaky_proxy
):
    from driftline.errors import RegistryUnavailable

    second, third = trained.register(), trained.register()
    proxy = flaky_proxy(mlflow_server.health_url.removeprefix("http://").removesuffix("/health"))
    # The server fails exactly the write that moves `champion`: `previous` has moved already.
    proxy.failing = lambda method, path, body: (
        method == "POST" and path.endswith("registered-models/alias") and b'"champion"' in body
    )
    served = load_config(
        config_factory(
            registry={"model_name": cfg.registry.model_name, "tracking_uri": proxy.url},
            reliability={"registry_http_retries": 1, "registry_backoff_seconds": 0},
        )
    )
    try:
        Registry(served).promote(second)
        failure = "promotion went through"
    except RegistryUnavailable as error:
        failure = "HTTP 503" if "HTTP 503" in str(error) and proxy.url in str(error) else str(error)
    registry = Registry(cfg)
    cut_off = sorted(v.rule for v in check_registry(registry))
    expect(
        case="MLflow answers 503 to the champion write of a promotion",
        expected="fails naming HTTP 503; champion unchanged; check: aliases-audited, promotion-finished",
        observed=f"fails naming {failure}; champion "
        f"{'unchanged' if registry.champion() == champion else 'moved'}; check: {', '.join(cut_off)}",
    )
    proxy.failing = lambda method, path, body: False  # the server is back
    Registry(served).promote(third)
    violations = check_registry(registry)
    expect(
        case="the next promotion after one cut off midway",
        expected=f"audit log: champion v{champion.version} → v{second.version} → v{third.version}; check: consistent",
        observed=f"audit log: champion {promotion_chain(registry)}; check: "
        f"{'consistent' if not violations else '; '.join(map(str, violations))}",
    )


@pytest.mark.integration
def test_disk_full_while_scoring_fails_in_one_line_naming_the_output_and_keeps_the_previous_one(
    config_factory, champion, prefect_api_url, small_disk, tmp_path
):
    import os

    config = config_factory()
    output = small_disk / "scores.csv"
    env = cli_env(prefect_api_url)
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    write_batch(small, 200, seed=21)
    write_batch(big, 40_000, seed=22)
    first = start_cli(["score", "--config", str(config), "--data", str(small), "--output", str(output)], env, tmp_path)
    assert first.wait(timeout=600) == 0, first.stderr.read()
    previous = output.read_bytes()
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "filler").write_bytes(b"\0" * max(free - 200_000, 0))  # room for less than the big output
    second = start_cli(["score", "--config", str(config), "--data", str(big), "--output", str(output)], env, tmp_path)
    _, errors = second.communicate(timeout=600)
    lines = errors.strip().splitlines()
    named = len(lines) == 1 and str(output) in lines[0] and "no space" in lines[0]
    left = sorted(p.name for p in small_disk.iterdir())
    expect(
        case="disk full while writing the scoring output",
        expected="exit 1; one line naming the output and 'no space'; previous output intact; no temp file left",
        observed=f"exit {second.returncode}; "
        f"{'one line naming the output and ' + repr('no space') if named else 'stderr: ' + errors[-300:]}; "
        f"previous output {'intact' if output.read_bytes() == previous else 'changed'}; "
        f"{'no temp file left' if left == ['filler', 'scores.csv'] else 'left: ' + str(left)}",
    )


@pytest.mark.integration
def test_same_content_twice_and_a_second_file_make_two_runs_and_no_duplicate_output(
    config_path, cfg, champion, demo_files, tmp_path
):
    from driftline.flows.continuous_training import continuous_training
    from driftline.flows.params import BatchParams

    landed = tmp_path / "landed"
    landed.mkdir()
    shutil.copyfile(demo_files["stable"], landed / "a.csv")
    shutil.copyfile(demo_files["stable"], landed / "a_copy.csv")
    b_rows = write_batch(landed / "b.csv", 800, seed=41)
    summaries = [
        continuous_training(BatchParams(config=str(config_path), data=str(landed / name)))
        for name in ("a.csv", "a_copy.csv", "b.csv")
    ]
    scored = [s.batch for s in summaries if s.duplicate_of is None]
    outputs = sorted(p.name for p in cfg.folders.outputs.iterdir() if not p.name.startswith("."))
    a_rows = pd.read_csv(demo_files["stable"])
    expect(
        case="continuous training: a file, its copy, another file",
        expected="runs scored a.csv, b.csv; outputs a.scored.parquet, b.scored.parquet; log a: every row once, "
        "log b: every row once",
        observed=f"runs scored {', '.join(scored)}; outputs {', '.join(outputs)}; "
        f"log a: {rows_once(logged_rows(cfg, 'a.csv'), a_rows.customer_id, 'customer_id')}, "
        f"log b: {rows_once(logged_rows(cfg, 'b.csv'), b_rows.customer_id, 'customer_id')}",
    )


def finished_flow_runs(api_url: str, flow_name: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
    return [run.state.type.value for run in runs]


@pytest.mark.integration
def test_prefect_server_restarted_during_scoring_the_run_finishes_and_is_recorded(
    config_factory, cfg, champion, prefect_server, tmp_path
):
    config = config_factory(scoring={"chunk_rows": 1000})
    frame = write_batch(tmp_path / "big.csv", 150_000, seed=31)
    output = tmp_path / "scored" / "big.scored.parquet"
    api_url = prefect_server.health_url.removesuffix("/health")
    scoring_run = start_cli(
        ["score", "--config", str(config), "--data", str(tmp_path / "big.csv"), "--output", str(output)],
        cli_env(api_url),
        tmp_path,
    )
    wait_for(lambda: scoring_run.poll() is not None or any(output.parent.glob(".*.tmp")), 300, "scoring started")
    assert scoring_run.poll() is None, "scoring finished before the server could be restarted"
    prefect_server.kill()
    prefect_server.start()
    _, errors = scoring_run.communicate(timeout=900)
    errors = errors.strip() if scoring_run.returncode else ""
    states = finished_flow_runs(api_url, "batch-scoring")
    expect(
        case="Prefect server SIGKILLed and restarted during a scoring run",
        expected="exit 0; output every row once; flow run recorded COMPLETED",
        observed=f"exit {scoring_run.returncode}; output "
        f"{rows_once(pd.read_parquet(output), frame.customer_id, 'customer_id') if output.exists() else 'missing'}"
        f"; flow run recorded {', '.join(states) or 'nowhere'}" + (f" ({errors[-300:]})" if errors else ""),
    )

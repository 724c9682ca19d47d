"""Task retries are for outages only: each of driftline's own answers (a rejected file, a bad config, no champion, a
tampered model, a refusal, a violated invariant) and every bug fails its task on the first attempt, while an outage
is retried. Attempts are counted by the Prefect server (the task run's run_count), not by timing."""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import traceback
from dataclasses import dataclass
from uuid import UUID

from prefect import Task, flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import ObjectNotFound
from prefect.states import State
from testkit.outcomes import expect
from testkit.waiting import wait_for

import driftline.tasks as tasks
from driftline import errors
from driftline.registry import SKOPS_FILE, Registry, registry_folders
from driftline.tasks.registry import load_champion
from driftline.tasks.retries import retried, retry_if_transient

RETRIES = 2
# One instance of every error driftline raises on purpose, as its callers raise it.
RAISED: dict[type[errors.DriftlineError], errors.DriftlineError] = {
    errors.ConfigError: errors.ConfigError("driftline.yaml: model.params.max_iter: must be an int in [1, inf)"),
    errors.DataRejected: errors.DataRejected("batch.csv", ["column 'age' is missing"], "quarantine/batch"),
    errors.GateRefused: errors.GateRefused("gate refused v2: roc_auc 0.70 does not beat champion v1's 0.75"),
    errors.NoChampion: errors.NoChampion("model 'churn-demo' has no champion yet; run driftline train"),
    errors.TransitionRefused: errors.TransitionRefused("v3 is retired; pass --override-retired to restore it"),
    errors.PathNotAllowed: errors.PathNotAllowed("/etc/passwd: outside the allowed folders"),
    errors.ModelTampered: errors.ModelTampered("model 'churn-demo' v1: refusing to load a changed model"),
    errors.OutputNotWritten: errors.OutputNotWritten("out.csv: no space left on device while writing it"),
    errors.InvariantViolated: errors.InvariantViolated("champion-gated: champion v2's gate verdict is refused"),
    errors.NeedsAttention: errors.NeedsAttention("2 of 20 models need a person (failing: churn; orphaned: fraud)"),
    errors.RegistryUnavailable: errors.RegistryUnavailable("MLflow tracking server unavailable: HTTP 503"),
}
TRANSIENT: dict[str, BaseException] = {
    "MLflow unavailable (RegistryUnavailable)": RAISED[errors.RegistryUnavailable],
    "connection refused (ConnectionRefusedError)": ConnectionRefusedError(111, "Connection refused"),
    "timeout (TimeoutError)": TimeoutError("timed out"),
}
# Bugs: not driftline's answers, not outages (driftline.outages); whatever their message says, they are not retried.
BUGS: dict[str, BaseException] = {
    "KeyError": KeyError("Connection refused"),
    "ValueError": ValueError("HTTP 503: Max retries exceeded"),
    "AttributeError": AttributeError("'NoneType' object has no attribute 'version'"),
}
FAILURES_LEFT: dict[str, int] = {}


@task(name="raises", cache_policy=NO_CACHE, **retried(RETRIES, 0))
def raises(case: str, error: BaseException) -> str:
    """Fails with `error` while FAILURES_LEFT[case] lasts (for ever when absent), then succeeds."""
    if FAILURES_LEFT.get(case, 1) > 0:
        FAILURES_LEFT[case] = FAILURES_LEFT.get(case, 1) - 1
        raise error
    return "done"


@dataclass(frozen=True)
class Ended:
    task_run_id: UUID
    error: BaseException | None

    @classmethod
    def of(cls, state: State) -> Ended:
        return cls(state.state_details.task_run_id, state.result(raise_on_failure=False) if state.is_failed() else None)

    def attempts(self) -> str:
        """What the Prefect server recorded: how many times the task ran and how it ended. The server records task
        runs from their events, a moment after the run: wait for the final state."""
        run = wait_for(self._finished_run, 60, f"task run {self.task_run_id} recorded as finished", 0.2)
        ending = "failed" if run.state.is_failed() else "succeeded"
        return f"{ending} after {run.run_count} attempt{'s' if run.run_count > 1 else ''}"

    def _finished_run(self) -> TaskRun | None:
        with get_client(sync_client=True) as client:
            try:
                run = client.read_task_run(self.task_run_id)
            except ObjectNotFound:
                return None
        return run if run.state and (run.state.is_failed() or run.state.is_completed()) else None


@flow(name="retry-policy", validate_parameters=False)
def run_each(cases: dict[str, BaseException]) -> dict[str, Ended]:
    return {case: Ended.of(raises(case, error, return_state=True)) for case, error in cases.items()}


def test_every_task_that_retries_asks_the_retry_policy_first():
    modules = [importlib.import_module(f"driftline.tasks.{m.name}") for m in pkgutil.iter_modules(tasks.__path__)]
    retried_tasks = {
        t.name: t for module in modules for t in vars(module).values() if isinstance(t, Task) and t.retries
    }
    assert {"load-champion", "promote", "roll-back", "archive-batch", "check-drift"} <= set(retried_tasks)
    unguarded = sorted(name for name, t in retried_tasks.items() if t.retry_condition_fn is not retry_if_transient)
    assert unguarded == [], f"tasks retried without tasks.retries.retry_if_transient: {unguarded}"


def test_errors_that_cannot_succeed_on_retry_fail_on_the_first_attempt(prefect_api_url):
    defined = {kind for kind in vars(errors).values() if isinstance(kind, type) and issubclass(kind, Exception)}
    assert defined - {errors.DriftlineError} == set(RAISED), "give every error of driftline.errors a case here"
    permanent = {kind.__name__: error for kind, error in RAISED.items() if not kind.transient}
    FAILURES_LEFT.clear()
    for name, ended in run_each(permanent).items():
        expect(
            case=f"{name} in a task with {RETRIES} retries",
            expected="failed after 1 attempt",
            observed=ended.attempts(),
        )
        assert str(ended.error) == str(permanent[name])  # the one line, unchanged


def test_a_bug_in_a_retried_task_fails_on_the_first_attempt_with_its_own_traceback(prefect_api_url):
    FAILURES_LEFT.clear()
    for name, ended in run_each(BUGS).items():
        frames = [frame.name for frame in traceback.extract_tb(ended.error.__traceback__)]
        expect(
            case=f"{name} in a task with {RETRIES} retries",
            expected=f"failed after 1 attempt: {name} raised in `raises`",
            observed=f"{ended.attempts()}: {type(ended.error).__name__} raised in "
            + ("`raises`" if frames and frames[-1] == "raises" else f"{frames[-1:]}"),
        )
        assert ended.error is BUGS[name]  # the original exception, not a wrapper


def test_transient_errors_are_retried_until_they_pass(prefect_api_url):
    FAILURES_LEFT.clear()
    FAILURES_LEFT.update({case: RETRIES for case in TRANSIENT})
    for case, ended in run_each(TRANSIENT).items():
        expect(
            case=f"{case} twice, then an answer",
            expected=f"succeeded after {RETRIES + 1} attempts",
            observed=ended.attempts(),
        )


@flow(name="load-the-champion", validate_parameters=False)
def load_the_champion(cfg) -> Ended:
    return Ended.of(load_champion(cfg, return_state=True))


def test_load_champion_fails_once_with_no_champion_and_on_a_tampered_model(cfg, trained, prefect_api_url):
    ended = load_the_champion(cfg)
    expect(
        case="load-champion with no champion yet",
        expected="failed after 1 attempt: NoChampion",
        observed=f"{ended.attempts()}: {type(ended.error).__name__}",
    )

    Registry(cfg).promote(trained.register())
    [stored] = (cfg.folders.root / "mlartifacts").rglob(SKOPS_FILE)  # the registry's own copy of the model
    content = bytearray(stored.read_bytes())
    content[len(content) // 2] ^= 0x01
    stored.chmod(0o644)
    stored.write_bytes(bytes(content))
    shutil.rmtree(registry_folders(cfg).cache, ignore_errors=True)  # loaded from the registry, not from a local copy
    ended = load_the_champion(cfg)
    expect(
        case="load-champion on a tampered model",
        expected="failed after 1 attempt: ModelTampered",
        observed=f"{ended.attempts()}: {type(ended.error).__name__}",
    )

"""Operational KPIs from typed histories: incidents, time to restore, rates, freshness, throughput, drift alarms,
retrains per promotion, the champion's slices and fairness."""

from datetime import UTC, datetime, timedelta

import pytest

from driftline.monitoring.kpis import (
    Detection,
    LiveCheck,
    LoopHistory,
    MonitoredBatch,
    PipelineRun,
    ScoringRun,
    Transition,
    champion_watch,
    compute_kpis,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def history(
    transitions=(),
    detections=(),
    training_runs=(),
    newest=None,
    scoring_runs=(),
    monitored=(),
    live_checks=(),
    champion=None,
) -> LoopHistory:
    return LoopHistory(
        list(transitions),
        list(detections),
        list(training_runs),
        "test",
        newest,
        list(scoring_runs),
        list(monitored),
        list(live_checks),
        champion,
    )


def test_detections_until_the_next_promotion_are_one_incident_and_mttr_is_their_mean():
    transitions = [
        Transition("1", "promoted", at(0), "initial"),
        Transition("2", "refused", at(11), "drift in b.csv", "1"),
        Transition("3", "promoted", at(12), "drift in c.csv", "1"),  # restores the incident opened at 10 h
        Transition("4", "promoted", at(30), "performance degraded", "3"),  # restores the one opened at 26 h
    ]
    detections = [
        Detection("drift", at(10)),
        Detection("drift", at(11.5)),
        Detection("degradation", at(26)),
        Detection("drift", at(40)),
    ]
    kpis = compute_kpis(
        history(
            transitions,
            detections,
            [PipelineRun(True, at(0)), PipelineRun(False, at(5)), PipelineRun(True, at(11)), PipelineRun(True, at(12))],
            ("batch_09.csv", at(36)),
            [ScoringRun(1000, 0.5, at(1)), ScoringRun(3000, 1.5, at(2))],
        ),
        now=at(48),
    )
    assert (kpis.promotions, kpis.refusals) == (3, 1)
    assert kpis.deployments_per_week == pytest.approx(3 / 2 * 7)  # 3 promotions in 2 days
    assert (kpis.incidents, kpis.open_incidents) == (3, 1)
    assert kpis.mttr_hours == pytest.approx((2 + 4) / 2)
    assert kpis.training_success_rate == 0.75
    assert (kpis.newest_training_data, kpis.data_freshness_hours) == ("batch_09.csv", 12)
    assert kpis.scoring_rows_per_second == 2000
    assert [name for name, _, _ in kpis.rows()] == [
        "deployment frequency",
        "time to restore (MTTR)",
        "training success rate",
        "data freshness",
        "scoring throughput",
        "drift alarms per batch",
        "retrains per promotion",
        "champion slices and fairness",
        "estimate error",
    ]


def test_empty_history_gives_no_figures_rather_than_zeros():
    kpis = compute_kpis(history(), now=T0)
    assert kpis.deployments_per_week is None and kpis.mttr_hours is None and kpis.training_success_rate is None
    assert kpis.data_freshness_hours is None and kpis.scoring_rows_per_second is None
    assert kpis.drift_alarms_per_batch is None and kpis.retrains_per_promotion is None
    assert kpis.champion_watch is None
    assert all(value == "–" for _, value, _ in kpis.rows())


def test_drift_alarms_are_counted_per_monitored_batch():
    monitored = [
        MonitoredBatch(at(hour), drifted)
        for hour, drifted in [(1, False), (2, False), (3, True), (4, True), (5, False)]
    ]
    kpis = compute_kpis(history(monitored=monitored), now=at(6))
    assert (kpis.monitored_batches, kpis.drift_alarms, kpis.drift_alarms_per_batch) == (5, 2, 0.4)
    assert dict((name, value) for name, value, _ in kpis.rows())["drift alarms per batch"] == "0.40"


def test_retrains_per_promotion_count_challengers_judged_against_a_champion():
    # the demo's outcome: v1 first, v2 refused, v3 promoted; a held challenger is neither promoted nor refused
    transitions = [
        Transition("1", "promoted", at(0)),
        Transition("2", "refused", at(1), "drift", "1"),
        Transition("3", "promoted", at(2), "drift", "1"),
        Transition("4", "held", at(3), "drift", "3"),
    ]
    kpis = compute_kpis(history(transitions), now=at(4))
    assert (kpis.retrains, kpis.promoted_retrains, kpis.refused_retrains) == (3, 1, 1)
    assert kpis.retrains_per_promotion == 3.0
    [(_, value, how)] = [row for row in kpis.rows() if row[0] == "retrains per promotion"]
    assert value == "3.0" and how.endswith("1 promoted, 1 refused by the gate")
    assert compute_kpis(history(transitions[:2]), now=at(4)).retrains_per_promotion is None  # none promoted yet


def test_the_champions_slices_and_fairness_status_is_its_newest_verdict():
    checks = [
        LiveCheck("1", at(1), "a.csv", True, ["region=south"], 0.42),  # an earlier champion's breach
        LiveCheck("2", at(2), "b.csv", True, [], 0.55),
        LiveCheck("2", at(3), "c.csv", False, [], 0.91),
    ]
    assert champion_watch(checks, "2") == ("ok", "v2 on c.csv: disparate impact 0.910; slices degraded: none")
    status, detail = champion_watch(checks[:2], "2")
    assert status == "breached" and "0.550 (under the minimum)" in detail
    assert champion_watch(checks, "1")[1].endswith("slices degraded: region=south")
    assert champion_watch(checks, "3")[0] is None  # not judged since it became champion
    kpis = compute_kpis(history(live_checks=checks, champion="2"), now=at(4))
    assert (kpis.champion_watch, kpis.champion_version) == ("ok", "2")

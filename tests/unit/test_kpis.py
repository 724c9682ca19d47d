"""Operational KPIs from typed histories: incidents, time to restore, rates, freshness, throughput."""

from datetime import UTC, datetime, timedelta

import pytest

from driftline.monitoring.kpis import Detection, PipelineRun, ScoringRun, Transition, compute_kpis

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_detections_until_the_next_promotion_are_one_incident_and_mttr_is_their_mean():
    transitions = [
        Transition("1", "promoted", at(0), "initial"),
        Transition("2", "refused", at(11), "drift in b.csv"),
        Transition("3", "promoted", at(12), "drift in c.csv"),  # restores the incident opened at 10 h
        Transition("4", "promoted", at(30), "performance degraded"),  # restores the one opened at 26 h
    ]
    detections = [Detection("drift", at(10)), Detection("drift", at(11.5)), Detection("degradation", at(26)),
                  Detection("drift", at(40))]  # fmt: skip
    kpis = compute_kpis(transitions, detections, [PipelineRun(True, at(0)), PipelineRun(False, at(5)),
                                                 PipelineRun(True, at(11)), PipelineRun(True, at(12))],
                        "test", ("batch_09.csv", at(36)), [ScoringRun(1000, 0.5, at(1)), ScoringRun(3000, 1.5, at(2))],
                        now=at(48))  # fmt: skip
    assert (kpis.promotions, kpis.refusals) == (3, 1)
    assert kpis.deployments_per_week == pytest.approx(3 / 2 * 7)  # 3 promotions in 2 days
    assert (kpis.incidents, kpis.open_incidents) == (3, 1)
    assert kpis.mttr_hours == pytest.approx((2 + 4) / 2)
    assert kpis.training_success_rate == 0.75
    assert (kpis.newest_training_data, kpis.data_freshness_hours) == ("batch_09.csv", 12)
    assert kpis.scoring_rows_per_second == 2000
    assert [name for name, _, _ in kpis.rows()] == [
        "deployment frequency", "time to restore (MTTR)", "training success rate", "data freshness",
        "scoring throughput",
    ]  # fmt: skip


def test_empty_history_gives_no_figures_rather_than_zeros():
    kpis = compute_kpis([], [], [], "test", None, [], now=T0)
    assert kpis.deployments_per_week is None and kpis.mttr_hours is None and kpis.training_success_rate is None
    assert kpis.data_freshness_hours is None and kpis.scoring_rows_per_second is None
    assert all(value == "–" for _, value, _ in kpis.rows())

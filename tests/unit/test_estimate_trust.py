"""The estimator's trust: from its holdout check at training, then from each labeled batch inside or outside its band."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from driftline.config.estimation import EstimationConfig
from driftline.monitoring.estimate_trust import trust_state

DEFAULTS = EstimationConfig()
IN, OUT = True, False


def test_estimator_starts_trusted_when_its_holdout_chunks_lay_within_the_band():
    state = trust_state(holdout_within=True, labeled=[], settings=DEFAULTS)
    assert state.trusted
    assert state.reason == "its error on the holdout chunks lay within its band at training; no labeled batch yet"


def test_estimator_starts_untrusted_when_its_holdout_chunks_fell_outside_the_band():
    state = trust_state(holdout_within=False, labeled=[], settings=DEFAULTS)
    assert not state.trusted
    assert "fell outside its band at training" in state.reason


@pytest.mark.parametrize("labeled", [[OUT], [IN, OUT], [OUT, IN, IN], [IN, OUT, IN], [OUT, IN, IN, OUT]])
def test_one_batch_outside_in_the_last_three_keeps_the_estimator_trusted(labeled):
    assert trust_state(True, labeled, DEFAULTS).trusted


@pytest.mark.parametrize("labeled", [[OUT, OUT], [OUT, IN, OUT], [IN, IN, IN, OUT, IN, OUT]])
def test_two_of_the_last_three_labeled_batches_outside_make_it_untrusted(labeled):
    state = trust_state(True, labeled, DEFAULTS)
    assert not state.trusted
    assert state.reason.startswith("2 of its last ")
    assert "3 labeled batches in a row inside the band make it trusted again" in state.reason


def test_untrusted_estimator_is_trusted_again_only_after_three_in_a_row_inside():
    untrusted = [OUT, OUT]
    assert not trust_state(True, [*untrusted, IN, IN], DEFAULTS).trusted
    assert not trust_state(True, [*untrusted, IN, IN, OUT, IN, IN], DEFAULTS).trusted
    state = trust_state(True, [*untrusted, IN, IN, IN], DEFAULTS)
    assert state.trusted
    assert state.reason == "3 labeled batches in a row fell inside the band"


def test_batches_that_made_it_untrusted_do_not_count_once_it_is_trusted_again():
    # OUT, OUT: untrusted; IN x3: trusted again; one more OUT is one of three since then, not two.
    assert trust_state(True, [OUT, OUT, IN, IN, IN, OUT], DEFAULTS).trusted
    assert not trust_state(True, [OUT, OUT, IN, IN, IN, OUT, OUT], DEFAULTS).trusted


def test_estimator_untrusted_at_training_needs_three_inside_in_a_row():
    assert not trust_state(False, [IN, IN], DEFAULTS).trusted
    assert trust_state(False, [IN, IN, IN], DEFAULTS).trusted


def test_trust_windows_follow_the_config():
    patient = EstimationConfig(trust_window=5, untrusted_after=3, trusted_again_after=1)
    assert trust_state(True, [OUT, IN, OUT, IN, IN], patient).trusted
    assert not trust_state(True, [OUT, IN, OUT, IN, OUT], patient).trusted
    assert trust_state(True, [OUT, IN, OUT, IN, OUT, IN], patient).trusted


def test_config_refuses_more_batches_outside_than_the_window_holds():
    with pytest.raises(ValidationError, match=r"untrusted_after \(4\) must be at most trust_window \(3\)"):
        EstimationConfig(untrusted_after=4)

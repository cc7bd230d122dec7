"""Duration model and the queue simulation behind positions' ETAs."""

from __future__ import annotations

import pytest

from bot.jobs.eta import DurationModel, simulate


def test_duration_model_starts_at_the_prior_and_follows_observations() -> None:
    model = DurationModel(prior_seconds=15.0, alpha=0.5)
    assert model.seconds == 15.0
    model.observe(5.0)
    assert model.seconds == pytest.approx(10.0)
    for _ in range(20):
        model.observe(5.0)
    assert model.seconds == pytest.approx(5.0, abs=0.01)
    model.observe(1e9)  # a runaway value is clamped, not allowed to wreck every ETA
    assert model.seconds <= 3600
    with pytest.raises(ValueError):
        DurationModel(prior_seconds=0)


def test_simulate_one_slot_queue_is_a_staircase() -> None:
    running, queued = simulate(1, [(1, 0.0)], [1, 1, 1], 15.0)
    assert [e.eta_seconds for e in running] == [15.0]
    assert [(e.wait_seconds, e.eta_seconds) for e in queued] == [
        (15.0, 30.0),
        (30.0, 45.0),
        (45.0, 60.0),
    ]


def test_simulate_large_job_waits_for_enough_images_and_blocks_those_behind() -> None:
    # Budget 10: nine 1-image jobs running for 5 s already, then an 8-image job, then a 1-image job.
    running, queued = simulate(10, [(1, 5.0)] * 9, [8, 1], 15.0)
    assert all(e.eta_seconds == 10.0 for e in running)
    big, small = queued
    assert big.wait_seconds == 10.0  # needs 7 of the 9 running jobs to end
    # The small job fits beside the big one once it started (1 free + 2 freed), not before it.
    assert small.wait_seconds == 10.0
    assert big.eta_seconds == 25.0


def test_simulate_clamps_jobs_larger_than_the_budget_and_handles_overdue_runs() -> None:
    running, queued = simulate(4, [(4, 100.0)], [8], 10.0)
    assert running[0].eta_seconds == pytest.approx(2.0)  # overdue: 20 % of a job more
    assert queued[0].wait_seconds == pytest.approx(2.0)
    assert queued[0].eta_seconds == pytest.approx(12.0)


def test_simulate_delays_queued_starts_during_a_pause() -> None:
    _, queued = simulate(10, [], [1, 1], 15.0, not_before=30.0)
    assert [e.wait_seconds for e in queued] == [30.0, 30.0]

"""Triggers on a local bucket: the low-traffic window, the local scheduler, the feedback-count threshold, and that a
trigger is recorded before anything runs (so none is lost while a run holds the lock)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd
import pytest

from autobert import layout
from autobert.bootstrap import Services
from autobert.config import Settings
from autobert.workflow.local import Scheduler, run_lock
from autobert.workflow.merge import import_initial_dataset
from autobert.workflow.start import after_feedback
from autobert.workflow.triggers import in_window, mark_served, pending_triggers, record_trigger, threshold_reached


@pytest.mark.parametrize(("now", "window", "inside"), [
    ("03:00", "02:00-05:00", True), ("05:00", "02:00-05:00", False), ("01:59", "02:00-05:00", False),
    ("23:30", "23:00-02:00", True), ("01:00", "23:00-02:00", True), ("12:00", "23:00-02:00", False),
])
def test_the_low_traffic_window_includes_its_start_and_may_wrap_midnight(now, window, inside):
    hour, minute = map(int, now.split(":"))
    assert in_window(datetime(2026, 11, 25, hour, minute, tzinfo=UTC), window) is inside


@pytest.fixture
def services(tmp_path) -> Services:
    services = Services(Settings(home=tmp_path, feedback_threshold=3, schedule_window="02:00-05:00"))
    rows = [(f"{lbl}/{i}", f"text {i} on {lbl}", lbl) for lbl in ("a", "b") for i in range(5)]
    import_initial_dataset(services.store, pd.DataFrame(rows, columns=["id", "text", "label"]), ["a", "b"],
                           holdout_fraction=0.2, seed=0)
    return services


def add_feedback(services: Services, n: int) -> None:
    for i in range(n):
        services.store.put_json(layout.feedback_key(f"fb{i}", date(2026, 11, 25)),
                                {"id": f"fb{i}", "text": f"new text {i}", "label": "a"})


def test_the_scheduler_records_one_full_retrain_per_window_and_starts_a_run(services):
    started = []
    clock = iter([datetime(2026, 11, 25, 3, 0, tzinfo=UTC), datetime(2026, 11, 25, 3, 30, tzinfo=UTC),
                  datetime(2026, 11, 25, 12, 0, tzinfo=UTC), datetime(2026, 11, 26, 2, 15, tzinfo=UTC)])
    scheduler = Scheduler(services, clock=lambda: next(clock), start_run=lambda: started.append(1))
    first = scheduler.tick()
    assert [t["kind"] for t in first] == ["schedule"] and first[0]["full"] is True
    # Named and dated by the scheduler's clock, not the real one: the test holds on any date.
    assert first[0]["id"].startswith("t-20261125-030000") and first[0]["at"] == "2026-11-25T03:00:00+00:00"
    assert started == [1]
    mark_served(services.store, [first[0]["id"]], "r-1")
    assert scheduler.tick() == []  # same window, same day: already scheduled
    assert scheduler.tick() == []  # outside the window
    assert [t["kind"] for t in scheduler.tick()] == ["schedule"]  # the next night


def test_the_scheduler_does_not_start_a_second_run_while_one_holds_the_lock(services):
    started = []
    scheduler = Scheduler(services, clock=lambda: datetime(2026, 11, 25, 3, 0, tzinfo=UTC),
                          start_run=lambda: started.append(1))
    with run_lock(services.settings.home) as held:
        assert held
        scheduler.tick()
    assert started == [] and len(pending_triggers(services.store)) == 1  # recorded, served by the holder


def test_the_threshold_counts_unmerged_feedback_and_fires_once_while_pending(services):
    add_feedback(services, 2)
    assert not threshold_reached(services.store, 3)
    assert after_feedback(services) is None
    add_feedback(services, 3)
    assert threshold_reached(services.store, 3)
    record_trigger(services.store, "threshold")
    assert not threshold_reached(services.store, 3)  # one pending threshold trigger is enough


def test_the_scheduler_checks_the_threshold_too(services):
    add_feedback(services, 3)
    started = []
    scheduler = Scheduler(services, clock=lambda: datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
                          start_run=lambda: started.append(1))
    assert [t["kind"] for t in scheduler.tick()] == ["threshold"]
    assert started == [1]

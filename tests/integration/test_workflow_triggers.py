"""Triggers on a local bucket: the low-traffic window, the local scheduler, the feedback-count threshold, and that a
trigger is recorded before anything runs (so none is lost while a run holds the lock)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pandas as pd
import pytest

from autobert import layout
from autobert.bootstrap import Services
from autobert.config import Settings
from autobert.workflow.local import Scheduler, run_lock
from autobert.workflow.merge import import_initial_dataset
from autobert.workflow.start import after_feedback
from autobert.workflow.triggers import (
    in_window,
    mark_served,
    pending_triggers,
    record_trigger,
    served_by,
    threshold_reached,
)


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


class Runner:
    """What the scheduler's ``start_run`` returns: the detached runner's process, as far as the scheduler looks at
    it (``subprocess.Popen.poll``: None while it runs)."""

    def __init__(self):
        self.returncode = None

    def poll(self):
        return self.returncode


def test_while_a_run_holds_the_lock_the_trigger_goes_to_one_runner_waiting_for_it(services):
    runners: list[Runner] = []

    def start_run() -> Runner:
        runners.append(Runner())
        return runners[-1]

    scheduler = Scheduler(services, clock=lambda: datetime(2026, 11, 25, 3, 0, tzinfo=UTC), start_run=start_run)
    with run_lock(services.settings.home) as held:
        assert held
        scheduler.tick()  # the scheduler never looks at the lock: the runner takes it after this run
        assert len(runners) == 1 and len(pending_triggers(services.store)) == 1
        scheduler.tick()
        assert len(runners) == 1  # that runner still waits: no second one
        with run_lock(services.settings.home) as other:
            assert not other  # one holder at a time
    runners[0].returncode = 0  # it ended, and a trigger is still pending (say its run came in after it looked)
    scheduler.tick()
    assert len(runners) == 2



def test_the_schedulers_runner_waits_for_the_lock_then_serves_the_trigger(tmp_path):
    from autobert.workflow.runs import RunStore

    # The real detached runner (python -m autobert.workflow.local serve --wait); without Node a run fails at once.
    services = Services(Settings(home=tmp_path, node=str(tmp_path / "no-node-here")))
    trigger = record_trigger(services.store, "manual")
    scheduler = Scheduler(services, clock=lambda: datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    log = tmp_path / "retrain.log"
    with run_lock(tmp_path) as held:
        assert held
        scheduler.tick()
        runner = scheduler._runner
        deadline = time.monotonic() + 120  # the runner's start (imports), not the test's pace
        while "waiting for the run lock" not in (log.read_text() if log.exists() else ""):
            assert runner.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the runner never reached the lock"
            time.sleep(0.05)
        assert pending_triggers(services.store) == [trigger]  # nothing ran while the lock was held
    assert runner.wait(timeout=120) == 0, log.read_text()
    [run] = RunStore(services.store).list()
    assert served_by(services.store, trigger["id"]) == run["run_id"] and run["error"] == "LocalRunnerError"
    assert pending_triggers(services.store) == []


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

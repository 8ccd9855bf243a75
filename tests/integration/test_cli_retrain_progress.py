"""`autobert retrain --wait` shows the training job's progress from the run record (CheckTraining writes it): each
finished epoch once with its validation scores, and the current epoch, step, samples/s and ETA when they change."""

from __future__ import annotations

import io

from autobert.adapters.local_store import LocalObjectStore
from autobert.bootstrap import Services
from autobert.cli import ProgressPrinter, _follow_run
from autobert.config import Settings
from autobert.contracts import TRAINING_PROGRESS
from autobert.workflow.runs import RunStore, open_run
from autobert.workflow.triggers import record_trigger

EPOCH_1 = {"epoch": 1, "train_loss": 1.0984, "val_accuracy": 0.3333, "val_macro_f1": 0.1667,
           "samples_per_second": 5.04}


def progress(step: int, eta: float, rate: float = 5.21, epoch: int = 1, history=()) -> dict:
    return {TRAINING_PROGRESS: {"epoch": epoch, "epochs": 3, "step": step, "steps": 1530, "loss": 0.9512,
                                "samples_per_second": rate, "eta_seconds": eta, "history": list(history),
                                "job_name": "ab-1", "observed_at": "2026-12-02T05:10:02+00:00"}}


def test_progress_is_printed_when_it_changes_and_each_finished_epoch_once():
    printer = ProgressPrinter()
    assert printer.lines({"status": "running"}) == []  # before the job's log shows progress
    assert printer.lines(progress(120, 4512)) == [
        "  training: epoch 1/3  step 120/1530 (7 %)  5.2 samples/s  ETA 1 h 15 min  loss 0.951"]
    assert printer.lines(progress(120, 4512)) == []  # the same progress polled again: nothing new
    assert printer.lines(progress(510, 1297, rate=6.04, epoch=2, history=[EPOCH_1])) == [
        "  epoch 1 done: val accuracy 0.333  val macro-F1 0.167  train loss 1.098  5.0 samples/s",
        "  training: epoch 2/3  step 510/1530 (33 %)  6.0 samples/s  ETA 21 min 37 s  loss 0.951"]
    assert printer.lines(progress(1529, 42, rate=6.04, epoch=3, history=[EPOCH_1])) == [
        "  training: epoch 3/3  step 1529/1530 (99 %)  6.0 samples/s  ETA 42 s  loss 0.951"]


def test_retrain_wait_prints_the_runs_progress_before_its_summary(tmp_path):
    services = Services(Settings(home=tmp_path / "home"))
    store: LocalObjectStore = services.store
    trigger = record_trigger(store, "manual", source="cli")
    run_id = open_run(store, [trigger], executor="local")["run_id"]
    RunStore(store).update(run_id, status="succeeded", execution_status="SUCCEEDED",
                           **progress(1530, 0, epoch=3, history=[EPOCH_1]))
    out = io.StringIO()
    run = _follow_run(services, trigger["id"], poll=0, out=out)
    assert run["run_id"] == run_id
    assert out.getvalue().splitlines() == [
        f"run {run_id} started",
        "  epoch 1 done: val accuracy 0.333  val macro-F1 0.167  train loss 1.098  5.0 samples/s",
        "  training: epoch 3/3  step 1530/1530 (100 %)  5.2 samples/s  ETA 0 s  loss 0.951"]

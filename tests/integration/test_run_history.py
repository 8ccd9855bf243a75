"""A local run's event history: appended as JSON-lines chunks that are never rewritten, so what the executor writes
per save does not grow with the history (a long training wait loop cost the orchestrator CPU quadratic in the
training time when the whole history was re-encoded on every save); read back whole; a history written whole before
the chunks still reads."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pandas as pd
from console_helpers import events_through

from autobert import layout
from autobert.adapters.local_store import LocalObjectStore
from autobert.adapters.local_training import LocalTrainingJobs
from autobert.bootstrap import bootstrap
from autobert.config import Settings
from autobert.data import export_dataset
from autobert.workflow.local import LocalWorkflow
from autobert.workflow.runs import HistoryWriter, RunStore, json_lines, state_timings

LOOP = ["WaitForTraining", "CheckTraining", "TrainingStatus"]
ROUNDS = 60


class RecordingStore(LocalObjectStore):
    """The local store, also noting every write (key, bytes) and telling ``on_write`` about it."""

    def __init__(self, root: Path, on_write=None):
        super().__init__(root)
        self.writes: list[tuple[str, int]] = []
        self.on_write = on_write or (lambda key: None)

    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> bool:
        self.writes.append((key, len(data)))
        written = super().put_bytes(key, data, if_absent=if_absent)
        self.on_write(key)
        return written

    def history_writes(self, run_id: str) -> list[tuple[str, int]]:
        prefix = f"{layout.RUNS}{run_id}/history"
        return [(key, size) for key, size in self.writes if key.startswith(prefix)]


def test_each_save_writes_only_the_new_events_however_long_the_history_has_grown(tmp_path):
    store = RecordingStore(tmp_path / "bucket")
    runs = RunStore(store)
    runs.create("r-long", executor="local")
    events = events_through("r-long", ["MergeData", "StartTraining", *LOOP * ROUNDS])
    head, rounds = events[:5], [events[5 + 6 * i: 11 + 6 * i] for i in range(ROUNDS)]  # one wait-loop round each
    writer = HistoryWriter(runs, "r-long")
    for event in head:
        writer.add(event)
    writer.save()
    for round_events in rounds:
        for event in round_events:
            writer.add(event)
        writer.save()

    writes = store.history_writes("r-long")
    assert len(writes) == ROUNDS + 1 == len({key for key, _ in writes})  # one new chunk per save, none rewritten
    # From the second round on (the first adds the training status to the execution state) a round's events have
    # the same size: the last save wrote exactly what the second did, and nothing but that round's events.
    sizes = [size for _, size in writes[2:]]
    assert sizes[0] == sizes[-1] == len(json_lines(rounds[-1]))
    assert runs.history("r-long") == events
    # The record's timings, kept from the new events only, are those of the whole history.
    assert runs.get("r-long")["states"] == state_timings(events)
    assert len(runs.get("r-long")["states"]) == 2 + 3 * ROUNDS


def test_a_history_written_whole_before_the_chunks_still_reads(tmp_path):
    store = LocalObjectStore(tmp_path / "bucket")
    events = events_through("r-old", ["MergeData", "StartTraining"])
    store.put_json(layout.run_history("r-old"), events)  # how runs were recorded before the chunks
    assert RunStore(store).history("r-old") == events
    assert RunStore(store).history("r-none") == []


FAKE_TRAINING = """\
import os, pathlib, sys, time
# A training job that stays InProgress until the test releases it, then fails (the run then ends at once).
while not pathlib.Path(os.environ["RELEASE_TRAINING"]).exists():
    time.sleep(0.05)
pathlib.Path(os.environ["SM_OUTPUT_DIR"], "failure").write_text("released by the test")
sys.exit(1)
"""


def test_a_long_local_wait_loop_writes_each_event_of_its_history_once(tmp_path, monkeypatch):
    df = pd.DataFrame({"id": [f"d{i}" for i in range(12)], "text": [f"document number {i}" for i in range(12)],
                       "label": ["sci.space", "rec.autos", "talk.politics.guns"] * 4})
    labels = sorted(set(df["label"]))
    df["label_id"] = df["label"].map(labels.index)
    seed = export_dataset(df, labels, tmp_path / "seed")
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAINING)
    release = tmp_path / "release"
    monkeypatch.setenv("RELEASE_TRAINING", str(release))
    rounds_saved = threading.Event()

    def release_after_many_rounds(key: str) -> None:
        # Saves come once the runner is quiet, i.e. about once per wait-loop round: 20 of them is a long loop.
        if key.endswith(".jsonl") and len([k for k, _ in store.writes if k.endswith(".jsonl")]) >= 20:
            rounds_saved.set()

    settings = Settings(home=tmp_path / "home", seed_dataset=seed, holdout_fraction=0.25, local_wait_scale=0.005)
    store = RecordingStore(settings.home / "bucket", on_write=release_after_many_rounds)
    services = bootstrap(settings, store=store,
                         training_jobs=LocalTrainingJobs(settings.home / "training-jobs", script, sys.executable))
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(LocalWorkflow(services).request("manual", wait=True)))
    runner.start()
    try:
        assert rounds_saved.wait(timeout=300), "the wait loop did not go round 20 times"
    finally:
        release.touch()
        runner.join(timeout=300)
    run = result["run"]
    assert run["status"] == "failed" and run["error"] == "TrainingJobFailed", run
    history = RunStore(store).history(run["run_id"])
    assert [s["name"] for s in run["states"]].count("CheckTraining") >= 5  # a wait loop of many rounds
    assert history[0]["type"] == "ExecutionStarted" and history[-1]["type"] == "ExecutionFailed"
    writes = store.history_writes(run["run_id"])
    assert len({key for key, _ in writes}) == len(writes) >= 20  # many saves, no chunk written twice
    # Every byte of history written once: what the saves wrote adds up to the history itself (the whole history
    # rewritten on every save wrote many times its size).
    assert sum(size for _, size in writes) == len(json_lines(history))
    assert run["states"] == state_timings(history)

"""The whole loop on the local stack (`autobert up`, tiny model): the first model comes from a run of the workflow;
predict → feedback that contradicts the prediction with a new label → POST /retrain → every state visited in order
→ the new version is live with no failed /predict during the swap → that text's prediction changed; then the CLI's
view (runs, models) and a rollback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest
import requests
from serving_helpers import REPO

from autobert import layout
from autobert.adapters.local_store import LocalObjectStore
from autobert.local_stack import StackProcess, stack_environment
from autobert.workflow.runs import is_final

TEXT = "zebra xylophone quokka marmalade zeppelin"
NEW_LABEL = "misc.zoo"
HAPPY_PATH = ["MergeData", "TrainOrTune", "StartTraining", "WaitForTraining", "CheckTraining", "TrainingStatus",
              "Evaluate", "PromoteOrReject", "UpdateEndpoint", "WaitForEndpoint", "CheckEndpoint", "EndpointStatus",
              "Succeeded"]


def env_for(home, tiny_bert, small_dataset) -> dict:
    return stack_environment(home, **{
        "AUTOBERT_MODEL_NAME": str(tiny_bert), "AUTOBERT_SEED_DATASET": str(small_dataset),
        "AUTOBERT_HOLDOUT_FRACTION": "0.2", "AUTOBERT_TRAIN_EPOCHS": "3", "AUTOBERT_WARM_EPOCHS": "8",
        "AUTOBERT_TRAIN_LEARNING_RATE": "0.003", "AUTOBERT_WARM_LEARNING_RATE": "0.005",
        "AUTOBERT_TRAIN_HYPERPARAMETERS": json.dumps({"max-length": "32", "batch-size": "8"}),
        "AUTOBERT_REPLAY_PER_CLASS": "20", "AUTOBERT_FEEDBACK_REPEAT": "16", "AUTOBERT_LOCAL_WAIT_SCALE": "0.005",
        "AUTOBERT_GATE_ACCURACY_MARGIN": "0.5", "AUTOBERT_GATE_MACRO_F1_MARGIN": "0.5",
        "AUTOBERT_GATE_CLASS_F1_MARGIN": "0.5", "AUTOBERT_SCHEDULE_ENABLED": "false",
        "AUTOBERT_FEEDBACK_THRESHOLD": "1000"})


class Stack(StackProcess):
    def __init__(self, env: dict):
        super().__init__(env, serving_timeout=240)

    def post(self, path: str, body: dict) -> requests.Response:
        return requests.post(f"{self.api}{path}", json=body, timeout=30)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {**self.env, "AUTOBERT_ENDPOINT_URL": self.endpoint}  # the port was 0: the stack says which it got
        return subprocess.run([sys.executable, "-m", "autobert.cli", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_bert, small_dataset):
    home = tmp_path_factory.mktemp("home")
    running = Stack(env_for(home, tiny_bert, small_dataset))
    running.store = LocalObjectStore(home / "bucket")
    yield running
    running.stop()


def visited(run: dict) -> list[str]:
    """State names in visiting order, the wait loops' repeats collapsed."""
    names: list[str] = []
    for state in run["states"]:
        for loop in (["WaitForTraining", "CheckTraining", "TrainingStatus"],
                     ["WaitForEndpoint", "CheckEndpoint", "EndpointStatus"]):
            if names[-3:] == loop and state["name"] == loop[0]:
                del names[-3:]
        names.append(state["name"])
    return names


def predict(stack: Stack) -> dict:
    response = stack.post("/predict", {"text": TEXT})
    assert response.status_code == 200, response.text
    body = response.json()
    return {"label": body["predictions"][0]["label"], "version": body["model_version"]}


def wait_for_run(store: LocalObjectStore, trigger_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.exists(layout.trigger_served_key(trigger_id)):
            run_id = store.get_json(layout.trigger_served_key(trigger_id))["run_id"]
            run = store.get_json(layout.run_record(run_id))
            if is_final(run):
                return run
        time.sleep(0.5)
    raise AssertionError("the retraining run did not finish")


def test_feedback_then_retrain_puts_a_new_version_live_that_learnt_the_correction(stack):
    first = stack.store.get_json(layout.LIVE_MODEL)["version"]
    bootstrap_run = stack.store.get_json(layout.run_record(stack.store.get_json(layout.model_record(first))["run_id"]))
    assert bootstrap_run["trigger"] == "bootstrap" and bootstrap_run["status"] == "succeeded"

    before = predict(stack)
    assert before["version"] == first and before["label"] != NEW_LABEL
    accepted = stack.post("/feedback", {"text": TEXT, "label": NEW_LABEL, "predicted_label": before["label"]})
    assert accepted.status_code == 202, accepted.text

    failures, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            try:
                response = stack.post("/predict", {"text": "the shuttle reached orbit"})
                if response.status_code != 200:
                    failures.append(response.status_code)
            except requests.RequestException as exc:
                failures.append(repr(exc))
            time.sleep(0.05)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        started = stack.post("/retrain", {})
        assert started.status_code == 202, started.text
        run = wait_for_run(stack.store, started.json()["trigger"])
    finally:
        stop.set()
        loader.join()
    assert run["status"] == "succeeded", run
    assert run["trigger"] == "manual" and run["warm"] is True
    assert visited(run) == HAPPY_PATH, [s["name"] for s in run["states"]]
    assert failures == []  # no failed /predict during the swap

    after = predict(stack)
    assert after["version"] == run["model_version"] != first
    assert after["label"] == NEW_LABEL
    record = stack.store.get_json(layout.model_record(run["model_version"]))
    assert record["status"] == "live" and NEW_LABEL in record["labels"]
    assert stack.store.get_json(layout.model_record(first))["status"] == "retired"


def test_the_cli_lists_runs_and_models_and_rolls_back(stack):
    live = stack.store.get_json(layout.LIVE_MODEL)["version"]
    records = [stack.store.get_json(k) for k in stack.store.list_keys(layout.MODELS) if k.endswith("record.json")]
    previous = next(r["version"] for r in records if r["status"] == "retired")

    runs = stack.cli("runs")
    assert runs.returncode == 0 and "succeeded" in runs.stdout
    run_id = runs.stdout.splitlines()[1].split()[0]
    shown = stack.cli("runs", "show", run_id)
    assert shown.returncode == 0 and "MergeData" in shown.stdout and "Succeeded" in shown.stdout
    models = stack.cli("models")
    assert models.returncode == 0 and live in models.stdout and previous in models.stdout
    created = [line.split()[2] for line in models.stdout.splitlines()[1:]]  # to the second, in its column
    assert created and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c) for c in created), created

    rolled = stack.cli("rollback", previous)
    assert rolled.returncode == 0, rolled.stderr
    assert predict(stack)["version"] == previous
    assert stack.store.get_json(layout.LIVE_MODEL)["version"] == previous
    bad = stack.cli("rollback", "no-such-version")
    assert bad.returncode == 2 and "no model version" in bad.stderr and "Traceback" not in bad.stderr


def test_retrain_wait_prints_each_state_as_it_completes_then_the_summary(stack):
    result = stack.cli("retrain", "--wait", timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    training = [line for line in lines if line.startswith(("  epoch ", "  training: "))]
    progress = [line.split()[0] for line in lines if line.startswith("  ") and line not in training]
    # Every state once (a wait loop's rounds are folded), in the order the run visited them.
    assert progress == HAPPY_PATH
    # And the training job's progress from its log, as CheckTraining recorded it: each epoch once, in order, with
    # its validation scores.
    epochs = [line for line in training if line.startswith("  epoch ")]
    assert [line.split()[1] for line in epochs] == [str(n) for n in range(1, len(epochs) + 1)] and epochs
    assert all(" done: val accuracy 0." in line or " done: val accuracy 1." in line for line in epochs), epochs
    run_id = result.stderr.splitlines()[0].split()[1]
    assert result.stdout.startswith(f"run {run_id}: succeeded")
    assert stack.store.get_json(layout.run_record(run_id))["trigger"] == "manual"

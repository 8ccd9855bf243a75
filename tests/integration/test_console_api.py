"""The runs console's JSON API over real stores: run records and histories from the local workflow itself (a real
failed run) or written through RunStore/ModelRegistry, the registry, feedback merged by the real merge step."""

from __future__ import annotations

import http.client
import json
import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import requests
from console_helpers import HAPPY_PATH, register_evaluated, write_run

from autobert.bootstrap import Services
from autobert.config import REPO_ROOT, Settings
from autobert.console import make_server
from autobert.data import export_dataset
from autobert.feedback import FeedbackStore
from autobert.workflow.local import LocalWorkflow
from autobert.workflow.merge import import_initial_dataset, merge_feedback
from autobert.workflow.registry import ModelRegistry
from autobert.workflow.runs import RunStore


@pytest.fixture
def services(tmp_path) -> Services:
    return Services(Settings(home=tmp_path / "home", local_wait_scale=0, feedback_threshold=5))


@pytest.fixture
def console(services):
    server = make_server(services)
    server.start()
    yield server
    server.stop()


def get(console, path: str) -> requests.Response:
    return requests.get(console.url + path, timeout=10)


def post(console, path: str, body=None, **headers) -> requests.Response:
    return requests.post(console.url + path, json=body if body is not None else {}, headers=headers, timeout=60)


def test_a_failed_local_run_is_listed_with_its_error_and_its_states_coloured_from_its_real_history(services, console):
    run = LocalWorkflow(services, prepare_dataset=False).request("manual", wait=True)["run"]  # MergeData fails
    runs = get(console, "/api/runs").json()["runs"]
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    assert runs[0]["status"] == "failed" and runs[0]["trigger"] == "manual"
    assert runs[0]["error"] == "NoDatasetError" and runs[0]["duration_seconds"] is not None

    detail = get(console, f"/api/runs/{run['run_id']}").json()
    outcomes = {name: s["outcome"] for name, s in detail["states"].items()}
    assert outcomes["MergeData"] == "failed"  # caught: the Catch took the run to RecordFailure
    assert outcomes["RecordFailure"] == "succeeded"
    assert outcomes["RunFailed"] == "failed"
    assert {n for n, o in outcomes.items() if o == "not_reached"} == set(outcomes) - {
        "MergeData", "RecordFailure", "RunFailed"}
    merge = detail["states"]["MergeData"]["visits"][0]
    assert merge["error"] == "NoDatasetError" and "no current dataset" in merge["cause"]
    assert merge["input"]["run_id"] == run["run_id"] and merge["output"]["error"]["Error"] == "NoDatasetError"
    assert merge["caught_next"] == "RecordFailure" and merge["seconds"] >= 0
    assert detail["events"][0]["type"] == "ExecutionStarted" and detail["events"][-1]["type"] == "ExecutionFailed"


def test_the_graph_is_drawn_from_the_asl_file_itself(console):
    served = get(console, "/api/statemachine").json()
    assert served == json.loads((REPO_ROOT / "statemachines" / "retrain.asl.json").read_text())


def test_a_run_in_progress_shows_the_state_it_is_in_before_that_state_has_written_anything(services, console):
    # The local runner writes the history when a state exits: the state after the last exit is the running one;
    # after a Choice, the one its rules pick for the Choice's output.
    write_run(services, "r-1", HAPPY_PATH[:4], status="running",
              overrides={"CheckTraining": {"status": "InProgress", "timed_out": False}})
    states = get(console, "/api/runs/r-1").json()["states"]
    assert states["CheckTraining"]["outcome"] == "succeeded"
    assert states["TrainingStatus"]["outcome"] == "running"
    assert states["TrainingStatus"]["visits"][-1]["inferred"] is True

    write_run(services, "r-1", HAPPY_PATH[:5], status="running",
              overrides={"CheckTraining": {"status": "InProgress", "timed_out": False}})
    states = get(console, "/api/runs/r-1").json()["states"]
    assert states["WaitForTraining"]["outcome"] == "running"  # the Choice's Default: wait and check again
    assert len(states["WaitForTraining"]["visits"]) == 2 and states["Evaluate"]["outcome"] == "not_reached"

    write_run(services, "r-1", HAPPY_PATH[:5], status="running")  # training Completed
    assert get(console, "/api/runs/r-1").json()["states"]["Evaluate"]["outcome"] == "running"

    # CheckEndpoint records the promotion (status succeeded) before the run's last states: still followed.
    write_run(services, "r-1", HAPPY_PATH[:10], status="succeeded")
    detail = get(console, "/api/runs/r-1").json()
    assert detail["status"] == "succeeded" and detail["final"] is False
    assert detail["states"]["EndpointStatus"]["outcome"] == "running"

    write_run(services, "r-1", HAPPY_PATH, status="succeeded", end="succeeded")
    detail = get(console, "/api/runs/r-1").json()
    assert detail["final"] is True
    assert {s["outcome"] for n, s in detail["states"].items() if n in HAPPY_PATH} == {"succeeded"}
    assert detail["finished_at"] and detail["status"] == "succeeded"


def test_a_run_shows_the_gate_result_with_holdout_scores_before_and_after(services, console):
    write_run(services, "r-2", HAPPY_PATH, status="succeeded", end="succeeded", trigger="threshold",
              model_version="ab-2", dataset_version="d-2", live_version_before="ab-1")
    register_evaluated(services, "ab-2", "r-2", promote=True, before=(0.81, 0.80), after=(0.84, 0.83),
                       status="candidate", live_version="ab-1")
    write_run(services, "r-3", HAPPY_PATH[:7] + ["CandidateRejected"], status="rejected", model_version="ab-3",
              overrides={"Evaluate": {"promote": False}})
    register_evaluated(services, "ab-3", "r-3", promote=False, before=(0.84, 0.83), after=(0.5, 0.4),
                       status="rejected")
    runs = {r["run_id"]: r for r in get(console, "/api/runs").json()["runs"]}
    promoted = runs["r-2"]
    assert promoted["trigger"] == "threshold" and promoted["dataset_version"] == "d-2"
    assert promoted["model_version"] == "ab-2"
    assert promoted["gate"]["result"] == "promoted"
    assert promoted["gate"]["before"] == {"accuracy": 0.81, "macro_f1": 0.80}
    assert promoted["gate"]["after"] == {"accuracy": 0.84, "macro_f1": 0.83}
    assert runs["r-3"]["gate"]["result"] == "rejected" and runs["r-3"]["gate"]["reasons"]
    assert get(console, "/api/runs/r-3").json()["states"]["CandidateRejected"]["outcome"] == "succeeded"


def test_models_registered_within_one_second_keep_the_order_they_were_made_in(services, console):
    second = datetime(2026, 11, 25, 11, 0, 0, tzinfo=UTC)
    ticks = iter([second, second + timedelta(microseconds=1), second + timedelta(microseconds=2)])
    registry = ModelRegistry(services.store, clock=lambda: next(ticks))
    for version in ("zz-first", "mm-second", "aa-third"):  # names that sort the other way round
        registry.register(version, status="candidate", model_uri=f"/models/{version}")
    assert [r["version"] for r in registry.list()] == ["zz-first", "mm-second", "aa-third"]
    assert [m["version"] for m in get(console, "/api/models").json()["models"]] == ["aa-third", "mm-second",
                                                                                   "zz-first"]


def test_models_are_listed_newest_first_with_the_live_one_marked(services, console):
    registry = ModelRegistry(services.store)
    register_evaluated(services, "ab-1", "r-1", promote=True, before=None, after=(0.8, 0.79), status="candidate",
                       model_uri="/models/ab-1")
    registry.mark_live("ab-1")
    register_evaluated(services, "ab-2", "r-2", promote=True, before=(0.8, 0.79), after=(0.83, 0.82),
                       status="candidate", model_uri="/models/ab-2")
    registry.mark_live("ab-2")
    data = get(console, "/api/models").json()
    assert data["live"]["version"] == "ab-2"
    models = data["models"]
    assert [m["version"] for m in models] == ["ab-2", "ab-1"]
    assert models[0]["live"] and not models[0]["can_roll_back"]
    assert models[1]["status"] == "retired" and models[1]["can_roll_back"]
    assert models[0]["metrics"]["accuracy"] == 0.83 and models[0]["holdout"]["macro_f1"] == 0.82
    assert get(console, "/api/health").json()["live"]["version"] == "ab-2"


def test_feedback_counts_only_items_since_the_last_merge_per_label(services, console):
    df = pd.DataFrame({"id": [f"d{i}" for i in range(12)], "text": [f"document number {i}" for i in range(12)],
                       "label": ["sci.space", "rec.autos", "talk.politics.guns"] * 4})
    import_initial_dataset(services.store, df, sorted(set(df["label"])), holdout_fraction=0.25, seed=1)
    feedback = FeedbackStore(services.store)
    feedback.submit("the shuttle launch slipped again", "sci.space")
    feedback.submit("my engine knocks at idle", "rec.autos")
    merged = merge_feedback(services.store)
    assert get(console, "/api/feedback").json()["total"] == 0
    for text in ("orbital mechanics homework", "mars rover landing", "a new moon mission"):
        feedback.submit(text, "sci.space")
    feedback.submit("brake pads squeal", "rec.autos")
    feedback.submit("a brand new label", "comp.graphics")
    data = get(console, "/api/feedback").json()
    assert data["total"] == 5 and data["threshold"] == 5
    assert data["labels"] == [{"label": "sci.space", "count": 3}, {"label": "comp.graphics", "count": 1},
                              {"label": "rec.autos", "count": 1}]
    assert data["dataset_version"] == merged.dataset_version


def test_rollback_answers_clear_errors_for_unknown_live_and_unreachable_versions(services, console):
    registry = ModelRegistry(services.store)
    register_evaluated(services, "ab-1", "r-1", promote=True, before=None, after=(0.8, 0.79), status="candidate",
                       model_uri="/models/ab-1")
    registry.mark_live("ab-1")
    register_evaluated(services, "ab-0", "r-0", promote=True, before=None, after=(0.7, 0.69), status="retired",
                       model_uri="/models/ab-0")
    response = post(console, "/api/models/nope/rollback")
    assert response.status_code == 404 and "nope" in response.json()["message"]
    response = post(console, "/api/models/ab-1/rollback")
    assert response.status_code == 409 and "already live" in response.json()["message"]
    # No endpoint listens at the configured address: 503, the rollback is recorded failed, nothing changed.
    unreachable = Services(services.settings.model_copy(update={"endpoint_url": "http://127.0.0.1:9"}))
    server = make_server(unreachable)
    server.start()
    try:
        response = requests.post(server.url + "/api/models/ab-0/rollback", json={}, timeout=30)
    finally:
        server.stop()
    assert response.status_code == 503 and "not running" in response.json()["message"]
    assert registry.live()["version"] == "ab-1"
    failed = [r for r in get(console, "/api/runs").json()["runs"] if r["trigger"] == "rollback"]
    assert failed and failed[0]["status"] == "failed"


def test_writes_need_a_json_body_from_the_console_itself(console):
    response = requests.post(console.url + "/api/retrain", data="{}", headers={"Content-Type": "text/plain"},
                             timeout=10)
    assert response.status_code == 415
    response = post(console, "/api/retrain", Origin="http://evil.example")
    assert response.status_code == 403 and "cross-origin" in response.json()["message"]
    response = requests.get(console.url + "/api/runs", headers={"Host": "evil.example"}, timeout=10)
    assert response.status_code == 403
    response = post(console, "/api/retrain", {"full": "yes"})
    assert response.status_code == 400 and "full" in response.json()["message"]
    response = requests.post(console.url + "/api/retrain", data="[1", headers={"Content-Type": "application/json"},
                             timeout=10)
    assert response.status_code == 400 and "JSON" in response.json()["message"]


def test_unknown_routes_and_ids_get_json_errors(console):
    assert get(console, "/api/runs/r-missing").status_code == 404
    response = get(console, "/api/runs/..%2F..%2Fetc")
    assert response.status_code in (400, 404) and "message" in response.json()
    assert get(console, "/static/../server.py").status_code == 404
    assert get(console, "/api/nothing").json()["message"].startswith("no route")
    assert requests.delete(console.url + "/api/runs", timeout=10).status_code == 405


def test_the_page_and_its_modules_are_served_from_the_package_with_no_external_assets(console):
    page = get(console, "/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for name in ("app.js", "graph.js", "console.css"):
        asset = get(console, f"/static/{name}")
        assert asset.status_code == 200, name
        urls = set(re.findall(r"https?://[^\s'\"`)]+", asset.text)) - {"http://www.w3.org/2000/svg"}  # a name
        assert not urls, (name, urls)


@pytest.mark.slow
def test_start_retrain_records_a_manual_trigger_and_a_run_serves_it(tmp_path):
    df = pd.DataFrame({"id": [f"d{i}" for i in range(12)], "text": [f"document number {i}" for i in range(12)],
                       "label": ["sci.space", "rec.autos", "talk.politics.guns"] * 4})
    labels = sorted(set(df["label"]))
    df["label_id"] = df["label"].map(labels.index)
    seed = export_dataset(df, labels, tmp_path / "seed")
    # A training configuration train.py refuses: the run fails fast at TrainingStatus, with no model trained.
    services = Services(Settings(home=tmp_path / "home", seed_dataset=seed, holdout_fraction=0.25,
                                 local_wait_scale=0.001, train_hyperparameters={"max-length": "4"}))
    server = make_server(services)
    server.start()
    try:
        response = requests.post(server.url + "/api/retrain", json={}, timeout=60)
        assert response.status_code == 202, response.text
        trigger = response.json()["trigger"]
        assert trigger["kind"] == "manual"
        served = LocalWorkflow(services).wait_for(trigger["id"], timeout=120, poll=0.1)  # the run that served it
        runs = requests.get(server.url + "/api/runs", timeout=10).json()["runs"]
    finally:
        server.stop()
    assert [r["run_id"] for r in runs] == [served["run_id"]] and runs[0]["trigger"] == "manual", runs
    assert runs[0]["status"] == "failed" and runs[0]["error"] == "TrainingJobFailed", runs[0]


def test_a_long_run_stays_a_bounded_answer_with_every_transition_it_took(services, console):
    loops = ["WaitForTraining", "CheckTraining", "TrainingStatus"] * 120  # a long training polled many times
    write_run(services, "r-long", ["MergeData", "StartTraining", *loops, *HAPPY_PATH[5:]], status="succeeded",
              end="succeeded")
    detail = get(console, "/api/runs/r-long").json()
    assert detail["events_total"] == 1 + 2 * (2 + len(loops) + len(HAPPY_PATH[5:])) + 1
    assert len(detail["events"]) == 500 and detail["events_offset"] == detail["events_total"] - 500
    assert detail["events"][-1]["type"] == "ExecutionSucceeded"
    visits = detail["states"]["WaitForTraining"]["visits"]
    assert len(visits) == 120 and all(v["status"] == "succeeded" for v in visits)
    assert [("input" in v) for v in visits].count(True) == 10  # documents of the last visits only
    assert {"MergeData>StartTraining", "TrainingStatus>WaitForTraining", "TrainingStatus>Evaluate",
            "EndpointStatus>Succeeded"} <= set(detail["transitions"])
    assert not any(t.endswith("#catch") for t in detail["transitions"])


def test_a_retried_state_shows_its_retries_and_succeeds(services, console):
    # aws-local-stepfunctions logs a retry as StateFailed + StateRetried, then the state's exit (no new entry).
    write_run(services, "r-retry", HAPPY_PATH[:8], status="running")
    runs = RunStore(services.store)
    events = runs.history("r-retry")
    exit_at = next(i for i, e in enumerate(events) if e["type"] == "StateExited"
                   and e["state"]["name"] == "UpdateEndpoint")
    state = {k: v for k, v in events[exit_at]["state"].items() if k != "output"}
    ts = events[exit_at]["timestamp"]
    events[exit_at:exit_at] = [
        {"type": "StateFailed", "timestamp": ts - 300, "state": state, "Error": "EndpointUnavailable",
         "Cause": "the endpoint at http://127.0.0.1:8080 is not running"},
        {"type": "StateRetried", "timestamp": ts - 290, "state": state,
         "retry": {"retrier": {"ErrorEquals": ["EndpointUnavailable"]}, "attempt": 1}}]
    runs.put_history("r-retry", events)
    detail = get(console, "/api/runs/r-retry").json()
    view = detail["states"]["UpdateEndpoint"]
    assert view["outcome"] == "succeeded" and len(view["visits"]) == 1
    visit = view["visits"][0]
    assert visit["retries"] == 1 and "error" not in visit
    assert visit["retried_errors"][0]["error"] == "EndpointUnavailable"
    assert detail["states"]["WaitForEndpoint"]["outcome"] == "running"


def test_head_answers_like_get_without_a_body(console):
    for path in ("/", "/static/app.js", "/api/runs"):
        head, get_ = requests.head(console.url + path, timeout=10), get(console, path)
        assert head.status_code == 200 and head.content == b"", path
        assert head.headers["Content-Type"] == get_.headers["Content-Type"], path
        assert int(head.headers["Content-Length"]) == len(get_.content), path
        assert head.headers["Cache-Control"] == "no-store" and head.headers["X-Content-Type-Options"] == "nosniff"


def test_a_write_over_64_kb_is_refused_413_and_the_connection_stays_usable(console):
    connection = http.client.HTTPConnection(console.host, console.port, timeout=30)
    try:
        connection.request("POST", "/api/retrain", body=b" " * (2 * 1024 * 1024),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 413 and "over 65536 bytes" in json.loads(response.read())["message"]
        sock = connection.sock
        connection.request("GET", "/api/health")
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["ok"] is True
        assert sock is not None and connection.sock is sock  # the same connection
    finally:
        connection.close()


def test_a_known_path_with_another_method_is_405_with_allow(console):
    response = requests.post(console.url + "/api/runs", json={}, timeout=10)
    assert response.status_code == 405 and response.json()["message"] == "method POST not allowed on /api/runs"
    assert "GET" in response.headers["Allow"]
    assert get(console, "/static/nope.js").json() == {"message": "no file /static/nope.js"}


def test_a_wait_loops_rounds_fold_into_one_line_and_a_retried_round_stands_alone(services, console):
    loops = ["WaitForTraining", "CheckTraining", "TrainingStatus"] * 412  # a long training polled many times
    write_run(services, "r-fold", ["MergeData", "StartTraining", *loops], status="running",
              overrides={"CheckTraining": {"status": "InProgress", "timed_out": False}})
    states = get(console, "/api/runs/r-fold").json()["states"]
    check = states["CheckTraining"]
    assert len(check["visits"]) == 412
    (group,) = check["visit_groups"]
    assert (group["first"], group["last"], group["count"], group["status"]) == (0, 411, 412, "succeeded")
    assert group["entered"] == check["visits"][0]["entered"] and group["exited"] == check["visits"][-1]["exited"]
    # The Wait state the run is in now (inferred from the last exit) is a line of its own after the folded rounds.
    assert [(g["first"], g["count"], g["status"]) for g in states["WaitForTraining"]["visit_groups"]] == [
        (0, 412, "succeeded"), (412, 1, "running")]
    assert states["MergeData"]["visit_groups"] == [{**states["MergeData"]["visit_groups"][0], "count": 1}]

    # A round that needed a retry is shown on its own line between the folded rounds before and after it.
    runs = RunStore(services.store)
    events = runs.history("r-fold")
    exits = [i for i, e in enumerate(events) if e["type"] == "StateExited" and e["state"]["name"] == "CheckTraining"]
    state = {k: v for k, v in events[exits[100]]["state"].items() if k != "output"}
    ts = events[exits[100]]["timestamp"]
    events[exits[100]:exits[100]] = [
        {"type": "StateFailed", "timestamp": ts - 2, "state": state, "Error": "TransientError", "Cause": "throttled"},
        {"type": "StateRetried", "timestamp": ts - 1, "state": state, "retry": {"attempt": 1}}]
    runs.put_history("r-fold", events)
    groups = get(console, "/api/runs/r-fold").json()["states"]["CheckTraining"]["visit_groups"]
    assert [(g["first"], g["last"], g["count"]) for g in groups] == [(0, 99, 100), (100, 100, 1), (101, 411, 311)]


def test_a_training_runs_page_shows_the_jobs_progress_from_the_run_record(services, console):
    write_run(services, "r-train", HAPPY_PATH[:4], status="running",
              overrides={"CheckTraining": {"status": "InProgress", "timed_out": False}})
    assert get(console, "/api/runs/r-train").json()["training"] is None  # the job's log shows no progress yet
    progress = {"epoch": 2, "epochs": 3, "step": 800, "steps": 1530, "loss": 0.4128, "samples_per_second": 6.5,
                "eta_seconds": 1797.0, "job_name": "ab-1", "observed_at": "2026-12-02T05:10:02+00:00",
                "history": [{"epoch": 1, "train_loss": 1.0984, "val_accuracy": 0.3333, "val_macro_f1": 0.1667,
                             "samples_per_second": 5.04}]}
    RunStore(services.store).update("r-train", training_progress=progress)
    training = get(console, "/api/runs/r-train").json()["training"]
    assert training == {**progress, "percent": 52.3, "active": True}
    write_run(services, "r-train", HAPPY_PATH, status="succeeded", end="succeeded")  # the run went on and ended
    training = get(console, "/api/runs/r-train").json()["training"]
    assert training["active"] is False and training["history"] == progress["history"]

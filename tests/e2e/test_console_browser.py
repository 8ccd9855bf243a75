"""The runs console in a real headless Chromium (Debian's `chromium`, driven by Playwright): the runs list, a failed
run's graph coloured from its real history, a running run that updates while the page is open, rollback behind
its confirmation, and the feedback counts. The page must not fetch anything but the console itself."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from console_helpers import HAPPY_PATH, register_evaluated, write_run
from serving_helpers import EndpointThread, make_model_folder

from autobert.adapters.local_endpoint import LocalEndpointDeployer
from autobert.bootstrap import Services
from autobert.config import REPO_ROOT, Settings
from autobert.console import make_server
from autobert.feedback import FeedbackStore
from autobert.workflow.local import LocalWorkflow
from autobert.workflow.registry import ModelRegistry

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make setup installs it)")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
FAIL_FILL, OK_FILL = "rgb(253, 236, 236)", "rgb(230, 244, 234)"  # --fail-soft, --ok-soft in console.css


def wait_until(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    base = Settings(home=tmp / "home", local_wait_scale=0, feedback_threshold=10)
    failed = LocalWorkflow(Services(base), prepare_dataset=False).request("manual", wait=True)["run"]  # no dataset

    endpoint = EndpointThread(base)
    services = Services(base.model_copy(update={"endpoint_url": endpoint.url}))
    old, new = make_model_folder(tmp / "m-old", "ab-old"), make_model_folder(tmp / "m-new", "ab-new")
    registry = ModelRegistry(services.store)
    register_evaluated(services, "ab-old", "r-old", promote=True, before=None, after=(0.78, 0.77),
                       status="candidate", model_uri=str(old), labels=["rec.autos", "sci.space"])
    registry.mark_live("ab-old")
    deployer = LocalEndpointDeployer(endpoint.url)
    deployer.deploy("ab-new", str(new))
    wait_until(lambda: deployer.status() == "InService" and endpoint.server.host.status()["version"] == "ab-new")
    write_run(services, "r-promoted", HAPPY_PATH, status="succeeded", end="succeeded", trigger="threshold",
              model_version="ab-new", dataset_version="d-5e0c2f", live_version_before="ab-old",
              live_version="ab-new")
    register_evaluated(services, "ab-new", "r-promoted", promote=True, before=(0.78, 0.77), after=(0.83, 0.82),
                       status="candidate", model_uri=str(new), labels=["rec.autos", "sci.space"],
                       live_version="ab-old")
    registry.mark_live("ab-new")
    feedback = FeedbackStore(services.store)
    for text, label in [("the rocket reached orbit", "sci.space"), ("a probe to jupiter", "sci.space"),
                        ("new tires for the winter", "rec.autos")]:
        feedback.submit(text, label)

    server = make_server(services)
    server.start()
    yield {"services": services, "url": server.url, "failed": failed, "endpoint": endpoint}
    server.stop()
    endpoint.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    foreign: list[str] = []
    console_host = urlsplit(stack["url"]).netloc
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: None if urlsplit(req.url).netloc == console_host or req.url.startswith("data:")
            else foreign.append(req.url))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"
    assert not foreign, f"the page fetched from outside the console: {foreign}"


def outcome(page, state: str) -> str:
    return page.get_attribute(f'svg.sfn [data-state="{state}"]', "data-outcome")


def test_the_runs_list_shows_finished_runs_with_trigger_times_and_evaluation(page, stack):
    page.goto(f"{stack['url']}/#/runs")
    failed = page.locator(f'tr[data-run-id="{stack["failed"]["run_id"]}"]')
    failed.wait_for()
    assert failed.locator(".badge").first.inner_text() == "failed"
    assert "manual" in failed.inner_text() and "NoDatasetError" in failed.inner_text()
    promoted = page.locator('tr[data-run-id="r-promoted"]')
    text = promoted.inner_text()
    assert "succeeded" in text and "threshold" in text and "d-5e0c2f" in text and "ab-new" in text
    assert "promoted" in text and "0.780 → 0.830" in text and "0.770 → 0.820" in text
    assert page.locator("th").all_inner_texts()[:6] == ["RUN", "STATUS", "TRIGGER", "STARTED", "ENDED", "DURATION"]
    failed.locator("td").nth(2).click()  # a row opens its run
    page.wait_for_selector("svg.sfn")
    assert page.url.endswith(f"#/runs/{stack['failed']['run_id']}")


def test_the_graph_of_a_failed_run_colours_each_state_by_its_outcome(page, stack):
    page.goto(f"{stack['url']}/#/runs/{stack['failed']['run_id']}")
    page.wait_for_selector('svg.sfn [data-state="RunFailed"]')
    nodes = page.locator("svg.sfn g.node")
    asl = json.loads((REPO_ROOT / "statemachines" / "retrain.asl.json").read_text())
    assert sorted(nodes.evaluate_all("els => els.map(e => e.dataset.state)")) == sorted(asl["States"])
    assert outcome(page, "MergeData") == "failed"
    assert outcome(page, "RecordFailure") == "succeeded"
    assert outcome(page, "RunFailed") == "failed"
    for state in ("StartTraining", "Evaluate", "UpdateEndpoint", "Succeeded"):
        assert outcome(page, state) == "not_reached", state
    # The path the run took: MergeData's error was caught into RecordFailure, drawn solid; no other Catch.
    assert page.locator('svg.sfn path.catch.taken').evaluate_all(
        "els => els.map(e => e.dataset.from + '>' + e.dataset.to)") == ["MergeData>RecordFailure"]
    fill = 'el => getComputedStyle(el.querySelector("rect")).fill'
    assert page.eval_on_selector('svg.sfn [data-state="MergeData"]', fill) == FAIL_FILL
    assert page.eval_on_selector('svg.sfn [data-state="RecordFailure"]', fill) == OK_FILL
    # The failed state is selected first: its error, input and output, as in the console's event history.
    assert page.inner_text("#state-name") == "MergeData"
    assert "NoDatasetError" in page.inner_text("#state-error")
    assert stack["failed"]["run_id"] in page.inner_text("#state-input")
    page.click('svg.sfn [data-state="RecordFailure"]')
    assert page.inner_text("#state-name") == "RecordFailure"
    assert '"failure"' in page.inner_text("#state-output")
    events = page.locator("table.events tr[data-event]")
    assert events.first.get_attribute("data-event") == "ExecutionStarted"
    assert events.last.get_attribute("data-event") == "ExecutionFailed"


def test_a_running_run_updates_on_the_page_without_a_reload(page, stack):
    services = stack["services"]
    write_run(services, "r-live", HAPPY_PATH[:2], status="running", trigger="manual")
    page.goto(f"{stack['url']}/#/runs/r-live")
    page.wait_for_selector('svg.sfn [data-state="WaitForTraining"][data-outcome="running"]')
    assert outcome(page, "StartTraining") == "succeeded" and outcome(page, "Evaluate") == "not_reached"
    page.evaluate("window.__sameDocument = true")

    write_run(services, "r-live", HAPPY_PATH[:5], status="running")  # training completed: evaluation next
    page.wait_for_selector('svg.sfn [data-state="Evaluate"][data-outcome="running"]', timeout=6000)
    assert outcome(page, "TrainingStatus") == "succeeded"
    assert page.inner_text("#run-status") == "running"

    write_run(services, "r-live", HAPPY_PATH, status="succeeded", end="succeeded")
    page.wait_for_selector('#run-status [data-status="succeeded"]', timeout=6000)
    assert outcome(page, "Succeeded") == "succeeded" and outcome(page, "Evaluate") == "succeeded"
    assert page.evaluate("window.__sameDocument") is True  # updated in place, never reloaded


def test_rollback_from_the_models_view_happens_only_after_confirmation(page, stack):
    registry = ModelRegistry(stack["services"].store)
    page.goto(f"{stack['url']}/#/models")
    live_row = page.locator('tr[data-version="ab-new"]')
    live_row.wait_for()
    assert live_row.get_attribute("data-live") == "true" and "live" in live_row.inner_text()
    old_row = page.locator('tr[data-version="ab-old"]')
    assert old_row.get_attribute("data-status") == "retired" and "0.780" in old_row.inner_text()

    page.click('[data-rollback="ab-old"]')
    page.wait_for_selector("#confirm[open]")
    assert "ab-old" in page.inner_text("#confirm-title")
    page.click("#confirm-cancel")
    page.wait_for_selector("#confirm:not([open])", state="attached")
    time.sleep(0.5)
    assert registry.live()["version"] == "ab-new"  # cancelled: nothing happened

    page.click('[data-rollback="ab-old"]')
    page.click("#confirm-ok")
    page.wait_for_selector('tr[data-version="ab-old"][data-live="true"]', timeout=30_000)
    assert registry.live()["version"] == "ab-old"
    assert stack["endpoint"].server.host.status()["version"] == "ab-old"  # the endpoint really swapped
    assert page.get_attribute('tr[data-version="ab-new"]', "data-status") == "retired"
    page.wait_for_function("document.getElementById('live-model').textContent.includes('ab-old')")


def test_the_feedback_view_counts_unmerged_items_per_label(page, stack):
    page.goto(f"{stack['url']}/#/feedback")
    page.wait_for_selector("#feedback-table")
    assert page.inner_text("#feedback-total") == "3"
    assert page.locator('tr[data-label="sci.space"] td').nth(1).inner_text() == "2"
    assert page.locator('tr[data-label="rec.autos"] td').nth(1).inner_text() == "1"
    assert page.locator("#start-retrain").is_enabled()


def test_a_training_run_shows_its_progress_and_its_wait_loop_folded_into_one_line(page, stack):
    services = stack["services"]
    loops = ["WaitForTraining", "CheckTraining", "TrainingStatus"] * 60
    write_run(services, "r-training", ["MergeData", "StartTraining", *loops], status="running", trigger="manual",
              overrides={"CheckTraining": {"status": "InProgress", "timed_out": False}},
              training_progress={"epoch": 2, "epochs": 3, "step": 800, "steps": 1530, "loss": 0.4128,
                                 "samples_per_second": 6.5, "eta_seconds": 1797.0, "job_name": "ab-training",
                                 "observed_at": "2026-12-02T05:10:02+00:00",
                                 "history": [{"epoch": 1, "train_loss": 1.0984, "val_accuracy": 0.3333,
                                              "val_macro_f1": 0.1667, "samples_per_second": 5.04}]})
    page.goto(f"{stack['url']}/#/runs/r-training")
    page.wait_for_selector("#training-epoch")
    assert page.inner_text("#training-epoch") == "2 / 3" and page.inner_text("#training-step") == "800 / 1530"
    assert page.inner_text("#training-speed") == "6.5" and page.inner_text("#training-eta") == "29 min 57 s"
    assert page.locator("#training-epochs tbody tr").all_inner_texts() == ["1\t1.098\t0.333\t0.167\t5.0"]
    page.click('svg.sfn [data-state="CheckTraining"]')
    assert page.inner_text("#state-name") == "CheckTraining"
    buttons = page.locator(".visit-tabs button")
    assert buttons.count() == 1 and buttons.first.get_attribute("data-visits") == "60"
    assert buttons.first.inner_text().startswith("× 60 visits (1–60), ")

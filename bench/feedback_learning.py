#!/usr/bin/env python
"""Benchmark: feedback that measurably teaches, through the running local stack and its HTTP API, on new data.

    python bench/feedback_learning.py                       # full: 20 groups, the workflow's defaults (hours)
    python bench/feedback_learning.py --from-scratch        # also a model trained from scratch on everything
    python bench/feedback_learning.py --smoke               # 5 groups x 60 documents, 1 epoch at 64 tokens: minutes

On the 20 Newsgroups train split, split by time (``autobert.data.temporal_split``, newest 20 % as ``newer``):

1. one group (``--new-label``, default ``sci.med``) is taken out of everything the first model sees;
2. the first model is trained on the older 80 % of the other groups: `autobert up` on a fresh home whose seed dataset
   is that part (the bootstrap run of the workflow: import, holdout, train, gate, swap);
3. the newer 20 % is cut in two halves by time; every document of the first half that ``/predict`` gets wrong is
   posted to ``/feedback`` with its right label (as a user would), and so are the ``--new-label-items`` (50) oldest
   documents of the held-out group;
4. ``POST /retrain`` (a warm start with the workflow's default settings), polled to its end while one client keeps
   posting ``/predict``.

Reported: accuracy on the second half before and after (target: +2 points; and within 0.5 point of a model trained
from scratch on everything the system then holds, with ``--from-scratch``: the older part, the corrections and the
new label's feedback items, what a full retrain from the base model would train on), the share of corrected texts now
predicted with their corrected label (target >= 95 %), the gate's decision, trigger-to-live time, failed ``/predict``
during the run (target 0), and the F1 of the new label on its other documents, scored with the second half
(target >= 0.8). Results: ``bench/results/feedback_learning.json`` (``feedback_learning.smoke.json`` with small
settings). Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from benchlib import cpu_model, load_average, write_result  # noqa: E402
from retrain_loop import Load  # noqa: E402  (the /predict clients of the retrain-loop bench)

from autobert import layout  # noqa: E402
from autobert.adapters.local_store import LocalObjectStore  # noqa: E402
from autobert.config import get_settings  # noqa: E402
from autobert.data import DATASET_FILE, export_dataset, prepare, read_dataset, temporal_split  # noqa: E402
from autobert.local_stack import StackProcess, stack_environment  # noqa: E402
from autobert.metrics import summary  # noqa: E402
from autobert.workflow.runs import is_final  # noqa: E402

SMOKE_GROUPS = ["comp.graphics", "rec.autos", "sci.space", "talk.politics.guns", "sci.med"]
SMOKE_SETTINGS = {"AUTOBERT_TRAIN_EPOCHS": "1", "AUTOBERT_WARM_EPOCHS": "1",
                  "AUTOBERT_TRAIN_HYPERPARAMETERS": json.dumps({"max-train-samples": "300", "max-length": "64"})}
BATCH = 32


# ------------------------------------------------------------------------------------------------------ the data
def load_train_split(source: str | None, work: Path, groups: list[str] | None, per_group: int) -> pd.DataFrame:
    settings = get_settings()
    dataset_dir, _ = prepare(source or settings.data_source, work / "prepared", settings.cache_dir)
    df = read_dataset(dataset_dir / DATASET_FILE)
    df = df[df["id"].astype(str).str.startswith("train/")]
    if groups:
        df = df[df["label"].isin(groups)]
    if per_group:
        # The oldest-to-newest order is kept: a temporal sample of each group, not a random one.
        older, newer = temporal_split(df, 0.5)
        df = pd.concat([older.groupby("label").tail(per_group // 2), newer.groupby("label").head(per_group // 2)])
    return df.reset_index(drop=True)


def export_seed(df: pd.DataFrame, folder: Path) -> Path:
    labels = sorted(df["label"].unique())
    frame = df.assign(label_id=df["label"].map({label: i for i, label in enumerate(labels)}).astype("int64"))
    return export_dataset(frame, labels, folder)


# ------------------------------------------------------------------------------------------------------- the API
def predict(api: str, texts: list[str]) -> tuple[list[str], set[str]]:
    """Labels for ``texts`` through ``POST /predict`` (batches of 32) and the versions that answered."""
    labels, versions = [], set()
    session = requests.Session()
    for start in range(0, len(texts), BATCH):
        response = session.post(f"{api}/predict", json={"instances": texts[start:start + BATCH], "top_k": 1},
                                timeout=120)
        response.raise_for_status()
        body = response.json()
        labels += [p["label"] for p in body["predictions"]]
        versions.add(body.get("model_version"))
    return labels, versions


def post_feedback(api: str, items: list[dict]) -> None:
    session = requests.Session()
    for item in items:
        response = session.post(f"{api}/feedback", json=item, timeout=30)
        if response.status_code not in (200, 201, 202):
            raise SystemExit(f"/feedback answered {response.status_code}: {response.text[:200]}")


def wait_for_run(store: LocalObjectStore, trigger: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        served = store.get_json(layout.trigger_served_key(trigger))["run_id"] \
            if store.exists(layout.trigger_served_key(trigger)) else None
        run = store.get_json(layout.run_record(served)) if served else None
        if run and is_final(run):
            return run
        time.sleep(2)
    raise SystemExit(f"the run of trigger {trigger} did not finish within {timeout:.0f} s")


def accuracy(truth: list[str], predicted: list[str]) -> float:
    return float(np.mean(np.array(truth) == np.array(predicted))) if truth else float("nan")


def label_f1(truth: list[str], predicted: list[str], label: str) -> dict:
    t, p = np.array(truth) == label, np.array(predicted) == label
    tp = int((t & p).sum())
    precision = tp / p.sum() if p.sum() else 0.0
    recall = tp / t.sum() if t.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": round(f1, 4), "precision": round(float(precision), 4), "recall": round(float(recall), 4),
            "support": int(t.sum())}


def predicted_labels(model, texts: list[str]) -> list[str]:
    """A loaded ``TextClassifier``'s labels for ``texts``, offline (not through the API)."""
    return [model.labels[i] for i in model.predict_proba(texts).argmax(1)] if texts else []


def candidate_scores(store: LocalObjectStore, version: str, evaluation: pd.DataFrame, second_half: pd.DataFrame, *,
                     new_label: str, corrected: list[dict]) -> dict | None:
    """The run's trained model (its registry record's model folder, rejected or not), scored offline on the same
    texts as the served one: what promoting it would have given, whatever the gate decided. None for a run that
    registered no model (its training failed)."""
    from autobert.modeling import TextClassifier
    from autobert.workflow.errors import UnknownModelVersion
    from autobert.workflow.registry import ModelRegistry

    try:
        record = ModelRegistry(store).get(version)
    except UnknownModelVersion:
        return None
    model = TextClassifier.load(record["model_uri"])
    predicted = predicted_labels(model, evaluation["text"].tolist())
    n2 = len(second_half)
    return {"second_half_accuracy": accuracy(evaluation["label"].tolist()[:n2], predicted[:n2]),
            "corrected_now_right": accuracy([w["label"] for w in corrected],
                                            predicted_labels(model, [w["text"] for w in corrected])),
            "new_label": label_f1(evaluation["label"].tolist(), predicted, new_label)}


# ------------------------------------------------------------------------------------------- from scratch (opt.)
def from_scratch(train: pd.DataFrame, evaluate: pd.DataFrame, work: Path, env: dict[str, str]) -> dict:
    """train.py from the base model on ``train`` with the hyperparameters the workflow gives a full retrain (the
    stack's settings), scored on ``evaluate`` as served (the fused model)."""
    from unittest import mock

    from autobert.bootstrap import Services
    from autobert.config import Settings
    from autobert.modeling import TextClassifier
    from autobert.workflow.steps import training_hyperparameters

    with mock.patch.dict(os.environ, env, clear=True):
        settings = Settings()
    hp = training_hyperparameters(Services(settings), "from-scratch", warm=False, init_path=None)
    # The result depends only on the data and the hyperparameters (seeded): a trial repeated from a copy of the same
    # home reuses it instead of training for as long as the first model again.
    key = hashlib.sha256(json.dumps([sorted(zip(train["text"], train["label"], strict=True)),
                                     sorted(zip(evaluate["text"], evaluate["label"], strict=True)),
                                     sorted(hp.items())]).encode()).hexdigest()[:16]
    cached = work / f"from-scratch-{key}.json"
    if cached.exists():
        return {**json.loads(cached.read_text()), "reused": cached.name}
    channel = work / "scratch-train"
    export_seed(train, channel)
    cmd = [sys.executable, str(REPO / "training" / "train.py"), "--train", str(channel), "--model-dir",
           str(work / "scratch-model"), *[a for k, v in hp.items() for a in (f"--{k}", str(v))]]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    predicted = predicted_labels(TextClassifier.load(work / "scratch-model"), evaluate["text"].tolist())
    result = {**summary(evaluate["label"].to_numpy(), np.array(predicted)), "train_documents": len(train),
              "hyperparameters": hp, "seconds": round(time.perf_counter() - start, 1)}
    cached.write_text(json.dumps(result, indent=2) + "\n")
    return result


# ------------------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=None, help="20NG source (default: the configured/local/canonical one)")
    p.add_argument("--home", help="Stack home (default: a fresh temporary folder).")
    p.add_argument("--new-label", default="sci.med", help="The group the first model never sees.")
    p.add_argument("--new-label-items", type=int, default=50, help="Its documents posted as feedback.")
    p.add_argument("--groups", help="Comma-separated groups to use (default: all 20).")
    p.add_argument("--per-group", type=int, default=0, help="Documents per group (0 = all), oldest half + newest half.")
    p.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                   help="An AUTOBERT_* setting for the stack (repeatable), e.g. AUTOBERT_WARM_EPOCHS=1.")
    p.add_argument("--smoke", action="store_true", help=f"{len(SMOKE_GROUPS)} groups x 60 documents, 1 epoch, 300 "
                   "training documents at 64 tokens: proves the benchmark end to end; its figures mean little.")
    p.add_argument("--from-scratch", action="store_true", help="Also train a model from scratch on everything the "
                   "system holds after the feedback (the older part, the corrections, the new label's items: what a "
                   "full retrain would see; as long as the first model) and compare.")
    p.add_argument("--first-model-only", action="store_true", help="Stop once the first model is live: a --home to "
                   "copy for several retrain trials (each trial then starts from the same live model in seconds).")
    p.add_argument("--timeout", type=float, default=4 * 3600, help="Most seconds per phase.")
    p.add_argument("--out", help="Result JSON (default: bench/results/feedback_learning[.smoke].json).")
    args = p.parse_args(argv)

    groups = SMOKE_GROUPS if args.smoke and not args.groups else (args.groups.split(",") if args.groups else None)
    per_group = args.per_group or (60 if args.smoke else 0)
    extra = {**(SMOKE_SETTINGS if args.smoke else {}), **dict(s.split("=", 1) for s in args.setting)}
    small = args.smoke or bool(args.setting) or bool(per_group) or bool(groups)
    new_items = min(args.new_label_items, 15) if args.smoke else args.new_label_items
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="autobert-bench-feedback-"))
    home.mkdir(parents=True, exist_ok=True)
    work = home / "bench"
    work.mkdir(exist_ok=True)
    log = home / "stack.log"
    print(f"home {home} (stack log: {log})", flush=True)

    # -------------------------------------------------------------------------------------------------- the data
    df = load_train_split(args.source, work, groups, per_group)
    if args.new_label not in set(df["label"]):
        raise SystemExit(f"--new-label {args.new_label}: no such group in the data")
    new_group = df[df["label"] == args.new_label]
    known = df[df["label"] != args.new_label]
    older, newer = temporal_split(known, 0.2)
    first_half, second_half = temporal_split(newer, 0.5)
    first_half, second_half = first_half.reset_index(drop=True), second_half.reset_index(drop=True)
    new_old, new_rest = temporal_split(new_group, 1 - min(new_items, len(new_group) - 1) / len(new_group))
    new_feedback = new_old.head(new_items)
    evaluation = pd.concat([second_half, new_rest], ignore_index=True)  # old labels + the new one's other items
    seed = export_seed(older, work / "seed-dataset")
    print(f"documents: first model {len(older)} ({older['label'].nunique()} groups), first half {len(first_half)}, "
          f"second half {len(second_half)}; new label {args.new_label}: {len(new_feedback)} as feedback, "
          f"{len(new_rest)} held out", flush=True)

    env = stack_environment(home, AUTOBERT_SEED_DATASET=str(seed), AUTOBERT_FIRST_MODEL="bert", **extra)
    store = LocalObjectStore(home / "bucket")
    started = time.monotonic()
    stack = StackProcess(env, serving_timeout=args.timeout, log=log)
    first_model_seconds = round(time.monotonic() - started, 1)
    try:
        first = stack.version
        print(f"first model {first} live after {first_model_seconds:.0f} s", flush=True)
        if args.first_model_only:
            return 0
        before_first, _ = predict(stack.api, first_half["text"].tolist())
        before_eval, _ = predict(stack.api, evaluation["text"].tolist())
        wrong = [{"text": t, "label": lbl, "predicted_label": guess}
                 for t, lbl, guess in zip(first_half["text"], first_half["label"], before_first, strict=True)
                 if guess != lbl]
        news = [{"text": t, "label": lbl} for t, lbl in zip(new_feedback["text"], new_feedback["label"], strict=True)]
        post_feedback(stack.api, wrong + news)
        print(f"posted {len(wrong)} corrections ({len(wrong) / len(first_half):.1%} of the first half wrong) and "
              f"{len(news)} items of the new label", flush=True)

        load = Load(stack.api, clients=1, think=0.2).start()
        time.sleep(2)
        t_trigger = time.time()
        response = requests.post(f"{stack.api}/retrain", json={}, timeout=30)
        response.raise_for_status()
        run = wait_for_run(store, response.json()["trigger"], args.timeout)
        t_end = time.time()
        time.sleep(2)
        load.finish()
        new_version = run.get("model_version")
        t_live = load.first_served_by(new_version) if run["status"] == "succeeded" else None

        after_eval, versions = predict(stack.api, evaluation["text"].tolist())
        corrected_texts = [w["text"] for w in wrong]
        after_corrected, _ = predict(stack.api, corrected_texts) if corrected_texts else ([], set())
    finally:
        stack.stop()
    # What the candidate would have served, promoted or not: the figures to tune the warm start by.
    candidate = candidate_scores(store, new_version, evaluation, second_half, new_label=args.new_label,
                                 corrected=wrong) if new_version else None

    n2 = len(second_half)
    truth_eval = evaluation["label"].tolist()
    failed = [r for r in load.results if r[1] != 200]
    result = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_at_end": load_average()},
        "smoke": small, "settings": extra, "groups": sorted(df["label"].unique()),
        "documents": {"first_model": len(older), "first_half": len(first_half), "second_half": n2,
                      "new_label_feedback": len(new_feedback), "new_label_held_out": len(new_rest)},
        "first_model": {"version": first, "seconds_to_live": first_model_seconds},
        "feedback": {"corrections": len(wrong), "new_label_items": len(news)},
        "run": {"run_id": run["run_id"], "status": run["status"], "warm_start": run.get("warm"),
                "gate": run.get("gate"), "new_version": new_version, "served_after": sorted(v for v in versions if v),
                "trigger_to_live_seconds": round(t_live - t_trigger, 1) if t_live else None,
                "trigger_to_run_end_seconds": round(t_end - t_trigger, 1)},
        "second_half_accuracy": {"before": accuracy(truth_eval[:n2], before_eval[:n2]),
                                 "after": accuracy(truth_eval[:n2], after_eval[:n2]), "target_gain_points": 2.0},
        "corrected_now_right": {"share": accuracy([w["label"] for w in wrong], after_corrected), "target": 0.95},
        "new_label": {"label": args.new_label, "before": label_f1(truth_eval, before_eval, args.new_label),
                      "after": label_f1(truth_eval, after_eval, args.new_label), "target_f1": 0.8},
        "predict_during_run": {"sent": len(load.results), "failed": len(failed),
                               "failures": [str(r[1]) for r in failed[:20]]},
        "candidate": candidate,
    }
    acc = result["second_half_accuracy"]
    acc["gain_points"] = round(100 * (acc["after"] - acc["before"]), 2)
    if args.from_scratch:
        print("from scratch: training on the older part + the corrections + the new label's items...", flush=True)
        corrections = pd.DataFrame([{"id": f"fb/{i}", "text": w["text"], "label": w["label"]}
                                    for i, w in enumerate(wrong)], columns=["id", "text", "label"])
        scratch = from_scratch(pd.concat([older, corrections, new_feedback], ignore_index=True), second_half,
                               work, env)
        result["from_scratch"] = {**scratch, "warm_minus_scratch_points":
                                  round(100 * (acc["after"] - scratch["accuracy"]), 2), "target_within_points": 0.5}

    out = Path(args.out) if args.out else REPO / "bench" / "results" / (
        "feedback_learning.smoke.json" if small else "feedback_learning.json")
    write_result(out, result)

    r = result["run"]
    print(f"\nmachine: {result['machine']['cpu']}, {result['machine']['cores']} cores"
          f"{'  (SMOKE settings: figures mean little)' if small else ''}")
    print(f"run {r['run_id']}: {r['status']} ({'warm start' if r['warm_start'] else 'full'}); gate: {r['gate']}")
    print(f"second half accuracy: {acc['before']:.4f} -> {acc['after']:.4f} ({acc['gain_points']:+.2f} points; "
          "target +2)")
    if "from_scratch" in result:
        s = result["from_scratch"]
        print(f"from scratch on everything: {s['accuracy']:.4f} (warm - scratch {s['warm_minus_scratch_points']:+.2f} "
              "points; target within 0.5)")
    if result["candidate"]:
        k = result["candidate"]
        print(f"the run's candidate, scored offline: second half {k['second_half_accuracy']:.4f}, corrected "
              f"{k['corrected_now_right']:.1%}, new label F1 {k['new_label']['f1']:.3f}")
    c = result["corrected_now_right"]
    print(f"corrected texts now predicted with their corrected label: {c['share']:.1%} of {len(wrong)} (target 95 %)")
    nl = result["new_label"]
    print(f"new label {nl['label']} ({len(news)} feedback items): F1 {nl['before']['f1']:.3f} -> "
          f"{nl['after']['f1']:.3f} on {nl['after']['support']} held-out items (target 0.8)")
    print(f"trigger -> live: {r['trigger_to_live_seconds']} s (run end {r['trigger_to_run_end_seconds']} s); "
          f"/predict during the run: {result['predict_during_run']['sent']} sent, "
          f"{result['predict_during_run']['failed']} failed")
    print(f"results: {out}")
    return 0 if r["status"] in ("succeeded", "rejected") and not failed else 1


if __name__ == "__main__":
    sys.exit(main())

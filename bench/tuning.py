#!/usr/bin/env python
"""Benchmark: a small local tuning budget vs the default training parameters, on the same data and split.

    python bench/tuning.py                                    # 6 trials on a 2,000-document subsample (slow on CPU)
    python bench/tuning.py --trials 3 --timeout 1800 --max-train-samples 1000

On the shared 20 Newsgroups train split with the offline default model: (1) one training run with the default
parameters (what a full retrain uses today: train.py's defaults and the workflow's epochs/learning rate), (2) a local
tuning study (``autobert.tuning.local.LocalTuner``: TPE + median pruning, the default search space unless --space)
over the same subsample, (3) one training run with the best parameters found. All three use the training job's
own stratified split (seed 42), so validation and test documents are the same. Reports validation macro-F1 (the
objective) and accuracy, test scores (never seen by the tuner), and wall time of each part; writes
``bench/results/tuning.json``. Not a test: with the defaults it takes an hour or more on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from benchlib import cpu_model as machine  # noqa: E402
from benchlib import write_result  # noqa: E402

from autobert.adapters.local_store import LocalObjectStore  # noqa: E402
from autobert.config import get_settings  # noqa: E402
from autobert.data import prepare  # noqa: E402
from autobert.tuning.local import LocalTuner  # noqa: E402
from autobert.tuning.service import current_defaults, parse_assignments, resolve_space  # noqa: E402
from autobert.tuning.space import SearchSpace  # noqa: E402

TRAIN = REPO / "training" / "train.py"


def train_once(dataset: Path, model_dir: Path, params: dict[str, str], threads: int | None) -> dict:
    """One run of the real training job; returns its scores and wall time."""
    cmd = [sys.executable, str(TRAIN), "--train", str(dataset), "--model-dir", str(model_dir), "--progress", "false",
           *[x for k, v in params.items() for x in (f"--{k}", v)]]
    env = None
    if threads:
        import os

        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - started
    m = json.loads((model_dir / "metrics.json").read_text())
    best_val = max(h["val_macro_f1"] for h in m["history"] if h.get("val_macro_f1") is not None)
    return {
        "params": params,
        "validation_macro_f1": best_val,  # the tuning objective: BERT at the epoch the job keeps
        "validation": {k: m["components"]["validation"][k] for k in ("bert", "fused")},
        "test": {k: m["components"].get("test", {}).get(k) for k in ("bert", "fused")},
        "wall_seconds": wall,
        "epochs_run": m["training"]["epochs_run"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=None, help="20NG source (default: the configured/local/canonical one)")
    p.add_argument("--model-name", default="offline-default")
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--timeout", type=float, default=3 * 3600, help="Tuning wall-time budget (s).")
    p.add_argument("--max-train-samples", type=int, default=2000, help="Subsample every run trains on.")
    p.add_argument("--space", default=None, help="Search space JSON file (default: the built-in space).")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="Fixed train.py hyperparameter for every "
                   "run, e.g. --set max-train-minutes=20 (repeatable).")
    p.add_argument("--startup-trials", type=int, default=2, help="Completed trials before pruning starts.")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per training process.")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tuning.json")
    args = p.parse_args()
    settings = get_settings()
    space = resolve_space(settings, args.space) if args.space else SearchSpace.default()
    static = {"model-name": args.model_name, "seed": "42", "max-train-samples": str(args.max_train_samples),
              **parse_assignments(args.set)}
    space.check_static(static)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset, _ = prepare(args.source or settings.data_source, tmp / "dataset", settings.cache_dir)
        store = LocalObjectStore(tmp / "bucket")  # a fresh bucket: no tuned defaults leak into the baseline
        defaults = {k: v for k, v in current_defaults(settings, store).items() if k in space.names}

        print(f"[1/3] default parameters: {defaults}", flush=True)
        baseline = train_once(dataset, tmp / "baseline", {**static, **defaults}, args.threads)

        print(f"[2/3] tuning: {args.trials} trials / {args.timeout:g} s", flush=True)
        tuner = LocalTuner(store=store, space=space, train_channel=dataset, work_dir=tmp / "tuning", static=static,
                           seed=42, startup_trials=args.startup_trials, threads=args.threads,
                           on_trial=lambda t: print(f"  trial {t['number']} {t['state']} value={t['value']} "
                                                    f"({t['seconds']} s) {t['params']}", flush=True))
        study = tuner.run(args.trials, args.timeout)

        best = study["best"]
        print(f"[3/3] best parameters: {best['params']}", flush=True)
        tuned = train_once(dataset, tmp / "tuned", {**static, **best["params"]}, args.threads)

    result = {
        "machine": machine(),
        "config": {"model_name": args.model_name, "trials": args.trials, "timeout_seconds": args.timeout,
                   "max_train_samples": args.max_train_samples, "space": space.to_dict(), "static": static,
                   "startup_trials": args.startup_trials},
        "default": baseline,
        "tuning": {"wall_seconds": study["wall_seconds"], "stopped_by": study["stopped_by"],
                   "trials": study["trials"], "best": best,
                   "states": {s: sum(t["state"] == s for t in study["trials"]) for s in ("COMPLETE", "PRUNED",
                                                                                          "FAIL")}},
        "tuned": tuned,
        "gain_validation_macro_f1": tuned["validation_macro_f1"] - baseline["validation_macro_f1"],
    }
    write_result(args.out, result)

    print(f"\nmachine: {result['machine']}; model {args.model_name}; {args.max_train_samples} training documents")
    print(f"{'parameters':<10} {'val macro-F1':>12} {'val acc (fused)':>15} {'test macro-F1 (fused)':>21} {'wall':>8}")
    for name, r in (("default", baseline), ("tuned", tuned)):
        test = r["test"]["fused"] or {}
        print(f"{name:<10} {r['validation_macro_f1']:>12.4f} {r['validation']['fused']['accuracy']:>15.4f} "
              f"{test.get('macro_f1', float('nan')):>21.4f} {r['wall_seconds']:>7.0f}s")
    states = result["tuning"]["states"]
    print(f"tuning: {len(study['trials'])} trials ({states['COMPLETE']} complete, {states['PRUNED']} pruned, "
          f"{states['FAIL']} failed) in {study['wall_seconds']:.0f} s; best trial {best['number']} "
          f"val macro-F1 {best['value']:.4f}: {best['params']}")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

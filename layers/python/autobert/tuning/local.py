"""The local tuner: Optuna over the shared search space, every trial a real run of the local training job
(``training/train.py`` as a process, exactly as ``autobert train`` and the local training-job adapter run it).

Pruning reads the job's own epoch lines with the SageMaker metric regexes (``autobert.tuning.metrics``): after each
epoch the trial reports validation macro-F1 to Optuna and a trial the pruner (median rule, from the first epoch on)
calls hopeless is killed. The budget is a trial count and a wall time; a trial still running when the wall time runs
out is stopped too, so the budget is a real upper bound. The study record is saved to the bucket after every trial.
"""

from __future__ import annotations

import collections
import math
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autobert.config import REPO_ROOT
from autobert.contracts import METRICS_FILE, OBJECTIVE_METRIC
from autobert.errors import AutobertError
from autobert.ports import ObjectStore
from autobert.tuning.errors import TuningError
from autobert.tuning.metrics import parse_epoch
from autobert.tuning.records import save_study
from autobert.tuning.space import Choice, SearchSpace, validate_budget

TRAIN_SCRIPT = REPO_ROOT / "training" / "train.py"
SETUP_ERROR_EXIT = 2  # train.py's exit code for bad data/config: every trial would fail the same way
TAIL_LINES = 20


class TrialFailed(AutobertError):
    """One trial's training process failed or was stopped; the study goes on unless ``stop_study`` is set."""

    def __init__(self, reason: str, *, stop_study: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.stop_study = stop_study


def new_study_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _argv(params: Mapping[str, str]) -> list[str]:
    return [item for name, value in params.items() for item in (f"--{name}", str(value))]


@dataclass
class LocalTuner:
    store: ObjectStore
    space: SearchSpace
    train_channel: Path
    work_dir: Path  # trial model folders and logs go under <work_dir>/<study_id>/
    static: dict[str, str] = field(default_factory=dict)
    seed: int = 42
    startup_trials: int = 2  # completed trials before the median rule may prune
    train_script: Path = TRAIN_SCRIPT
    python: str = sys.executable
    threads: int | None = None  # CPU threads per trial process (None: torch's default, one per core)
    on_trial: Callable[[dict[str, Any]], None] | None = None  # called with each finished trial's record

    def run(self, trials: int, timeout_seconds: float, *, enqueue: Iterable[Mapping[str, Choice]] = (),
            study_id: str | None = None) -> dict[str, Any]:
        """Run a study within the budget; return (and save) its record. Raises TuningError, after saving the
        record, when no trial completed."""
        import optuna

        validate_budget(trials, timeout_seconds)
        self.space.check_static(self.static)
        if not Path(self.train_channel).exists():
            raise TuningError(f"{self.train_channel}: training data not found")
        study_id = study_id or new_study_id()
        # Optuna logs a caught trial failure with its traceback; the CLI reports trials itself, one line each.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.create_study(
            study_name=study_id, direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=self.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=self.startup_trials, n_warmup_steps=0))
        for point in enqueue:
            study.enqueue_trial(dict(point), skip_if_exists=True)

        started = time.monotonic()
        deadline = started + timeout_seconds
        record: dict[str, Any] = {
            "study_id": study_id, "backend": "local", "objective": OBJECTIVE_METRIC, "direction": "maximize",
            "status": "running", "created_at": _now(), "finished_at": None,
            "budget": {"trials": trials, "timeout_seconds": timeout_seconds},
            "space": self.space.to_dict(), "static_hyperparameters": dict(self.static),
            "train_channel": str(self.train_channel),
            "sampler": {"type": "TPESampler", "seed": self.seed},
            "pruner": {"type": "MedianPruner", "n_startup_trials": self.startup_trials, "n_warmup_steps": 0},
            "trials": [], "best": None, "wall_seconds": 0.0,
        }
        stop_reason: list[str] = []

        folder = self.work_dir / study_id
        folder.mkdir(parents=True, exist_ok=True)

        def objective(trial) -> float:
            return self._run_trial(trial, study_id, folder, deadline, stop_reason)

        def after_trial(study, frozen) -> None:
            record["trials"] = [trial_record(t) for t in study.trials if t.state.is_finished()]
            record["best"] = best_of(record["trials"])
            record["wall_seconds"] = round(time.monotonic() - started, 3)
            save_study(self.store, record)
            if self.on_trial:
                self.on_trial(record["trials"][-1])
            if stop_reason:
                study.stop()

        try:
            study.optimize(objective, n_trials=trials, timeout=timeout_seconds, catch=(TrialFailed,),
                           callbacks=[after_trial])
        except KeyboardInterrupt:
            record.update(status="interrupted", finished_at=_now())
            save_study(self.store, record)
            raise
        finished = [t for t in study.trials if t.state.is_finished()]
        record["trials"] = [trial_record(t) for t in finished]
        record["best"] = best_of(record["trials"])
        record["wall_seconds"] = round(time.monotonic() - started, 3)
        record["finished_at"] = _now()
        if stop_reason:
            record["stopped_by"] = stop_reason[0]
        elif len(finished) >= trials:
            record["stopped_by"] = "trials"
        else:
            record["stopped_by"] = "timeout"
        record["status"] = "completed" if record["best"] else "failed"
        save_study(self.store, record)
        if not record["best"]:
            last = record["trials"][-1] if record["trials"] else None
            detail = f"; trial {last['number']} {last['state']}: {last.get('reason')}" if last else ""
            raise TuningError(f"study {study_id}: no trial completed ({record['stopped_by']}){detail}")
        return record

    # ---------------------------------------------------------------------------------------------------- trial
    def _run_trial(self, trial, study_id: str, folder: Path, deadline: float, stop_reason: list[str]) -> float:
        import optuna

        params = self.space.suggest(trial)
        trial.set_user_attr("hyperparameters", params)
        model_dir = folder / f"trial-{trial.number}"
        shutil.rmtree(model_dir, ignore_errors=True)
        log_path = folder / f"trial-{trial.number}.log"
        trial.set_user_attr("log", str(log_path))
        cmd = [self.python, str(self.train_script), "--train", str(self.train_channel), "--model-dir", str(model_dir),
               "--output-data-dir", str(model_dir / "output"), "--progress", "false",
               "--model-version", f"tune-{study_id}-{trial.number}", *_argv(self.static), *_argv(params)]
        started = time.monotonic()
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        env = None
        if self.threads:
            # On a shared CPU, torch's default of one thread per core can run 20x slower than one thread.
            env = {**os.environ, "OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env)
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        reader.start()
        epochs = 0
        try:
            with log_path.open("w") as log:
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        stop_reason.append("timeout")
                        raise TrialFailed(f"stopped after {epochs} epoch(s): the wall-time budget ran out")
                    try:
                        line = lines.get(timeout=min(1.0, remaining))
                    except queue.Empty:
                        continue
                    if line is None:
                        break
                    log.write(line)
                    tail.append(line.rstrip())
                    epoch = parse_epoch(line)
                    if epoch is None:
                        continue
                    step, value = epoch
                    epochs += 1
                    trial.report(value, step)
                    if trial.should_prune():
                        trial.set_user_attr("reason", f"pruned after epoch {step}: {OBJECTIVE_METRIC} {value:.4f} "
                                                      "below the median of earlier trials")
                        raise optuna.TrialPruned()
            code = proc.wait()
            if code != 0:
                error = next((t for t in reversed(tail) if t.startswith("error:")), tail[-1] if tail else "")
                setup = code == SETUP_ERROR_EXIT
                if setup:
                    stop_reason.append("training setup error")
                raise TrialFailed(f"training exited with code {code}: {error}", stop_study=setup)
            return self._score(trial, model_dir)
        except TrialFailed as exc:
            trial.set_user_attr("reason", exc.reason)
            raise
        finally:
            _stop(proc)
            trial.set_user_attr("seconds", round(time.monotonic() - started, 3))
            shutil.rmtree(model_dir, ignore_errors=True)

    @staticmethod
    def _score(trial, model_dir: Path) -> float:
        import json

        try:
            metrics = json.loads((model_dir / METRICS_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise TrialFailed(f"training finished without a readable {METRICS_FILE} ({exc})") from exc
        scores = [h["val_macro_f1"] for h in metrics.get("history", []) if h.get("val_macro_f1") is not None]
        scores = [s for s in scores if math.isfinite(s)]
        if not scores:
            raise TrialFailed("training reported no validation macro-F1 (no validation split?)", stop_study=True)
        fused = (metrics.get("validation") or {}).get("macro_f1")
        trial.set_user_attr("best_epoch", metrics.get("training", {}).get("best_epoch"))
        trial.set_user_attr("fused_validation_macro_f1", fused)
        # The epoch the training job keeps (its best validation macro-F1): the model the trial would ship.
        return max(scores)


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()


def trial_record(trial) -> dict[str, Any]:
    attrs = trial.user_attrs
    return {
        "number": trial.number,
        "state": trial.state.name,
        "params": attrs.get("hyperparameters", {}),
        "value": trial.value,
        "intermediate": {str(step): v for step, v in sorted(trial.intermediate_values.items())},
        "seconds": attrs.get("seconds"),
        "best_epoch": attrs.get("best_epoch"),
        "fused_validation_macro_f1": attrs.get("fused_validation_macro_f1"),
        "reason": attrs.get("reason"),
        "log": attrs.get("log"),
    }


def best_of(trials: list[dict[str, Any]]) -> dict[str, Any] | None:
    complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    if not complete:
        return None
    # Ties go to the earlier trial (e.g. the current defaults, enqueued first).
    best = max(complete, key=lambda t: (t["value"], -t["number"]))
    return {"number": best["number"], "value": best["value"], "params": best["params"]}

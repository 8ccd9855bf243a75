"""What the local orchestrator itself costs while a training job runs: one local run (the ASL executed by
aws-local-stepfunctions, the step handlers in this process) whose training job stays InProgress for ``--minutes``,
with the settings' defaults (``AUTOBERT_LOCAL_WAIT_SCALE`` 1: the ASL's 60 s training poll). Reports the CPU time of
this process (the run loop, the task handlers, the history saves) and of the Node runner, per minute of the wait, as
% of one core, and what the history weighs at the end.

    python bench/orchestrator_cpu.py --minutes 3

The training job is a stand-in script that sleeps (its own CPU is not counted): what is measured is the
orchestration around it. Not a test: minutes of wall time, little CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "layers" / "python"))

from benchlib import cpu_model, write_result  # noqa: E402

from autobert.adapters.local_training import LocalTrainingJobs  # noqa: E402
from autobert.bootstrap import bootstrap  # noqa: E402
from autobert.config import Settings  # noqa: E402
from autobert.data import export_dataset  # noqa: E402
from autobert.workflow.local import LocalWorkflow  # noqa: E402
from autobert.workflow.runs import RunStore  # noqa: E402

TRAINING = """\
import os, pathlib, sys, time
time.sleep(float(os.environ["BENCH_TRAINING_SECONDS"]))
pathlib.Path(os.environ["SM_OUTPUT_DIR"], "failure").write_text("the stand-in training job ended")
sys.exit(1)
"""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str) -> float:
    """utime + stime of a process, all its threads (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def node_runner() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == os.getpid() and any(part.endswith(b"run.mjs") for part in cmdline):
                return int(entry.name)
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=3.0, help="How long the training job stays InProgress.")
    p.add_argument("--out", help="Result JSON (default: print only).")
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="autobert-bench-orchestrator-"))
    df = pd.DataFrame({"id": [f"d{i}" for i in range(12)], "text": [f"document number {i}" for i in range(12)],
                       "label": ["sci.space", "rec.autos", "talk.politics.guns"] * 4})
    labels = sorted(set(df["label"]))
    df["label_id"] = df["label"].map(labels.index)
    seed = export_dataset(df, labels, home / "seed")
    script = home / "stand_in_training.py"
    script.write_text(TRAINING)
    os.environ["BENCH_TRAINING_SECONDS"] = str(args.minutes * 60)
    settings = Settings(mode="local", home=home / "home", seed_dataset=seed, holdout_fraction=0.25)
    services = bootstrap(settings, training_jobs=LocalTrainingJobs(settings.home / "training-jobs", script))

    samples: list[tuple[float, float, float]] = []  # (wall, this process, node) in seconds
    done = threading.Event()

    def sample() -> None:
        node = None
        jobs = settings.home / "training-jobs"
        while not (jobs.is_dir() and any(jobs.iterdir())) and not done.wait(0.5):
            pass  # MergeData and StartTraining are not the wait: measure from the job's start
        done.wait(2.0)
        while not done.wait(5.0):
            node = node or node_runner()
            try:
                node_cpu = cpu_seconds(node) if node else 0.0
            except OSError:  # the runner ended
                break
            samples.append((time.monotonic(), cpu_seconds("self"), node_cpu))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = LocalWorkflow(services).request("manual", wait=True)
    done.set()
    sampler.join()
    run = result["run"]
    history = RunStore(services.store).history(run["run_id"])
    # The wait: from the first sample (the job started) to the last one before the job ended.
    per_minute = []
    start = samples[0]
    for i in range(1, int(args.minutes) + 1):
        upto = [s for s in samples if s[0] - start[0] <= 60 * i]
        if not upto or upto[-1][0] - start[0] < 60 * i - 6:
            break
        prev = per_minute[-1]["_at"] if per_minute else start
        end = upto[-1]
        wall = end[0] - prev[0]
        per_minute.append({"minute": i, "python_pct": round(100 * (end[1] - prev[1]) / wall, 3),
                           "node_pct": round(100 * (end[2] - prev[2]) / wall, 3), "_at": end})
    end = samples[-1]
    wall = end[0] - start[0]
    report = {
        "cpu": cpu_model(),
        "load": os.getloadavg(), "run_status": run["status"], "wait_seconds": round(wall, 1),
        "python_pct": round(100 * (end[1] - start[1]) / wall, 3),
        "node_pct": round(100 * (end[2] - start[2]) / wall, 3),
        "per_minute": [{k: v for k, v in m.items() if k != "_at"} for m in per_minute],
        "history_events": len(history),
        "check_training_visits": sum(s["name"] == "CheckTraining" for s in run["states"]),
        "history_bytes": len(json.dumps(history)),
        "run_folder_bytes": sum(len(services.store.get_bytes(k))
                                for k in services.store.list_keys(f"runs/{run['run_id']}/")),
    }
    print(json.dumps(report, indent=2))
    if args.out:
        write_result(Path(args.out), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training jobs as local processes: ``training/train.py`` with SageMaker's ``SM_*`` variables pointing at local
folders.

Each job has a folder ``<root>/<job_name>/`` with ``job.json`` (spec, pid, start time) and, once the process ends,
``status.json`` (Completed or Failed with the reason), plus ``train.log``. A small supervisor process
(``python -m autobert.adapters.local_training <job folder>``) runs the script and writes ``status.json``, so
``describe()`` works from any process and after the caller is gone. The model lands where SageMaker's artifacts go:
``<output_uri>/<job_name>/model/`` (the model folder) and ``.../output/`` (metrics.json, holdout.json).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from autobert.ports import TrainingJobs, TrainingJobSpec, TrainingJobState, TuningJobs
from autobert.training_log import training_progress
from autobert.tuning.errors import TuningConfigError
from autobert.workflow.errors import EvaluationError, TrainingStartError

JOB_FILE, STATUS_FILE, LOG_FILE = "job.json", "status.json", "train.log"
TAIL_CHARS = 2000

logger = logging.getLogger("autobert.training")


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    tmp.replace(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A finished child we never reaped is a zombie: dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


class LocalTrainingJobs(TrainingJobs):
    def __init__(self, root: Path, train_script: Path, python: str = sys.executable):
        self.root = Path(root)
        self.train_script = Path(train_script)
        self.python = python

    def _folder(self, job_name: str) -> Path:
        return self.root / job_name

    def start(self, spec: TrainingJobSpec) -> None:
        for name, uri in spec.channels.items():
            if not Path(uri).exists():
                raise TrainingStartError(f"channel {name}: {uri} does not exist")
        folder = self._folder(spec.job_name)
        try:
            folder.mkdir(parents=True, exist_ok=False)
        except FileExistsError as exc:
            raise TrainingStartError(f"training job {spec.job_name} already exists") from exc
        base = Path(spec.output_uri) / spec.job_name
        env = {
            **os.environ,
            "TRAINING_JOB_NAME": spec.job_name,
            "SM_MODEL_DIR": str(base / "model"),
            "SM_OUTPUT_DATA_DIR": str(base / "output"),
            "SM_OUTPUT_DIR": str(folder),  # train.py writes its failure reason to <SM_OUTPUT_DIR>/failure
            "SM_HPS": json.dumps(spec.hyperparameters),
            **{f"SM_CHANNEL_{name.upper()}": uri for name, uri in spec.channels.items()},
        }
        args = [self.python, str(self.train_script)]
        for key, value in spec.hyperparameters.items():
            args += [f"--{key}", str(value)]
        job = {"job_name": spec.job_name, "args": args, "channels": spec.channels,
               "hyperparameters": spec.hyperparameters, "model_dir": env["SM_MODEL_DIR"],
               "output_dir": env["SM_OUTPUT_DATA_DIR"], "started_at": time.time(),
               "env": {k: v for k, v in env.items() if k.startswith(("SM_", "TRAINING_JOB_NAME"))}}
        _write_json(folder / JOB_FILE, job)
        with open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(
                [self.python, "-m", "autobert.adapters.local_training", str(folder)], env=env, stdin=devnull,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)  # its own session: a Ctrl-C of the caller does not kill the job
        job["supervisor_pid"] = proc.pid
        _write_json(folder / JOB_FILE, job)
        logger.info("training job %s started; its log: %s", spec.job_name, folder / LOG_FILE)
        threading.Thread(target=proc.wait, daemon=True).start()  # reap it: no zombie in a long-lived caller

    def describe(self, job_name: str) -> TrainingJobState:
        folder = self._folder(job_name)
        try:
            job = json.loads((folder / JOB_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise TrainingStartError(f"no training job {job_name}") from exc
        try:
            status = json.loads((folder / STATUS_FILE).read_text())
        except (OSError, ValueError):
            pid = job.get("supervisor_pid")
            if pid and not _alive(pid):
                # Re-read: the supervisor may have written status.json between our two reads.
                if (folder / STATUS_FILE).exists():
                    return self.describe(job_name)
                return TrainingJobState(job_name, "Failed", "the training process died without a status")
            return TrainingJobState(job_name, "InProgress")
        state = status["status"]
        done = state == "Completed"
        return TrainingJobState(job_name, state, status.get("failure_reason"),
                                model_uri=job["model_dir"] if done else None,
                                output_uri=job["output_dir"] if done else None)

    def stop(self, job_name: str) -> None:
        folder = self._folder(job_name)
        job = json.loads((folder / JOB_FILE).read_text())
        (folder / "stop").write_text("stop requested\n")
        pid = job.get("training_pid")
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)

    def init_model_path(self, channel: str, uri: str) -> str:
        return uri  # the local job reads the model folder in place

    def read_report(self, output_uri: str, name: str) -> dict:
        try:
            return json.loads((Path(output_uri) / name).read_text())
        except (OSError, ValueError) as exc:
            raise EvaluationError(f"{output_uri}: cannot read {name} ({exc})") from exc

    def progress(self, job_name: str) -> dict | None:
        try:
            text = (self._folder(job_name) / LOG_FILE).read_text(errors="replace")
        except OSError:
            return None  # not started yet (the supervisor creates the log), or gone
        return training_progress(text.splitlines())

    def log_tail(self, job_name: str) -> str:
        try:
            return (self._folder(job_name) / LOG_FILE).read_text()[-TAIL_CHARS:]
        except OSError:
            return ""


class LocalTuningJobs(TuningJobs):
    """The local stack runs no tuning jobs: the tuning path of the state machine is refused (TuningConfigError)."""

    MESSAGE = ("the tuning path runs SageMaker tuning jobs (AUTOBERT_MODE=aws); locally use `autobert tune` and "
               "`autobert tune apply`")

    def new_job_name(self) -> str:
        raise TuningConfigError(self.MESSAGE)

    def start(self, config, space) -> None:
        raise TuningConfigError(self.MESSAGE)

    def init_model_path(self, channel: str, uri: str) -> str:
        raise TuningConfigError(self.MESSAGE)

    def describe(self, job_name: str):
        raise TuningConfigError(self.MESSAGE)

    def stop(self, job_name: str) -> None:
        raise TuningConfigError(self.MESSAGE)


def supervise(folder: Path) -> int:
    """Run the training script of the job in ``folder`` and record how it ended."""
    job = json.loads((folder / JOB_FILE).read_text())
    with open(folder / LOG_FILE, "wb") as log:
        proc = subprocess.Popen(job["args"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        job["training_pid"] = proc.pid
        _write_json(folder / JOB_FILE, job)
        code = proc.wait()
    if (folder / "stop").exists():
        status = {"status": "Stopped", "failure_reason": "stopped on request", "exit_code": code}
    elif code == 0:
        status = {"status": "Completed", "exit_code": 0}
    else:
        failure = folder / "failure"
        reason = failure.read_text().strip() if failure.exists() else ""
        if not reason:
            lines = [ln for ln in (folder / LOG_FILE).read_text(errors="replace").splitlines() if ln.strip()]
            reason = " | ".join(lines[-3:])[-TAIL_CHARS:] or f"exit code {code}"
        status = {"status": "Failed", "failure_reason": reason, "exit_code": code}
    status["finished_at"] = time.time()
    _write_json(folder / STATUS_FILE, status)
    return 0


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1])))

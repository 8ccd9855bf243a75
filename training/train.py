#!/usr/bin/env python
"""Fine-tune a BERT text classifier: the SageMaker training job, and unchanged, the local training job.

SageMaker's script contract: hyperparameters arrive as ``--name value`` arguments; data from ``SM_CHANNEL_TRAIN`` (and
optional ``SM_CHANNEL_VALIDATION``): Parquet files with ``text`` and ``label`` columns; the model folder goes to
``SM_MODEL_DIR``, metrics and reports to ``SM_OUTPUT_DATA_DIR``. Locally those variables (or the matching arguments)
point at plain folders.

    python training/train.py --train data/ --model-dir model/ --output-data-dir out/ --epochs 1

The model folder is self-contained (see ``autobert.modeling``). With ``--fusion`` (default on) a TF-IDF linear model is
trained beside BERT and the two are fused with a weight chosen on the validation split.

Managed spot training: with a checkpoint folder (``--checkpoint-dir``, ``SM_CHECKPOINT_DIR``, or /opt/ml/checkpoints
where that exists, i.e. the CheckpointConfig's LocalPath) a checkpoint is written after every epoch, and a job started
again over the same folder (SageMaker restores it from S3 after a spot interruption) resumes after the latest one.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from autobert.contracts import HOLDOUT_REPORT_FILE, METRICS_FILE, MODEL_KINDS, PROGRESS_SECONDS
from autobert.data import read_dataset
from autobert.errors import AutobertError, DataError, ModelLoadError, TrainingConfigError
from autobert.linear import FEATURE_SETS, LinearTextModel
from autobert.metrics import classification_report, paired_class_errors, summary
from autobert.modeling import (
    LABELS_FILE,
    TRUNCATIONS,
    ModelMeta,
    TextClassifier,
    bf16_supported,
    encode,
    fuse,
    is_model_folder,
    pad_batch,
    resolve_model_name,
    save_model_folder,
)

logger = logging.getLogger("autobert.train")

SAGEMAKER_CHECKPOINT_DIR = "/opt/ml/checkpoints"  # CheckpointConfig's default LocalPath
CHECKPOINT_STATE = "state.json"  # written last into a checkpoint: a folder without it is incomplete


def str2bool(value: str) -> bool:
    # SageMaker passes every hyperparameter as a string ("True"/"False").
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {value!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Hyperparameters
    p.add_argument("--model-name", default="offline-default",
                   help="Base model: a hub id (bert-base-uncased on AWS), a local folder, or 'offline-default'.")
    p.add_argument("--model-kind", choices=MODEL_KINDS, default="bert",
                   help="bert: fine-tune --model-name (with --fusion, the TF-IDF linear model fused in); linear: the "
                        "TF-IDF linear model alone, no fine-tuning (seconds on any CPU; the first model of a stack).")
    p.add_argument("--init-model", default=None,
                   help="Warm start: continue from this model folder (the retraining path). Labels it lacks are "
                        "appended to its classifier head; known labels keep their weights.")
    p.add_argument("--imprint-new-labels", type=str2bool, default=True,
                   help="Warm start: start the head rows of labels new to --init-model from their training "
                        "documents' features (weight imprinting) rather than from noise.")
    p.add_argument("--keep-init-fusion", type=str2bool, default=True,
                   help="Warm start: keep the init model's fusion weight and temperature rather than choosing them "
                        "again on this run's validation sample, which the workflow draws from the dataset the init "
                        "model was trained on (BERT scores far above its level on new data there and the choice "
                        "would favour it). Chosen again anyway when the init model has no fusion or its TF-IDF half "
                        "read another --linear-features set. A full retrain chooses them afresh.")
    p.add_argument("--epochs", type=float, default=3, help="Passes over the training split (fractions allowed).")
    p.add_argument("--batch-size", type=int, default=16, help="Training batch size.")
    p.add_argument("--learning-rate", type=float, default=1e-4, help="Peak AdamW learning rate.")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (not on biases/LayerNorm).")
    p.add_argument("--warmup-ratio", type=float, default=0.06, help="Share of steps with linear warm-up.")
    p.add_argument("--attention-dropout", type=float, default=0.0,
                   help="Dropout on attention probabilities while fine-tuning. 0 by default: any value > 0 takes "
                        "scaled-dot-product attention off its fused kernel (~2.5x slower training on CPU); the "
                        "hidden-state dropout still regularises.")
    p.add_argument("--freeze-embeddings", type=str2bool, default=True,
                   help="Keep the word-embedding matrix fixed while fine-tuning (all-MiniLM-L6-v2: 30522x384, half "
                        "of the parameters): no dense gradient or AdamW update for it at every step. Position and "
                        "token-type embeddings, their LayerNorm and every layer above still train.")
    p.add_argument("--max-length", type=int, default=128, help="Tokens per document seen by BERT.")
    p.add_argument("--truncation", choices=TRUNCATIONS, default="head_tail",
                   help="Which tokens of a long document BERT sees: the start, or the start and the end.")
    p.add_argument("--seed", type=int, default=42, help="Seed for splits, shuffling and initialisation.")
    p.add_argument("--validation-fraction", type=float, default=0.1,
                   help="Stratified share of the train channel held out for validation (if no validation channel).")
    p.add_argument("--test-fraction", type=float, default=0.1,
                   help="Stratified share of the train channel held out as the test split (0 to skip).")
    p.add_argument("--early-stopping-patience", type=int, default=0,
                   help="Stop after this many epochs without a better validation macro-F1 (0 = off).")
    p.add_argument("--fusion", type=str2bool, default=True,
                   help="Train a TF-IDF linear model too and fuse it with BERT (weight chosen on validation, or kept "
                        "from the init model: --keep-init-fusion).")
    p.add_argument("--linear-features", choices=tuple(FEATURE_SETS), default=None,
                   help="The TF-IDF model's features (autobert.linear.FEATURE_SETS): 'words' (unigrams; fits in "
                        "seconds) or 'words+chars' (word 1-2-grams and character 3-5-grams: ~1 point more accurate "
                        "on new data, ~50 s to fit 9,000 documents). Default: 'words' for --model-kind linear (a "
                        "first answer fast), 'words+chars' for bert.")
    p.add_argument("--linear-refit", type=str2bool, default=True,
                   help="Once validation has chosen the fusion weight and temperature, fit the saved TF-IDF model "
                        "again on the training and validation documents together (the reports keep the scores of "
                        "the one that never saw validation).")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                   help="Autocast precision; auto = bf16 on GPUs of compute capability >= 8 (Ampere+) and on CPUs "
                        "where bf16 measures faster than fp32 (autobert.modeling.cpu_bf16_speedup), fp16 with loss "
                        "scaling on older GPUs (T4, V100), else fp32.")
    p.add_argument("--max-train-samples", type=int, default=0, help="Debug: use only this many training documents.")
    p.add_argument("--max-steps", type=int, default=0, help="Debug: stop after this many optimizer steps.")
    p.add_argument("--max-train-minutes", type=float, default=0, help="Stop training after this wall time (0 = off).")
    p.add_argument("--eval-batch-size", type=int, default=64, help="Batch size for evaluation.")
    p.add_argument("--model-version", default=env("TRAINING_JOB_NAME"),
                   help="Version recorded in the model folder (default: the training job name or a timestamp).")
    p.add_argument("--progress", type=str2bool, default=True, help="Show progress bars.")
    # SageMaker environment
    p.add_argument("--train", default=env("SM_CHANNEL_TRAIN"), help="Training channel (default: SM_CHANNEL_TRAIN).")
    p.add_argument("--validation", default=env("SM_CHANNEL_VALIDATION"),
                   help="Optional validation channel (default: SM_CHANNEL_VALIDATION).")
    p.add_argument("--holdout", default=env("SM_CHANNEL_HOLDOUT"),
                   help="Optional fixed evaluation set (default: SM_CHANNEL_HOLDOUT): the candidate, and the live "
                        "model if given, are scored on it into holdout.json for the retraining workflow's gate.")
    p.add_argument("--fusion-data", default=env("SM_CHANNEL_FUSION"),
                   help="Optional channel the TF-IDF model is fit on besides the training split (default: "
                        "SM_CHANNEL_FUSION), e.g. the whole dataset on a warm start, whose BERT training split is "
                        "only the feedback plus a replay sample: the linear model refits in seconds on everything. "
                        "Documents of the validation and test splits are left out.")
    p.add_argument("--live-model", default=env("SM_CHANNEL_LIVE"),
                   help="Model folder of the live model to score on the holdout too (default: SM_CHANNEL_LIVE, "
                        "else --init-model).")
    p.add_argument("--model-dir", default=env("SM_MODEL_DIR"), help="Model output folder (default: SM_MODEL_DIR).")
    p.add_argument("--output-data-dir", default=env("SM_OUTPUT_DATA_DIR"),
                   help="Metrics/report folder (default: SM_OUTPUT_DATA_DIR).")
    p.add_argument("--checkpoint-dir", default=env("SM_CHECKPOINT_DIR") or default_checkpoint_dir(),
                   help="Write a checkpoint here after every epoch and resume from the latest one found (default: "
                        f"SM_CHECKPOINT_DIR, else {SAGEMAKER_CHECKPOINT_DIR} where it exists, else no checkpoints).")
    # SageMaker also passes a few arguments of its own (e.g. --sagemaker_program): ignore what we do not know.
    args, unknown = p.parse_known_args(argv)
    if unknown:
        logger.info("ignoring unknown arguments: %s", " ".join(unknown))
    if args.linear_features is None:
        args.linear_features = "words" if args.model_kind == "linear" else "words+chars"
    validate_args(args)
    return args


def default_checkpoint_dir() -> str | None:
    return SAGEMAKER_CHECKPOINT_DIR if Path(SAGEMAKER_CHECKPOINT_DIR).is_dir() else None


def validate_args(args: argparse.Namespace) -> None:
    checks = [
        (args.train, "no training data: pass --train or set SM_CHANNEL_TRAIN"),
        (args.model_dir, "no model output folder: pass --model-dir or set SM_MODEL_DIR"),
        (args.epochs > 0, f"--epochs must be > 0, got {args.epochs}"),
        (1 <= args.batch_size <= 4096, f"--batch-size must be in [1, 4096], got {args.batch_size}"),
        (0 < args.learning_rate < 1, f"--learning-rate must be in (0, 1), got {args.learning_rate}"),
        (0 <= args.weight_decay < 1, f"--weight-decay must be in [0, 1), got {args.weight_decay}"),
        (0 <= args.attention_dropout < 1, f"--attention-dropout must be in [0, 1), got {args.attention_dropout}"),
        (0 <= args.warmup_ratio < 1, f"--warmup-ratio must be in [0, 1), got {args.warmup_ratio}"),
        (8 <= args.max_length <= 512, f"--max-length must be in [8, 512], got {args.max_length}"),
        (0 <= args.validation_fraction < 0.5, "--validation-fraction must be in [0, 0.5)"),
        (0 <= args.test_fraction < 0.5, "--test-fraction must be in [0, 0.5)"),
        (args.early_stopping_patience >= 0, "--early-stopping-patience must be >= 0"),
        (args.max_train_samples >= 0 and args.max_steps >= 0 and args.max_train_minutes >= 0,
         "--max-train-samples, --max-steps and --max-train-minutes must be >= 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise TrainingConfigError(message)
    if args.model_kind == "linear" and args.init_model:
        raise TrainingConfigError("--init-model: a linear model is refit on all its data in seconds, it continues "
                                  "no model; drop --init-model (or pass --model-kind bert)")
    if args.live_model is None:
        args.live_model = args.init_model
    if args.output_data_dir is None:
        args.output_data_dir = str(Path(args.model_dir) / "output")
    if not args.model_version:
        args.model_version = "v" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


# ------------------------------------------------------------------------------------------------------------ data
def stratified_split(df: pd.DataFrame, fractions: tuple[float, ...], seed: int) -> list[pd.DataFrame]:
    """Split into ``1 + len(fractions)`` parts, per label, deterministic for a seed. A label with too few examples
    to give every part one stays wholly in the first (training) part, so a brand-new label from feedback is learnt."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for _, group in df.groupby("label", sort=True):
        idx = group.index.to_numpy().copy()
        rng.shuffle(idx)
        counts = [int(round(len(idx) * f)) for f in fractions]
        if any(c == 0 for c, f in zip(counts, fractions, strict=True) if f > 0):
            parts[0].extend(idx)
            continue
        start = 0
        for k, c in enumerate(counts, start=1):
            parts[k].extend(idx[start : start + c])
            start += c
        parts[0].extend(idx[start:])
    return [df.loc[sorted(p)].reset_index(drop=True) for p in parts]


class TokenizedDataset(Dataset):
    """Pre-tokenized examples: tokenizing once up front keeps the training loop busy with the model only."""

    def __init__(self, input_ids: list[list[int]], labels: np.ndarray):
        self.input_ids = input_ids
        self.labels = labels

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int) -> tuple[list[int], int]:
        return self.input_ids[i], int(self.labels[i])


def make_collate(pad_id: int):
    def collate(batch):
        ids, labels = zip(*batch, strict=True)
        out = pad_batch(list(ids), pad_id)
        out["labels"] = torch.tensor(labels, dtype=torch.long)
        return out

    return collate


# ----------------------------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel job: ``torchrun`` (and SageMaker's ``torch_distributed`` launcher,
    which runs torchrun on every instance) sets ``RANK`` / ``LOCAL_RANK`` / ``WORLD_SIZE``; without them a single
    process (``world_size`` 1), which runs exactly as before."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that logs, checkpoints, evaluates on the holdout and writes the model folder."""
        return self.rank == 0

    def device(self) -> torch.device:
        return torch.device(f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu")

    def reduce_sum(self, *values: float) -> list[float]:
        """The sums over all ranks of ``values`` (float64)."""
        if not self.enabled:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device())
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is on any: decisions that end the loop (a deadline) are taken together."""
        return bool(self.reduce_sum(float(flag))[0]) if self.enabled else flag

    def same(self, value):
        """Rank 0's ``value`` on every rank (a choice measured on each, e.g. the CPU precision, must agree)."""
        if not self.enabled:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather_rows(self, rows: np.ndarray, n: int) -> np.ndarray:
        """Every rank's ``rows`` for the items ``rank, rank + world_size, ...`` of ``n``, put back in item order."""
        if not self.enabled:
            return rows
        parts: list = [None] * self.world_size
        torch.distributed.all_gather_object(parts, rows)
        out = np.zeros((n, *rows.shape[1:]), dtype=rows.dtype)
        for rank, part in enumerate(parts):
            out[rank :: self.world_size] = part
        return out


def init_distributed() -> Distributed:
    """Join the process group of a ``torchrun`` job (NCCL on GPUs, gloo on CPUs); a plain run joins nothing."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    dist = Distributed(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    if torch.cuda.is_available():
        torch.cuda.set_device(dist.local_rank)
    torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if not dist.main:  # one copy of every log line: SageMaker's metric regexes and the progress read rank 0's
        logging.getLogger("autobert").setLevel(logging.WARNING)
    return dist


# ------------------------------------------------------------------------------------------------------- precision
@dataclass(frozen=True)
class Precision:
    """How the training step runs: fp32, or autocast to bf16 or fp16; fp16 needs loss scaling (a GradScaler)."""

    name: str  # "fp32" | "bf16" | "fp16"

    @property
    def dtype(self) -> torch.dtype:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name, torch.float32)

    @property
    def autocast(self) -> bool:
        return self.name != "fp32"

    @property
    def scaler(self) -> bool:
        return self.name == "fp16"


def choose_precision(requested: str, device_type: str, capability: tuple[int, int] | None = None,
                     cpu_bf16: bool = False) -> Precision:
    """The precision for ``--precision`` on this hardware. ``auto``: bf16 on a GPU of compute capability >= 8.0
    (Ampere and later run it natively; ``torch.cuda.is_bf16_supported()`` also says True on a T4, where it is
    emulated and slow), fp16 with a GradScaler on older GPUs (T4, V100), on a CPU bf16 only where it measured
    faster than fp32 (``cpu_bf16``: ``autobert.modeling.bf16_supported``), else fp32."""
    if requested == "fp16" and device_type != "cuda":
        raise TrainingConfigError("--precision fp16 needs a CUDA GPU (use bf16 or fp32 on a CPU)")
    if requested != "auto":
        return Precision(requested)
    if device_type == "cuda":
        if capability is None:
            raise ValueError("a CUDA device's compute capability is needed")
        return Precision("bf16" if tuple(capability) >= (8, 0) else "fp16")
    return Precision("bf16" if cpu_bf16 else "fp32")


def device_precision(requested: str, device: torch.device) -> Precision:
    if device.type == "cuda":
        return choose_precision(requested, "cuda", torch.cuda.get_device_capability(device))
    return choose_precision(requested, device.type, cpu_bf16=bf16_supported(torch.device("cpu")))


def training_step(model, batch: dict, optimizer, scheduler, scaler: torch.amp.GradScaler, precision: Precision,
                  device: torch.device) -> torch.Tensor:
    """One optimizer step. With fp16 the loss is scaled before backward (small gradients would underflow) and the
    gradients unscaled before clipping; a step with inf/NaN gradients is skipped and the scale lowered. A disabled
    scaler passes everything through unchanged."""
    with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.autocast):
        loss = model(**batch).loss
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return loss


# ----------------------------------------------------------------------------------------------------- checkpoints
KEEP_CHECKPOINTS = 2  # the newest may reach S3 incompletely when spot capacity goes: the one before stays


def complete_checkpoints(folder: Path) -> list[Path]:
    """The complete checkpoints (``epoch-NNNN/`` holding its ``state.json``) in ``folder``, newest first."""
    return sorted((p for p in folder.glob("epoch-*") if (p / CHECKPOINT_STATE).is_file()), reverse=True)


class UnreadableCheckpoint(TrainingConfigError):
    """A checkpoint whose files are damaged or incomplete (e.g. partly synced back from S3 after a spot
    interruption): an older one, or a fresh start, is used instead."""


def _cpu_tensors(state: dict) -> dict:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_checkpoint(folder: Path, epoch: int, model, best_state: dict | None, optimizer, scheduler,
                    scaler: torch.amp.GradScaler, generator: torch.Generator, state: dict) -> Path:
    """Write ``folder/epoch-NNNN/``: the weights (and the best epoch's, when that was an earlier one) as
    safetensors; the optimizer, scheduler, loss-scaler and RNG states as a tensors-only ``torch.save`` file (read
    back with ``weights_only=True``: no pickled code); the loop's counters and history as JSON. It is written into
    a temporary folder and renamed into place, so a job killed meanwhile leaves no half checkpoint under that name;
    all but the newest ``KEEP_CHECKPOINTS`` are then removed."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-epoch-{epoch:04d}-", dir=folder))
    save_file(_cpu_tensors(model.state_dict()), tmp / "model.safetensors")
    if best_state is not None and state["best_epoch"] != epoch:
        save_file(_cpu_tensors(best_state), tmp / "best.safetensors")
    rng = {"torch": torch.get_rng_state(), "loader": generator.get_state(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng}, tmp / "training_state.pt")
    (tmp / CHECKPOINT_STATE).write_text(json.dumps(state, indent=2) + "\n")
    final = folder / f"epoch-{epoch:04d}"
    if final.exists():  # left by a run that stopped between this rename and the clean-up below
        shutil.rmtree(final)
    tmp.rename(final)
    keep = set(complete_checkpoints(folder)[:KEEP_CHECKPOINTS])
    for old in folder.iterdir():
        if old not in keep and old.is_dir() and (old.name.startswith("epoch-") or old.name.startswith(".tmp-epoch-")):
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(path: Path, run: dict, device: torch.device) -> dict:
    """Read everything :func:`save_checkpoint` wrote, touching no model or optimizer: a damaged file raises
    :class:`UnreadableCheckpoint` before anything is restored; another run's checkpoint is a TrainingConfigError."""
    try:
        state = json.loads((path / CHECKPOINT_STATE).read_text())
    except (OSError, ValueError) as exc:
        raise UnreadableCheckpoint(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    if state.get("run") != run:
        raise TrainingConfigError(f"{path}: checkpoint of a different training run (data, labels or "
                                  "hyperparameters differ); delete it or pass another --checkpoint-dir")
    try:
        weights = load_file(path / "model.safetensors", device=str(device))
        best_file = path / "best.safetensors"
        best = load_file(best_file, device=str(device)) if best_file.is_file() else None
        training = torch.load(path / "training_state.pt", map_location="cpu", weights_only=True)
        for key in ("optimizer", "scheduler", "scaler", "rng"):
            training[key]  # noqa: B018 (presence check: a truncated dict fails here, not half-way through restoring)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError, SafetensorError) as exc:
        raise UnreadableCheckpoint(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc
    return {"state": state, "weights": weights, "best": best, "training": training}


def load_checkpoint(path: Path, run: dict, model, optimizer, scheduler, scaler: torch.amp.GradScaler,
                    generator: torch.Generator, device: torch.device) -> tuple[dict, dict]:
    """Restore what :func:`save_checkpoint` wrote; returns (loop state, best weights)."""
    checkpoint = read_checkpoint(path, run, device)
    training = checkpoint["training"]
    try:
        model.load_state_dict(checkpoint["weights"])
        optimizer.load_state_dict(training["optimizer"])
        scheduler.load_state_dict(training["scheduler"])
        scaler.load_state_dict(training["scaler"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise TrainingConfigError(f"{path}: checkpoint does not fit this model ({type(exc).__name__}: {exc})") from exc
    best_state = checkpoint["best"] if checkpoint["best"] is not None else copy.deepcopy(model.state_dict())
    torch.set_rng_state(training["rng"]["torch"])
    generator.set_state(training["rng"]["loader"])
    if training["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(training["rng"]["cuda"])
    return checkpoint["state"], best_state


def resume(folder: Path | None, run: dict, model, optimizer, scheduler, scaler: torch.amp.GradScaler,
           generator: torch.Generator, device: torch.device) -> tuple[Path, dict, dict] | None:
    """Restore the newest readable checkpoint in ``folder``; a damaged one is skipped with a warning (the job then
    redoes an epoch rather than failing), and with none readable the job starts from the beginning."""
    if folder is None or not folder.is_dir():
        return None
    candidates = complete_checkpoints(folder)
    for path in candidates:
        try:
            state, best_state = load_checkpoint(path, run, model, optimizer, scheduler, scaler, generator, device)
        except UnreadableCheckpoint as exc:
            logger.warning("skipping checkpoint: %s", exc)
            continue
        return path, state, best_state
    if candidates:
        logger.warning("no readable checkpoint in %s: training from the start", folder)
    return None


# ----------------------------------------------------------------------------------------------------------- model
def model_folder(path: str) -> Path:
    """A model folder as given, or extracted from the ``model.tar.gz`` a SageMaker channel holds (the live model
    reaches a training job as an S3 channel with the artifact SageMaker wrote)."""
    folder = Path(path)
    if is_model_folder(folder) or not folder.is_dir():
        return folder
    archives = sorted(folder.glob("*.tar.gz"))
    if not archives:
        return folder
    target = Path(tempfile.mkdtemp(prefix="autobert-model-"))
    try:
        with tarfile.open(archives[0]) as tar:
            tar.extractall(target, filter="data")  # refuses absolute paths, links out of the folder, devices
    except (tarfile.TarError, OSError) as exc:
        raise TrainingConfigError(f"{archives[0]}: unreadable model archive ({exc})") from exc
    return target


def load_base(args: argparse.Namespace, data_labels: list[str]):
    """Fresh model from ``--model-name``, or warm start from ``--init-model`` with the head grown for new labels:
    ``(model, tokenizer, labels, base_model, n_known, init)``, ``n_known`` the init model's label count and ``init``
    the loaded init model (``None`` both when fresh); the grown rows are ``labels[n_known:]``."""
    if args.init_model:
        init = model_folder(args.init_model)
        init_meta = ModelMeta.load(init) if is_model_folder(init) else None
        if init_meta and not init_meta.has_encoder:
            raise TrainingConfigError(f"--init-model {init}: a {init_meta.kind!r} model has no encoder "
                                      "to continue from; fine-tune --model-name instead (no --init-model)")
        if not (init / "config.json").is_file() or not (init / LABELS_FILE).is_file():
            raise TrainingConfigError(f"--init-model {init}: not a model folder (needs config.json and labels.json)")
        old = TextClassifier.load(init)
        labels = old.labels + sorted(set(data_labels) - set(old.labels))
        model = grow_classifier(old.model, len(labels))
        return model.train(), old.tokenizer, labels, old.meta.base_model, len(old.labels), old
    source = resolve_model_name(args.model_name)
    labels = sorted(set(data_labels))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={lbl: i for i, lbl in enumerate(labels)},
            ignore_mismatched_sizes=True,  # the base may carry a head for other labels
        )
    except (OSError, ValueError) as exc:
        raise TrainingConfigError(f"--model-name {args.model_name}: cannot load model ({exc})") from exc
    return model, tokenizer, labels, args.model_name, None, None


def grow_classifier(model, num_labels: int):
    """Append output rows for new labels; old rows (old classes) keep their trained weights."""
    head = model.classifier
    old = head.out_features
    if num_labels == old:
        return model
    new_head = torch.nn.Linear(head.in_features, num_labels)
    torch.nn.init.normal_(new_head.weight, std=model.config.initializer_range)
    torch.nn.init.zeros_(new_head.bias)
    with torch.no_grad():
        new_head.weight[:old] = head.weight
        new_head.bias[:old] = head.bias
        # Start new classes at the mean old bias so they are neither favoured nor suppressed before training.
        new_head.bias[old:] = head.bias.mean()
    model.classifier = new_head
    model.num_labels = num_labels
    model.config.num_labels = num_labels
    return model


IMPRINT_KNOWN_PER_CLASS = 16  # documents per known label whose features centre the imprinted rows


@torch.no_grad()  # not inference_mode: the features go on into the head's (trainable) rows
def head_features(model, ids: list[list[int]], pad_id: int, batch_size: int, precision: Precision,
                  device: torch.device) -> torch.Tensor:
    """What the classifier head reads (its input, dropout off) for each document of ``ids``, in order."""
    captured: list[torch.Tensor] = []
    hook = model.classifier.register_forward_pre_hook(lambda _module, args: captured.append(args[0].float()))
    model.eval()
    try:
        for start in range(0, len(ids), batch_size):
            batch = {k: v.to(device) for k, v in pad_batch(ids[start : start + batch_size], pad_id).items()}
            with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.autocast):
                model(**batch)
    finally:
        hook.remove()
    return torch.cat(captured) if captured else torch.zeros(0, model.classifier.in_features)


def imprint_new_labels(model, n_known: int, ids: list[list[int]], y: np.ndarray, pad_id: int, batch_size: int,
                       precision: Precision, device: torch.device, seed: int) -> list[int]:
    """Start the head rows of labels the init model never knew (rows ``n_known`` and up) from their training
    documents, as weight imprinting does (Qi, Brown and Lowe, "Low-Shot Learning with Imprinted Weights", CVPR
    2018), instead of from noise: the row points from the known labels' mean feature to the new label's, with the
    known rows' mean norm, and its bias makes the new label tie, on average over its own documents, with the best
    known label. A randomly started row moves about one learning rate per Adam step, so at a warm start's small
    rate it stays far below the trained rows' logits: on the feedback benchmark a new label learnt from 50 items
    reached recall 0.48 (precision 1.0). Returns the label ids imprinted (those with training documents)."""
    head = model.classifier
    if head.out_features <= n_known or len(ids) == 0:
        return []
    rng = np.random.default_rng(seed)
    known = [i for c in range(n_known) if len(idx := np.flatnonzero(y == c))
             for i in rng.permutation(idx)[:IMPRINT_KNOWN_PER_CLASS]]
    new_docs = {c: sorted({tuple(ids[i]): i for i in np.flatnonzero(y == c)}.values())  # copies read once
                for c in range(n_known, head.out_features)}
    new_docs = {c: docs for c, docs in new_docs.items() if docs}
    if not known or not new_docs:
        return []
    order = known + [i for docs in new_docs.values() for i in docs]
    feats = dict(zip(order, head_features(model, [ids[i] for i in order], pad_id, batch_size, precision, device),
                     strict=True))
    known_y = y[known]
    known_mean = torch.stack([torch.stack([feats[i] for i, c in zip(known, known_y, strict=True) if c == k]).mean(0)
                              for k in np.unique(known_y)]).mean(0)  # each known label weighs the same
    weight, bias = head.weight.detach().float(), head.bias.detach().float()
    norm = weight[:n_known].norm(dim=1).mean()
    with torch.no_grad():
        for c, docs in new_docs.items():
            f = torch.stack([feats[i] for i in docs])
            direction = f.mean(0) - known_mean
            row = direction / direction.norm().clamp_min(1e-12) * norm
            best_known = (f @ weight[:n_known].T + bias[:n_known]).max(1).values
            head.weight[c] = row.to(head.weight.dtype)
            head.bias[c] = (best_known - f @ row).mean().to(head.bias.dtype)
    model.train()
    return sorted(new_docs)


def set_attention_dropout(model, p: float) -> None:
    model.config.attention_probs_dropout_prob = p
    for name, module in model.named_modules():
        if name.endswith("attention.self") and isinstance(getattr(module, "dropout", None), torch.nn.Dropout):
            module.dropout.p = p


def freeze_embeddings(model) -> None:
    """Fix the word-embedding matrix (``--freeze-embeddings``): :func:`make_optimizer` then leaves it out."""
    model.get_input_embeddings().weight.requires_grad_(False)


def make_optimizer(model, args):
    """AdamW over the trainable parameters, fused (one kernel over all of them; ``fused=True`` runs on CPUs and
    GPUs): the per-tensor loop of the default implementation costs a few % of a CPU training step."""
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if not n.endswith(no_decay)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in trainable if n.endswith(no_decay)], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=args.learning_rate, fused=True)


@torch.inference_mode()
def predict_probs(model, ids: list[list[int]], pad_id: int, batch_size: int, precision: Precision,
                  device: torch.device) -> np.ndarray:
    model.eval()
    order = np.argsort([len(x) for x in ids])
    probs = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(ids), batch_size):
        idx = order[start : start + batch_size]
        batch = {k: v.to(device) for k, v in pad_batch([ids[i] for i in idx], pad_id).items()}
        with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.autocast):
            logits = model(**batch).logits
        probs[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return probs


def log_loss(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels ``y`` under ``probs``."""
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None))))


def choose_fusion(bert_probs: np.ndarray, scores: np.ndarray, y: np.ndarray) -> tuple[float, float, dict]:
    """Grid-search the linear model's weight and temperature on validation: the best accuracy, and among equally
    accurate settings the lowest log-loss. A small validation set (a warm start's) leaves many settings tied on
    accuracy; the log-loss says which of them is right more confidently, instead of keeping the smallest weight."""
    candidates = [(float(weight), temperature) for weight in np.linspace(0, 1, 21) for temperature in TEMPERATURES]

    def score(candidate: tuple[float, float]) -> tuple[float, float]:
        fused = fuse(bert_probs, scores, *candidate)
        return round(float(np.mean(fused.argmax(1) == y)), 9), -log_loss(fused, y)

    weight, temperature = max(candidates, key=score)
    accuracy, neg_loss = score((weight, temperature))
    return weight, temperature, {"validation_accuracy": accuracy, "validation_log_loss": -neg_loss}


def init_fusion(args: argparse.Namespace, init: TextClassifier | None) -> tuple[float, float] | None:
    """The init model's fusion weight and temperature when a warm start keeps them (``--keep-init-fusion``), else
    None (choose them on validation). A warm start's validation sample is drawn from the documents the init model
    trained on: on the feedback benchmark BERT scored 0.90 there against 0.78 on new documents, the weight chosen
    there moved to BERT and the candidate lost 1.3 points on new documents (README). They are chosen again where
    they would not fit: an init model without fusion, or whose TF-IDF half read another feature set (its margins
    are on another scale), e.g. the first warm start after an upgrade from word unigrams."""
    if init is None or not args.keep_init_fusion or init.meta.fusion_weight <= 0 or init.linear is None:
        return None
    if init.linear.feature_set != args.linear_features:
        logger.info("fusion settings chosen again on validation: the init model's TF-IDF half read %s features, "
                    "this run's reads %s", init.linear.feature_set or "custom", args.linear_features)
        return None
    return init.meta.fusion_weight, init.meta.fusion_temperature


# ------------------------------------------------------------------------------------------------------------ main
def load_splits(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The training channel, and its training, validation and test splits (the validation channel, if given, is the
    validation split), as both model kinds train on them."""
    df = read_dataset(Path(args.train))
    df["text"] = df["text"].astype(str)
    df["label"] = df["label"].astype(str)
    df = df[df["text"].str.strip() != ""].reset_index(drop=True)
    if df["label"].nunique() < 2:
        raise DataError(f"{args.train}: training data has {df['label'].nunique()} class(es); at least 2 are needed")
    if args.validation:
        train_df, test_df = stratified_split(df, (args.test_fraction,), args.seed)
        val_df = read_dataset(Path(args.validation))
    else:
        train_df, val_df, test_df = stratified_split(df, (args.validation_fraction, args.test_fraction), args.seed)
    if args.max_train_samples:
        train_df = train_df.sample(n=min(args.max_train_samples, len(train_df)), random_state=args.seed)
    if train_df.empty:
        raise DataError(f"{args.train}: no training documents left after the validation/test split")
    return df, train_df, val_df, test_df


def label_array(frame: pd.DataFrame, label_ids: dict[str, int]) -> np.ndarray:
    unknown = set(frame["label"]) - set(label_ids)
    if unknown:
        raise DataError(f"validation data has labels absent from training: {sorted(unknown)}")
    return frame["label"].map(label_ids).to_numpy(dtype=np.int64)


def train(args: argparse.Namespace) -> dict:
    if args.model_kind == "linear":
        return train_linear(args)
    dist = init_distributed()
    try:
        return train_bert(args, dist)
    finally:
        if dist.enabled:
            torch.distributed.destroy_process_group()


def train_bert(args: argparse.Namespace, dist: Distributed) -> dict:
    """Fine-tune (one process, or one rank of a data-parallel job: each rank trains on its share of every epoch,
    DistributedDataParallel averages the gradients, so every rank holds the same weights; validation is shared out
    and gathered; rank 0 alone finishes the run and writes the model folder; the other ranks return ``{}``)."""
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    df, train_df, val_df, test_df = load_splits(args)
    model, tokenizer, labels, base_model, n_known, init = load_base(args, list(df["label"]))
    set_attention_dropout(model, args.attention_dropout)
    if args.freeze_embeddings:
        freeze_embeddings(model)
    label_ids = {label: i for i, label in enumerate(labels)}
    device = dist.device()
    precision = dist.same(device_precision(args.precision, device))
    model.to(device)
    pad_id = tokenizer.pad_token_id or 0

    def tokenized(frame: pd.DataFrame) -> tuple[list[list[int]], np.ndarray]:
        if frame.empty:
            return [], np.zeros(0, dtype=np.int64)
        y = label_array(frame, label_ids)
        return encode(tokenizer, frame["text"].tolist(), args.max_length, args.truncation), y

    train_ids, y_train = tokenized(train_df)
    val_ids, y_val = tokenized(val_df)
    test_ids, y_test = tokenized(test_df)
    if n_known is not None and args.imprint_new_labels:
        imprinted = imprint_new_labels(model, n_known, train_ids, y_train, pad_id, args.eval_batch_size, precision,
                                       device, args.seed)
        if imprinted:
            logger.info("new labels imprinted from their training documents: %s", [labels[c] for c in imprinted])
    logger.info("documents: train=%d validation=%d test=%d labels=%d device=%s precision=%s",
                len(train_ids), len(val_ids), len(test_ids), len(labels), device, precision.name)

    generator = torch.Generator().manual_seed(args.seed)
    dataset = TokenizedDataset(train_ids, y_train)
    sampler = (DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                  seed=args.seed) if dist.enabled else None)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                        collate_fn=make_collate(pad_id), generator=generator)
    # What runs the steps: the model, or its DDP wrapper, which all-reduces the gradients during backward.
    stepper = DistributedDataParallel(model, device_ids=[dist.local_rank] if device.type == "cuda" else None) \
        if dist.enabled else model
    steps_per_epoch = len(loader)
    total_steps = math.ceil(args.epochs * steps_per_epoch)
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    optimizer = make_optimizer(model, args)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(args.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scaler)

    history, best_state, best_f1, best_epoch, stale = [], None, -1.0, 0, 0
    step, samples, train_seconds, start_epoch, finished, resumed_from = 0, 0, 0.0, 0, False, None
    # What a checkpoint must match to be resumed: the same data, labels and schedule.
    run = {"labels": labels, "documents": len(train_ids), "steps_per_epoch": steps_per_epoch,
           "total_steps": total_steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
           "seed": args.seed, "base_model": base_model, "precision": precision.name,
           "freeze_embeddings": args.freeze_embeddings, **({"world_size": dist.world_size} if dist.enabled else {})}
    checkpoints = Path(args.checkpoint_dir) if args.checkpoint_dir else None
    # Rank 0 chooses the checkpoint and every rank resumes from that one: on several instances each has its own
    # copy of the checkpoint folder, and ranks that started at different epochs would wait on each other forever.
    resumed = resume(checkpoints, run, model, optimizer, scheduler, scaler, generator, device) if dist.main else None
    chosen = dist.same(resumed[0].name if resumed else None)
    if chosen and not dist.main:
        resumed = (checkpoints / chosen, *load_checkpoint(checkpoints / chosen, run, model, optimizer, scheduler,
                                                          scaler, generator, device))
    if resumed:
        latest, state, best_state = resumed
        start_epoch = resumed_from = state["epoch"]
        history, best_f1, best_epoch, stale = state["history"], state["best_f1"], state["best_epoch"], state["stale"]
        step, samples, train_seconds, finished = state["step"], state["samples"], state["train_seconds"], \
            state["finished"]
        logger.info("resumed from checkpoint epoch=%d step=%d (%s)", start_epoch, step, latest)
    deadline = (time.perf_counter() + args.max_train_minutes * 60 - train_seconds if args.max_train_minutes
                else math.inf)
    n_epochs = math.ceil(total_steps / steps_per_epoch)
    # Besides the bars, a progress line in a fixed form every PROGRESS_SECONDS (autobert.contracts): the run's progress.
    progress_every = float(os.environ.get("AUTOBERT_PROGRESS_SECONDS", PROGRESS_SECONDS))
    for epoch in range(start_epoch + 1, n_epochs + 1):
        if finished:
            break
        model.train()
        if sampler is not None:
            sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every rank
        epoch_start, epoch_loss, epoch_samples = time.perf_counter(), 0.0, 0
        # Without a terminal (SageMaker, CloudWatch, CI logs) redraw rarely: every redraw becomes a log line.
        bar = tqdm(loader, desc=f"epoch {epoch}/{n_epochs}", unit="batch",
                   disable=not args.progress or not dist.main, total=min(steps_per_epoch, total_steps - step),
                   file=sys.stderr,
                   mininterval=0.1 if sys.stderr.isatty() else 30)
        next_progress = epoch_start + progress_every
        for batch in bar:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = training_step(stepper, batch, optimizer, scheduler, scaler, precision, device)
            step += 1
            n = batch["labels"].shape[0]
            epoch_samples += n
            epoch_loss += loss.item() * n
            rate = epoch_samples * dist.world_size / (time.perf_counter() - epoch_start)  # all ranks together
            bar.set_postfix(loss=f"{loss.item():.3f}", samples_per_s=f"{rate:.1f}", refresh=False)
            if time.perf_counter() >= next_progress:
                next_progress = time.perf_counter() + progress_every
                eta = min((total_steps - step) * args.batch_size * dist.world_size / rate,
                          max(deadline - time.perf_counter(), 0))
                logger.info("progress: epoch=%d/%d step=%d/%d loss=%.4f samples_per_second=%.2f eta_seconds=%.0f",
                            epoch, n_epochs, step, total_steps, epoch_loss / epoch_samples, rate, eta)
            out_of_time = time.perf_counter() > deadline
            if deadline < math.inf:  # every rank stops at the same step, or the others wait forever
                out_of_time = dist.any(out_of_time)
            if step >= total_steps or out_of_time:
                break
        bar.close()
        seconds = time.perf_counter() - epoch_start
        train_seconds += seconds
        epoch_loss, epoch_samples = dist.reduce_sum(epoch_loss, epoch_samples)  # over all ranks
        epoch_samples = int(epoch_samples)
        samples += epoch_samples
        record = {"epoch": epoch, "train_loss": epoch_loss / max(epoch_samples, 1),
                  "samples_per_second": epoch_samples / seconds, "seconds": seconds}
        if val_ids:
            val_pred = dist.gather_rows(predict_probs(model, val_ids[dist.rank :: dist.world_size], pad_id,
                                                      args.eval_batch_size, precision, device).argmax(1),
                                        len(val_ids))
            val = summary(y_val, val_pred)
            record.update(val_accuracy=val["accuracy"], val_macro_f1=val["macro_f1"])
        history.append(record)
        # One line per epoch, in a fixed form: SageMaker's tuner parses these values with regexes.
        logger.info("epoch=%d train_loss=%.4f val_accuracy=%.4f val_macro_f1=%.4f samples_per_second=%.2f",
                    epoch, record["train_loss"], record.get("val_accuracy", float("nan")),
                    record.get("val_macro_f1", float("nan")), record["samples_per_second"])
        score = record.get("val_macro_f1", epoch)  # without validation the last epoch is kept
        if score > best_f1:
            best_f1, best_epoch, stale = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if args.early_stopping_patience and stale >= args.early_stopping_patience:
            logger.info("early stopping: no better validation macro-F1 for %d epoch(s)", stale)
            finished = True
        finished = finished or step >= total_steps or dist.any(time.perf_counter() > deadline)
        if checkpoints and dist.main:
            state = {"epoch": epoch, "step": step, "samples": samples, "train_seconds": train_seconds,
                     "history": history, "best_f1": best_f1, "best_epoch": best_epoch, "stale": stale,
                     "finished": finished, "run": run}
            saved = save_checkpoint(checkpoints, epoch, model, best_state, optimizer, scheduler, scaler, generator,
                                    state)
            logger.info("checkpoint saved: epoch=%d (%s)", epoch, saved)
    if not dist.main:
        return {}  # rank 0 finishes the run
    if best_state is not None:
        model.load_state_dict(best_state)
    if history:
        # The kept (best) epoch's line again, last: SageMaker's tuner takes the final value of its objective metric.
        kept = history[best_epoch - 1] if best_epoch else history[-1]
        logger.info("kept: epoch=%d train_loss=%.4f val_accuracy=%.4f val_macro_f1=%.4f samples_per_second=%.2f",
                    kept["epoch"], kept["train_loss"], kept.get("val_accuracy", float("nan")),
                    kept.get("val_macro_f1", float("nan")), kept["samples_per_second"])

    meta = ModelMeta(model_version=args.model_version, base_model=base_model, max_length=args.max_length,
                     truncation=args.truncation)
    linear = None
    val_probs = predict_probs(model, val_ids, pad_id, args.eval_batch_size, precision, device) if val_ids else None
    test_probs = (predict_probs(model, test_ids, pad_id, args.eval_batch_size, precision, device) if test_ids
                  else None)
    if args.fusion:
        linear = fit_linear(args, train_df, y_train, (val_df, test_df), label_ids)
        kept = init_fusion(args, init)
        if kept:
            meta.fusion_weight, meta.fusion_temperature = kept
            logger.info("fusion weight %.2f and temperature %g kept from the init model", *kept)
        elif val_probs is not None:
            val_scores = linear.decision_function(val_df["text"].tolist())
            meta.fusion_weight, meta.fusion_temperature, _ = choose_fusion(val_probs, val_scores, y_val)
        else:
            meta.fusion_weight, meta.fusion_temperature = 0.5, 5.0
    report = split_reports(meta, linear, labels, (("validation", val_df, val_probs, y_val),
                                                  ("test", test_df, test_probs, y_test)))
    linear = refit_linear(args, linear, (train_df, y_train), (val_df, y_val), test_df, label_ids)
    save_model_folder(Path(args.model_dir), model.cpu(), tokenizer, labels, meta, linear)
    training = {
        "samples": samples, "steps": step, "epochs_run": len(history), "best_epoch": best_epoch,
        "samples_per_second": samples / train_seconds if train_seconds else 0.0,
        "train_seconds": train_seconds, "device": str(device),
        "precision": precision.name, "bf16": precision.name == "bf16", "resumed_from_epoch": resumed_from,
        "documents": {"train": len(train_ids), "validation": len(val_ids), "test": len(test_ids)},
    }
    return finish(args, TextClassifier(model, tokenizer, labels, meta, linear), report, training, history, started)


def train_linear(args: argparse.Namespace) -> dict:
    """``--model-kind linear``: the TF-IDF linear model alone, no fine-tuning (seconds on any CPU), on the same
    splits, with the same reports, holdout evaluation and metrics as a BERT run. Its probabilities are the softmax of
    its margins times a temperature chosen on validation (lowest log-loss)."""
    started = time.perf_counter()
    df, train_df, val_df, test_df = load_splits(args)
    labels = sorted(set(df["label"]))
    label_ids = {label: i for i, label in enumerate(labels)}
    y_train, y_val, y_test = (label_array(frame, label_ids) for frame in (train_df, val_df, test_df))
    logger.info("documents: train=%d validation=%d test=%d labels=%d model=linear",
                len(train_df), len(val_df), len(test_df), len(labels))
    fit_started = time.perf_counter()
    linear = fit_linear(args, train_df, y_train, (val_df, test_df), label_ids)
    fit_seconds = time.perf_counter() - fit_started
    temperature = (choose_temperature(linear.decision_function(val_df["text"].tolist()), y_val) if len(val_df)
                   else 5.0)
    meta = ModelMeta(model_version=args.model_version, base_model=LINEAR_BASE_MODEL, kind="linear",
                     fusion_weight=1.0, fusion_temperature=temperature)
    report = split_reports(meta, linear, labels, (("validation", val_df, None, y_val),
                                                  ("test", test_df, None, y_test)))
    linear = refit_linear(args, linear, (train_df, y_train), (val_df, y_val), test_df, label_ids)
    save_model_folder(Path(args.model_dir), None, None, labels, meta, linear)
    training = {
        "samples": len(train_df), "steps": 0, "epochs_run": 0, "best_epoch": 0,
        "samples_per_second": len(train_df) / fit_seconds if fit_seconds else 0.0, "train_seconds": fit_seconds,
        "device": "cpu", "precision": "fp32", "bf16": False, "resumed_from_epoch": None,
        "documents": {"train": len(train_df), "validation": len(val_df), "test": len(test_df)},
    }
    return finish(args, TextClassifier(None, None, labels, meta, linear), report, training, [], started)


LINEAR_BASE_MODEL = "tfidf-linear-svm"  # the base_model a linear-only model records (it has no pretrained base)
TEMPERATURES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)


def choose_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The temperature whose softmax of the linear margins has the lowest log-loss on ``y`` (validation)."""
    return min(TEMPERATURES, key=lambda t: log_loss(fuse(None, scores, 1.0, t), y))


def fit_linear(args: argparse.Namespace, train_df: pd.DataFrame, y_train: np.ndarray,
               held_out: tuple[pd.DataFrame, ...], label_ids: dict[str, int]) -> LinearTextModel:
    """The TF-IDF linear model on the training split and, with ``--fusion-data``, that channel's documents of known
    labels that are not in a ``held_out`` (validation, test) split."""
    texts, y_linear = train_df["text"].tolist(), y_train
    if args.fusion_data:
        extra = read_dataset(Path(args.fusion_data))
        excluded = set().union(*(set(frame["text"]) for frame in held_out))
        extra = extra[extra["label"].astype(str).isin(label_ids) & ~extra["text"].isin(excluded)]
        texts = texts + extra["text"].astype(str).tolist()
        y_linear = np.concatenate([y_train, extra["label"].astype(str).map(label_ids).to_numpy(dtype=np.int64)])
    return LinearTextModel.fit(texts, y_linear, len(label_ids), features=FEATURE_SETS[args.linear_features],
                               seed=args.seed)


def refit_linear(args: argparse.Namespace, linear: LinearTextModel | None, train: tuple[pd.DataFrame, np.ndarray],
                 validation: tuple[pd.DataFrame, np.ndarray], test_df: pd.DataFrame,
                 label_ids: dict[str, int]) -> LinearTextModel | None:
    """The TF-IDF model to save (``--linear-refit``): once validation has chosen the fusion weight and temperature
    (or a linear model's temperature), fitted again on the training and validation documents together. The part of
    the model that reads every word gets the validation split's documents too (10 % more data: on the temporal split
    its accuracy 0.901 -> 0.906, the served model's 0.920 -> 0.924, README); the internal test split stays out, and
    the validation and test reports above are those of the model that never saw validation."""
    (train_df, y_train), (val_df, y_val) = train, validation
    if linear is None or not args.linear_refit or val_df.empty:
        return linear
    both = pd.concat([train_df, val_df], ignore_index=True)
    return fit_linear(args, both, np.concatenate([y_train, y_val]), (test_df,), label_ids)


def split_reports(meta: ModelMeta, linear: LinearTextModel | None, labels: list[str], splits) -> dict:
    """The served model's classification report per split (``splits``: name, frame, BERT's probabilities or None
    for a linear-only model, true label ids), and each component's summary under ``components``."""
    report: dict = {"components": {}}
    for name, frame, probs, y in splits:
        if frame.empty:
            continue
        scores = linear.decision_function(frame["text"].tolist()) if linear else None
        fused = fuse(probs, scores, meta.fusion_weight, meta.fusion_temperature)
        report[name] = classification_report(y, fused.argmax(1), labels)
        components = {"fused": summary(y, fused.argmax(1))}
        if probs is not None:
            components["bert"] = summary(y, probs.argmax(1))
        if scores is not None:
            components["linear"] = summary(y, scores.argmax(1))
        report["components"][name] = components
    return report


def finish(args: argparse.Namespace, candidate: TextClassifier, report: dict, training: dict, history: list[dict],
           started: float) -> dict:
    """What every run ends with, whatever its kind: the serving code beside the saved model folder, the holdout
    evaluation, and ``metrics.json`` (+ ``holdout.json``) in the model folder and the output folder."""
    package_serving_code(Path(args.model_dir))
    meta = candidate.meta
    metrics = {
        "model_version": args.model_version,
        "model_kind": meta.kind,
        "base_model": meta.base_model,
        "init_model": args.init_model,
        "labels": candidate.labels,
        **report,
        "fusion": {"weight": meta.fusion_weight, "temperature": meta.fusion_temperature},
        "training": {**training, "wall_time_seconds": time.perf_counter() - started},
        "history": history,
        "hyperparameters": {k: v for k, v in vars(args).items()
                            if k not in ("train", "validation", "model_dir", "output_data_dir")},
    }
    wall = metrics["training"]["wall_time_seconds"]
    if args.holdout:
        metrics["holdout"] = evaluate_on_holdout(candidate, Path(args.holdout), args.live_model,
                                                    args.eval_batch_size)
    out = Path(args.output_data_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = {METRICS_FILE: metrics, HOLDOUT_REPORT_FILE: metrics.get("holdout")}
    for name, content in reports.items():
        if content is not None:
            text = json.dumps(content, indent=2) + "\n"
            (Path(args.model_dir) / name).write_text(text)
            (out / name).write_text(text)
    final = report.get("test") or report.get("validation") or {}
    logger.info("done: model=%s test_accuracy=%s test_macro_f1=%s wall_time=%.0fs", args.model_dir,
                final.get("accuracy"), final.get("macro_f1"), wall)
    return metrics


def package_serving_code(model_dir: Path) -> None:
    """On SageMaker the source dir carries ``inference/`` beside this script: copy it, with ``autobert``, into the
    model's ``code/`` folder, which is where the PyTorch serving container looks for the inference script. A local
    run (no ``inference/`` beside the script) leaves the model folder as it is; the local endpoint imports the code."""
    source = Path(__file__).resolve().parent / "inference"
    if not (source / "inference.py").is_file():
        return
    import shutil

    import autobert

    code = model_dir / "code"
    code.mkdir(parents=True, exist_ok=True)
    for name in ("inference.py", "requirements.txt"):
        if (source / name).is_file():
            shutil.copy2(source / name, code / name)
    shutil.copytree(Path(autobert.__file__).parent, code / "autobert", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))


def evaluate_on_holdout(candidate: TextClassifier, holdout: Path, live_model: str | None, batch_size: int) -> dict:
    """Score the candidate and the live model on the same fixed holdout, over one shared label list (a label one
    model lacks simply counts as wrong for it)."""
    df = read_dataset(holdout)
    texts, truth = df["text"].astype(str).tolist(), df["label"].astype(str).tolist()
    live = TextClassifier.load(model_folder(live_model)) if live_model else None
    labels = list(dict.fromkeys([*candidate.labels, *(live.labels if live else []), *sorted(set(truth))]))
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[t] for t in truth])

    def predictions(model: TextClassifier) -> np.ndarray:
        return np.array([index[model.labels[i]] for i in model.predict_proba(texts, batch_size).argmax(1)])

    candidate_predicted = predictions(candidate)
    live_predicted = predictions(live) if live else None
    return {
        "holdout_rows": len(df),
        "labels": labels,
        "candidate_version": candidate.version,
        "candidate": classification_report(y, candidate_predicted, labels),
        "live_version": live.version if live else None,
        "live": classification_report(y, live_predicted, labels) if live else None,
        # For the gate's per-class sign test: which model alone gets each document touching a class wrong.
        "paired": paired_class_errors(y, candidate_predicted, live_predicted, labels) if live else None,
    }


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        train(parse_args(argv))
    except (AutobertError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        # SageMaker shows the content of this file as the training job's FailureReason.
        failure_dir = os.environ.get("SM_OUTPUT_DIR")
        if failure_dir:
            Path(failure_dir, "failure").write_text(str(exc))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Benchmark: training/train.py as one process against two data-parallel processes under torchrun, on this machine.

    python bench/distributed_training.py                  # 640 documents, 1 epoch, all-MiniLM-L6-v2 at 128 tokens
    python bench/distributed_training.py --documents 160  # quick

The same job twice on the same 20 Newsgroups sample (fp32, batch 16 per process, no fusion, the job's defaults
otherwise): ``python train.py`` with every core to its threads, and ``torchrun --standalone --nproc-per-node 2`` with
the cores shared out (``OMP_NUM_THREADS`` = cores / 2 each, gloo). It reads each job's own figures from its
metrics.json (samples/s over all ranks, training seconds, validation accuracy). On a 2-core CPU no speed-up is
expected: the point is that the data-parallel path runs and learns alike.

On GPUs, DDP all-reduces the trainable parameters' gradients once per step, overlapped with the backward pass. The
script prints that volume for the model and the time a ring all-reduce of it takes at the bus bandwidths assumed
below (estimates, not measurements: there is no GPU here). Results: ``bench/results/distributed_training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import cpu_model, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "training" / "train.py"

# Effective all-reduce bus bandwidths assumed for the estimate (GB/s): what each link sustains in NCCL's busbw
# figures, rounded down. Estimates for the docs, not measured here.
BANDWIDTHS_GB_S = {
    "ml.g5.12xlarge, 4 x A10G over PCIe 4.0 (no NVLink)": 10,
    "ml.p4d.24xlarge, 8 x A100 over NVLink/NVSwitch": 200,
    "2 x ml.g5.xlarge over the network (25 Gbit/s)": 2.5,
    "2 x ml.p4d.24xlarge over EFA (400 Gbit/s)": 40,
}


def channel(folder: Path, documents: int) -> Path:
    from autobert.config import get_settings
    from autobert.data import DATASET_FILE, export_dataset, prepare, read_dataset

    settings = get_settings()
    prepared, _ = prepare(settings.data_source, folder / "prepared", settings.cache_dir)
    df = read_dataset(prepared / DATASET_FILE)
    sample = df.sample(frac=1.0, random_state=0).groupby("label").head(max(1, documents // df["label"].nunique()))
    return export_dataset(sample.reset_index(drop=True), sorted(sample["label"].unique()), folder / "channel")


def run(name: str, launcher: list[str], threads: int, data: Path, work: Path, args) -> dict:
    out = work / name
    command = [*launcher, str(TRAIN), "--model-name", args.model_name, "--train", str(data), "--epochs", "1",
               "--max-length", "128", "--batch-size", "16", "--fusion", "false", "--precision", "fp32",
               "--test-fraction", "0", "--progress", "false", "--model-dir", str(out / "model"),
               "--output-data-dir", str(out / "output")]
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    metrics = json.loads((out / "output" / "metrics.json").read_text())
    training = metrics["training"]
    result = {"processes": 1 if name == "one" else 2, "threads_per_process": threads,
              "samples_per_second": round(training["samples_per_second"], 2),
              "train_seconds": round(training["train_seconds"], 1), "wall_seconds": round(wall, 1),
              "samples": training["samples"], "val_accuracy": round(metrics["history"][-1]["val_accuracy"], 4)}
    print(name, result, flush=True)
    return result


def gradient_megabytes(model_name: str) -> tuple[float, int]:
    """Trainable parameters (the job's default freezes the word embeddings) in MB of fp32 gradients.
    ``bert-base-uncased`` (the AWS default) is counted on its architecture (BertConfig's defaults), no weights."""
    sys.path.insert(0, str(REPO / "training"))
    import train
    from transformers import BertConfig, BertForSequenceClassification

    if model_name == "bert-base-uncased":
        model = BertForSequenceClassification(BertConfig(num_labels=20))
    else:
        model, *_ = train.load_base(argparse.Namespace(model_name=model_name, init_model=None), ["a", "b"])
    train.freeze_embeddings(model)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return n * 4 / 1e6, n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--documents", type=int, default=640)
    p.add_argument("--model-name", default="offline-default")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "distributed_training.json")
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    with tempfile.TemporaryDirectory(prefix="autobert-ddp-") as tmp:
        work = Path(tmp)
        data = channel(work, args.documents)
        one = run("one", [sys.executable], cores, data, work, args)
        two = run("two", [torchrun, "--standalone", "--nproc-per-node", "2"], max(1, cores // 2), data, work, args)
    volumes = {}
    for name in dict.fromkeys([args.model_name, "bert-base-uncased"]):
        megabytes, params = gradient_megabytes(name)
        volumes[name] = {"trainable_parameters": params, "megabytes_fp32": round(megabytes, 1),
                         # a ring all-reduce moves 2(n-1)/n of the data through each link: at most twice
                         "ring_all_reduce_ms_upper_bound_by_link": {
                             link: round(2 * megabytes / 1000 / bandwidth * 1000, 1)
                             for link, bandwidth in BANDWIDTHS_GB_S.items()}}
    results = {
        "machine": f"{cpu_model()}, {cores} cores", "model": args.model_name, "documents": args.documents,
        "one_process": one, "two_processes": two,
        "speedup": round(two["samples_per_second"] / one["samples_per_second"], 2),
        "gradient_all_reduce_per_step": volumes,
        "notes": ["the all-reduce times are estimates from assumed bus bandwidths (BANDWIDTHS_GB_S), not measured; "
                  "DDP overlaps them with the backward pass, so they bound the per-step cost from above"],
    }
    write_result(args.out, results, ("speedup", "gradient_all_reduce_per_step"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Benchmark: `autobert predict-batch` over a file against calling ``/predict`` one document at a time.

    python bench/predict_batch.py --model-dir <home>/bucket/models/<version>/model   # a trained model folder
    python bench/predict_batch.py                      # offline-default with a fresh (untrained) head: timing only
    python bench/predict_batch.py --documents 100      # quick smoke run

In one run on this machine, on the same ``--documents`` 20 Newsgroups messages (their real lengths; the model reads
its ``max_length`` tokens of each, ``head_tail``):

- ``/predict``: the local stack (`autobert up` as a child process: endpoint + API), one client posting one document
  per request, the way a script without a bulk path would classify a file;
- ``predict-batch``: ``autobert predict-batch INPUT OUTPUT`` as a user runs it (a fresh process: imports and the
  model load included), with the stack stopped so that nothing else shares the CPU.

Reported: documents/s of each, their ratio, and the share of documents both give the same label (the same model and
inference script: expected 1.0 up to bf16 ties). Results: ``bench/results/predict_batch.json``. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the endpoint runs (see bench/serving.py)

import requests  # noqa: E402
from benchlib import write_result  # noqa: E402
from serving import Stack, documents, fresh_model, machine  # noqa: E402

from autobert.adapters.local_store import LocalObjectStore  # noqa: E402
from autobert.workflow.registry import ModelRegistry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, help="Trained model folder (default: offline-default, fresh head).")
    p.add_argument("--documents", type=int, default=1000, help="Documents to classify both ways.")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "predict_batch.json")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="autobert-bench-batch-"))
    docs = [text for text, _ in documents(args.documents)]
    notes = []
    if args.model_dir:
        model = args.model_dir.resolve()
    else:
        model = fresh_model(work / "fresh", sorted({y for _, y in documents(2000)}))
        notes.append("offline-default with a freshly initialised head (untrained): timing only")
    home, version = work / "home", "bench-batch"
    ModelRegistry(LocalObjectStore(home / "bucket")).register(version, status="live", model_uri=str(model))
    source = work / "input.jsonl"
    source.write_text("".join(json.dumps({"id": f"doc-{i}", "text": t}) + "\n" for i, t in enumerate(docs)))
    results: dict = {"machine": machine(), "model": str(model), "documents": len(docs), "notes": notes}
    try:
        stack = Stack(home, model, version)  # writes live.json: the version predict-batch uses too
        try:
            session = requests.Session()
            url = f"{stack.api}/predict"
            for text in docs[:3]:  # warm-up: connections, the handler, the model's first forward
                session.post(url, json={"text": text}, timeout=120).raise_for_status()
            labels, start = [], time.perf_counter()
            for text in docs:
                response = session.post(url, json={"text": text}, timeout=120)
                response.raise_for_status()
                labels.append(response.json()["predictions"][0]["label"])
            seconds = time.perf_counter() - start
            results["predict_one_by_one"] = {"seconds": round(seconds, 2), "docs_per_s": round(len(docs) / seconds, 2)}
            print("/predict one by one:", results["predict_one_by_one"], flush=True)
        finally:
            stack.stop()
        out = work / "output.jsonl"
        env = {**os.environ, "AUTOBERT_HOME": str(home), "AUTOBERT_MAX_TEXT_CHARS": "1000000"}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "autobert.cli", "predict-batch", str(source), str(out), "--quiet"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        batch = [json.loads(line) for line in out.read_text().splitlines()]
        results["predict_batch"] = {"seconds": round(seconds, 2), "docs_per_s": round(len(docs) / seconds, 2),
                                    "errors": sum("error" in line for line in batch)}
        print("predict-batch:", results["predict_batch"], flush=True)
        results["speedup"] = round(results["predict_batch"]["docs_per_s"] / results["predict_one_by_one"]["docs_per_s"],
                                   2)
        results["same_label_share"] = round(sum(b.get("label") == a for b, a in zip(batch, labels, strict=True))
                                            / len(docs), 4)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_result(args.out, results, ("speedup", "same_label_share"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

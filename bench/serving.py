#!/usr/bin/env python
"""Benchmark: serving latency and throughput of the local stack against a plain transformers pipeline.

    python bench/serving.py --model-dir .autobert/bucket/models/<version>/model     # a trained model folder
    python bench/serving.py                       # offline-default with a fresh (untrained) head: timing only
    python bench/serving.py --requests 10 --throughput-requests 20 --lengths 128   # quick smoke run

What it measures, in one run on this machine (the stack is started as `autobert up` starts it: the endpoint process
plus the local API process running the real handlers):
- the model's own time for one document (``TextClassifier.predict_proba([text])``: tokenize + forward + softmax, the
  work the endpoint does per request) and the bare ``model(**inputs)`` forward, at each length, batch 1;
- latency p50/p95/p99 of ``POST /invocations`` (endpoint) and of ``POST /predict`` (API → handler → endpoint), one
  client, batch 1, at each length (inputs of exactly that many tokens; the model folder is served with
  ``max_length`` = that length so nothing is truncated away);
- throughput (requests/s, batch 1, 128 tokens) under 1, 4 and 16 concurrent clients for /predict, /invocations, and
  the baseline: one ``transformers`` text-classification pipeline on the same model called from as many threads;
- a burst (``--burst-clients`` 64 for ``--burst-seconds`` 30, 128 tokens) on ``/predict``: requests/s answered, latency
  p50/p99, the share answered 503 (the endpoint saturated: with ``Retry-After``) and how many waited past the API's
  own deadline (``endpoint_timeout``: none may);
- with ``--model-dir``: accuracy of the served numerics (bf16 autocast where the CPU has AMX/AVX512-BF16, as the
  endpoint runs) against fp32 (as the pipeline runs) on a sample of 20 Newsgroups documents.

Targets: /predict p50 at 128 tokens ≤ 1.3 × the model's own time; /predict throughput at 16 clients ≥ 2 × the
pipeline's. Results go to ``bench/results/serving.json``. Not a test: minutes of full CPU load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Like for like: the in-process measurements (the model's own time, the pipeline baseline) run under the OpenMP wait
# policy `autobert up` gives the endpoint (AUTOBERT_ENDPOINT_OMP_WAIT_POLICY, PASSIVE by default). It must be set
# before torch is imported. With spinning (ACTIVE) threads a busy 2-core machine slows every forward many times over.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

from benchlib import cpu_model, write_result  # noqa: E402

from autobert import layout  # noqa: E402
from autobert.adapters.local_store import LocalObjectStore  # noqa: E402
from autobert.local_stack import StackProcess, stack_environment  # noqa: E402
from autobert.modeling import META_FILE, ModelMeta, TextClassifier, encode, pad_batch  # noqa: E402

CLIENTS = (1, 4, 16)


def machine() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")


def stats(samples: list[float]) -> dict:
    ms = np.array(samples) * 1000
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2)}


# ------------------------------------------------------------------------------------------------------- inputs
def documents(limit: int = 2000) -> list[tuple[str, str]]:
    from autobert.config import get_settings
    from autobert.data import load_20newsgroups, resolve_source

    settings = get_settings()
    df = load_20newsgroups(resolve_source(settings.data_source, settings.cache_dir))
    df = df.sample(n=min(limit, len(df)), random_state=0)
    return list(zip(df["text"], df["label"], strict=True))


def texts_of_length(tokenizer, docs: list[str], length: int, count: int) -> list[str]:
    """Texts that tokenize to at least ``length`` tokens ([CLS]/[SEP] included) and are cut there by the model."""
    out, pool = [], " ".join(docs).split()
    step = length * 2
    for i in range(count):
        words = pool[(i * step) % max(1, len(pool) - step * 2):][: step * 2]
        ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"][: length - 2]
        out.append(tokenizer.decode(ids))
    return out


# ------------------------------------------------------------------------------------------------------- models
def fresh_model(folder: Path, labels: list[str]) -> Path:
    """offline-default with a freshly initialised classification head: right size and speed, meaningless labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from autobert.modeling import resolve_model_name, save_model_folder

    base = resolve_model_name("offline-default")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels))
    save_model_folder(folder, model, AutoTokenizer.from_pretrained(base), labels,
                      ModelMeta(model_version="offline-default-fresh-head", base_model="offline-default"), None)
    return folder


def variant(source: Path, folder: Path, max_length: int) -> Path:
    """The same model (files linked, not copied) served with ``max_length`` tokens and plain head truncation."""
    folder.mkdir(parents=True)
    for item in source.iterdir():
        if item.name != META_FILE:
            (folder / item.name).symlink_to(item.resolve())
    meta = ModelMeta.load(source)
    meta.max_length, meta.truncation = max_length, "head"
    meta.model_version = f"{meta.model_version}@{max_length}"
    meta.save(folder)
    return folder


# -------------------------------------------------------------------------------------------------------- stack
class Stack(StackProcess):
    """`autobert up` as a child process on free ports, serving ``model`` from a throwaway home."""

    def __init__(self, home: Path, model: Path, version: str):
        LocalObjectStore(home / "bucket").put_json(layout.LIVE_MODEL, {"version": version, "model_uri": str(model)})
        super().__init__(stack_environment(home, AUTOBERT_MAX_TEXT_CHARS="1000000",
                                           AUTOBERT_ENDPOINT_OMP_WAIT_POLICY=os.environ["OMP_WAIT_POLICY"]),
                         serving_timeout=300, log=home / "stack.log")

    def swap(self, version: str, model: Path) -> None:
        response = requests.post(f"{self.endpoint}/admin/model", json={"version": version, "model_uri": str(model)},
                                 timeout=300)
        response.raise_for_status()


# ---------------------------------------------------------------------------------------------------- measuring
def timed_calls(call, texts: list[str], n: int, warmup: int = 3) -> list[float]:
    for i in range(warmup):
        call(texts[i % len(texts)])
    times = []
    for i in range(n):
        start = time.perf_counter()
        call(texts[i % len(texts)])
        times.append(time.perf_counter() - start)
    return times


def throughput(make_call, texts: list[str], clients: int, total: int, warmup: int = 3) -> dict:
    """``total`` requests spread over ``clients`` threads (each with its own client), timed after every client has
    made ``warmup`` requests (so connections exist and the API has as many warm handler instances as clients)."""
    errors: list[str] = []
    per_client = max(1, total // clients)
    ready = threading.Barrier(clients + 1)
    finished = threading.Barrier(clients + 1)

    def worker(index: int) -> int:
        call = make_call()
        for i in range(warmup):
            with contextlib.suppress(Exception):
                call(texts[(index + i) % len(texts)])
        ready.wait()
        done = 0
        for i in range(per_client):
            try:
                call(texts[(index * per_client + i) % len(texts)])
                done += 1
            except Exception as exc:  # counted and reported, the run goes on
                errors.append(repr(exc)[:200])
        finished.wait()
        return done

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(worker, i) for i in range(clients)]
        ready.wait()
        start = time.perf_counter()
        finished.wait()
        elapsed = time.perf_counter() - start
        done = sum(f.result() for f in futures)
    return {"clients": clients, "requests": done, "seconds": round(elapsed, 2),
            "requests_per_s": round(done / elapsed, 2), "errors": len(errors), "first_error": errors[:1]}


def burst(url: str, texts: list[str], clients: int, seconds: float, deadline: float) -> dict:
    """``clients`` threads posting to ``url`` back to back for ``seconds``: throughput of the answered (200)
    requests, latency of every request, the share answered 503 (saturated: with Retry-After) and whether any
    request waited past ``deadline`` seconds (the API's own limit: it must answer before, never hang)."""
    results: list[tuple[int, float, str | None]] = []  # (status or 0 for no answer, seconds, Retry-After)
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)
    stop_at: list[float] = []

    def worker(index: int) -> None:
        session = requests.Session()
        start_line.wait()
        i = 0
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                response = session.post(url, json={"text": texts[(index + i) % len(texts)]}, timeout=deadline + 5)
                answer = (response.status_code, time.perf_counter() - t0, response.headers.get("Retry-After"))
            except requests.RequestException:
                answer = (0, time.perf_counter() - t0, None)
            with lock:
                results.append(answer)
            i += 1

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(worker, i) for i in range(clients)]
        stop_at.append(time.perf_counter() + seconds)
        start = time.perf_counter()
        start_line.wait()
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - start
    statuses = [r[0] for r in results]
    ok = statuses.count(200)
    refused = [r for r in results if r[0] == 503]
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": len(results),
            "answered_200_per_s": round(ok / elapsed, 2), "latency_all": stats([r[1] for r in results]),
            "latency_200": stats([r[1] for r in results if r[0] == 200]) if ok else None,
            "share_503": round(len(refused) / max(len(results), 1), 4),
            "503_with_retry_after": sum(r[2] is not None for r in refused),
            "other_statuses": {str(code): statuses.count(code) for code in set(statuses) - {200, 503}},
            "max_seconds": round(max(r[1] for r in results), 2), "deadline_seconds": deadline,
            "over_deadline": sum(r[1] > deadline for r in results)}


def http_caller(url: str):
    def make():
        session = requests.Session()

        def call(text: str) -> None:
            response = session.post(url, json={"text": text}, timeout=120)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
        return call
    return make


def model_time(model: TextClassifier, texts: list[str], n: int) -> tuple[list[float], list[float]]:
    """Per document: predict_proba (what the endpoint runs per request) and the bare forward pass."""
    full = timed_calls(lambda t: model.predict_proba([t]), texts, n)
    forward = []
    for t in texts[:n]:
        ids = encode(model.tokenizer, [t], model.meta.max_length, model.meta.truncation)
        batch = pad_batch(ids, model.pad_id)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=model.autocast):
            start = time.perf_counter()
            model.model(**batch)
            forward.append(time.perf_counter() - start)
    return full, forward


def accuracy(model: TextClassifier, docs: list[tuple[str, str]]) -> dict:
    """Served numerics (bf16 autocast when available) against fp32 on the same documents."""
    texts = [t for t, _ in docs]
    gold = np.array([model.labels.index(y) if y in model.labels else -1 for _, y in docs])
    served_autocast = model.autocast
    model.autocast = False
    fp32 = model.predict_proba(texts).argmax(1)
    model.autocast = served_autocast
    served = model.predict_proba(texts).argmax(1)
    known = gold >= 0
    return {"documents": int(known.sum()), "served_precision": "bf16-autocast" if served_autocast else "fp32",
            "accuracy_fp32": round(float((fp32[known] == gold[known]).mean()), 4),
            "accuracy_served": round(float((served[known] == gold[known]).mean()), 4),
            "agreement": round(float((fp32 == served).mean()), 4),
            "note": "a random sample of the 20NG train split: it may overlap the model's training data; the change "
                    "between the two precisions is what this measures"}


# ---------------------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, help="Trained model folder (default: offline-default, fresh head).")
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 512], help="Input lengths in tokens.")
    p.add_argument("--requests", type=int, default=200, help="Sequential requests per latency measurement.")
    p.add_argument("--throughput-requests", type=int, default=320, help="Requests per throughput measurement.")
    p.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS), help="Concurrent clients.")
    p.add_argument("--accuracy-docs", type=int, default=1000, help="Documents for the precision check (--model-dir).")
    p.add_argument("--burst-clients", type=int, default=64, help="Burst test: concurrent clients on /predict.")
    p.add_argument("--burst-seconds", type=float, default=30, help="Burst test: how long (0: no burst test).")
    p.add_argument("--burst-only", action="store_true", help="Only the burst test (at the first --lengths).")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving.json")
    args = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="autobert-bench-"))
    docs = documents()
    notes = []
    if args.model_dir:
        source = args.model_dir.resolve()
    else:
        labels = sorted({y for _, y in docs})
        source = fresh_model(work / "fresh", labels)
        notes.append("offline-default with a freshly initialised classification head (untrained): valid for "
                     "latency/throughput only; pass --model-dir for a trained model and the accuracy check")
    variants = {n: variant(source, work / f"model-{n}", n) for n in args.lengths}
    results: dict = {"machine": machine(), "model": str(source), "notes": notes, "torch_threads":
                     torch.get_num_threads(), "latency": {}, "throughput": {}}

    stack = Stack(work / "home", variants[args.lengths[0]], f"bench-{args.lengths[0]}")
    try:
        from transformers import pipeline

        if args.burst_seconds:
            n = args.lengths[0]
            texts = texts_of_length(TextClassifier.load(variants[n]).tokenizer, [t for t, _ in docs[:200]], n, 64)
            print(f"== burst: {args.burst_clients} clients for {args.burst_seconds:g} s at {n} tokens", flush=True)
            from autobert.config import get_settings

            # The API's own limit: API Gateway gives up after 29 s; the predict function's endpoint call after
            # endpoint_timeout. A request must be answered (200 or 503) before it.
            results["burst"] = {"tokens": n, **burst(f"{stack.api}/predict", texts, args.burst_clients,
                                                     args.burst_seconds, get_settings().endpoint_timeout)}
            print(json.dumps(results["burst"], indent=1), flush=True)
        for n in [] if args.burst_only else args.lengths:
            print(f"== {n} tokens", flush=True)
            model = TextClassifier.load(variants[n])
            texts = texts_of_length(model.tokenizer, [t for t, _ in docs[:200]], n, 64)
            stack.swap(f"bench-{n}", variants[n])
            own, forward = model_time(model, texts, args.requests)
            pipe = pipeline("text-classification", model=str(variants[n]), device=-1)
            pipe_call = lambda t, pipe=pipe, n=n: pipe(t, truncation=True, max_length=n)  # noqa: E731
            results["latency"][str(n)] = {
                "model_predict_proba": stats(own),
                "model_forward_only": stats(forward),
                "invocations": stats(timed_calls(http_caller(f"{stack.endpoint}/invocations")(), texts,
                                                 args.requests)),
                "predict": stats(timed_calls(http_caller(f"{stack.api}/predict")(), texts, args.requests)),
                "pipeline": stats(timed_calls(pipe_call, texts, args.requests)),
            }
            print(json.dumps(results["latency"][str(n)], indent=1), flush=True)
            if n == 128 or n == args.lengths[0] and 128 not in args.lengths:
                block = results["throughput"][str(n)] = {"predict": [], "invocations": [], "pipeline": []}
                for clients in args.clients:
                    block["predict"].append(throughput(http_caller(f"{stack.api}/predict"), texts, clients,
                                                       args.throughput_requests))
                    block["invocations"].append(throughput(http_caller(f"{stack.endpoint}/invocations"), texts,
                                                           clients, args.throughput_requests))
                    block["pipeline"].append(throughput(lambda pipe_call=pipe_call: pipe_call, texts, clients,
                                                        args.throughput_requests))
                    print(clients, "clients:", {k: v[-1]["requests_per_s"] for k, v in block.items()}, flush=True)
            del pipe, model
        if args.model_dir and not args.burst_only:
            results["accuracy"] = accuracy(TextClassifier.load(variants[args.lengths[0]]),
                                           docs[: args.accuracy_docs])
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)

    results["targets"] = targets(results)
    write_result(args.out, results, ("targets",))
    return 0


def targets(results: dict) -> dict:
    out = {}
    lat = results["latency"].get("128")
    if lat:
        ratio = lat["predict"]["p50_ms"] / lat["model_predict_proba"]["p50_ms"]
        out["predict_p50_over_model_time_128"] = {"value": round(ratio, 3), "target": "<= 1.3", "met": ratio <= 1.3,
                                                   "model_time": "predict_proba([text]): tokenize + forward"}
        bare = lat["predict"]["p50_ms"] / lat["model_forward_only"]["p50_ms"]
        out["predict_p50_over_bare_forward_128"] = {"value": round(bare, 3), "informational": True}
    tp = results["throughput"].get("128")
    if tp:
        by_clients = {r["clients"]: r for r in tp["predict"]}
        base = {r["clients"]: r for r in tp["pipeline"]}
        if 16 in by_clients and 16 in base:
            ratio = by_clients[16]["requests_per_s"] / base[16]["requests_per_s"]
            out["predict_throughput_16_over_pipeline"] = {"value": round(ratio, 3), "target": ">= 2",
                                                          "met": ratio >= 2}
    return out


if __name__ == "__main__":
    sys.exit(main())

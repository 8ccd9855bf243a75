#!/usr/bin/env python
"""The endpoint's capacity model: from the burst test measured here to instances, autoscaling target and cost.

    python bench/capacity.py                       # reads bench/results/serving.json (its "burst" block)
    python bench/capacity.py --serving bench/results/issue13/serving.burst.json

An estimate, not a measurement on SageMaker: the requests/s the local stack answered under the burst test (the
default model, 128 tokens, the same inference script and merged batching as the serving container) on this
machine's cores, divided by its core count and scaled by each instance type's vCPUs (the scaling the serving
container's batching gives on more cores is assumed linear, an upper bound). Latency p50/p99 under that load are the
burst test's. From it:

- the target of the target-tracking policy: ``TARGET_UTILISATION`` (70 %) of one instance's requests per minute;
- instances needed and cost per million predictions at 10, 100 and 1,000 requests/s (on-demand list prices in
  ``PRICES``, us-east-1, as published on the SageMaker pricing page; not checked from here: no network to AWS);
- serverless inference's cost for the same traffic (duration per request = the burst test's p50 latency at one
  client's share of the cores, memory 2 GB), and the request rate below which it is the cheaper choice.

The burst test serves the local default (all-MiniLM-L6-v2, 128 tokens); the stack deploys ``bert-base-uncased``
at 256 tokens (its ``modelName`` and ``hyperparameters``). ``--deployed`` (the default) therefore also times, in
this run and on this CPU, the forward pass of both architectures (randomly initialised: the weights do not change
the arithmetic; fp32, as on the CPU instances; full-length inputs, batch 16) and scales the burst rate by their
ratio, so the table and the target are for the model the stack serves.

Writes ``bench/results/capacity.json`` and prints the Markdown tables that docs/deploy.md shows.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from benchlib import cpu_model, write_result  # noqa: E402

TARGET_UTILISATION = 0.7
RATES = (10, 100, 1000)
# On-demand SageMaker real-time inference, us-east-1, USD per instance-hour (SageMaker pricing page). vCPUs per type.
PRICES = {
    "ml.m5.large": (2, 0.115),
    "ml.m5.xlarge": (4, 0.23),
    "ml.c5.xlarge": (4, 0.204),
    "ml.c5.2xlarge": (8, 0.408),
}
# Serverless inference, us-east-1: USD per second of compute at 2048 MB, and per GB of data in and out.
SERVERLESS_PER_SECOND_2GB = 0.00004
SERVERLESS_PER_GB_DATA = 0.016
REQUEST_AND_ANSWER_BYTES = 4_000  # a 128-token document and its JSON answer with top-k
# The architectures timed for the scaling (transformers.BertConfig arguments) and the tokens each reads.
LOCAL_DEFAULT = ("all-MiniLM-L6-v2", {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
                                      "intermediate_size": 1536}, 128)
DEPLOYED_DEFAULT = ("bert-base-uncased", {}, 256)  # BertConfig's defaults are bert-base's


def bert_classifier(config_args: dict):
    """A randomly initialised BERT classifier of that architecture (20 labels, fp32, eval mode): the weights do not
    change the arithmetic being timed."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(**config_args, num_labels=20)).eval()


def forward_rate(model, tokens: int, batch: int = 16, seconds: float = 20.0) -> float:
    """Documents per second of ``model``'s forward pass on full ``tokens``-long inputs, over at least ``seconds``
    after a warm-up batch."""
    import torch

    ids = torch.randint(1000, 20000, (batch, tokens))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model(input_ids=ids, attention_mask=mask)
            done += batch
    return done / (time.perf_counter() - start)


def single_request_latency(model, tokens: int, requests: int = 30) -> dict:
    """p50/p99 milliseconds of ``model`` on one document alone (batch 1, full ``tokens``), after a warm-up request."""
    import numpy as np
    import torch

    ids = torch.randint(1000, 20000, (1, tokens))
    samples = []
    with torch.inference_mode():
        for i in range(requests + 1):
            start = time.perf_counter()
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
            if i:
                samples.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": round(float(np.percentile(samples, 50)), 1), "p99_ms": round(float(np.percentile(samples, 99)),
                                                                                   1)}


def deployed_scaling() -> dict:
    """How many times slower the deployed default is than the local default, per document, timed here."""
    (local_name, local_args, local_tokens), (name, args, tokens) = LOCAL_DEFAULT, DEPLOYED_DEFAULT
    local_rate = forward_rate(bert_classifier(local_args), local_tokens)
    deployed = bert_classifier(args)
    rate = forward_rate(deployed, tokens)
    return {"cpu": cpu_model(), "precision": "fp32", "batch": 16,
            "local_default": {"model": local_name, "tokens": local_tokens, "docs_per_s": round(local_rate, 2)},
            "deployed_default": {"model": name, "tokens": tokens, "docs_per_s": round(rate, 2),
                                 "one_request_alone": single_request_latency(deployed, tokens)},
            "slowdown": round(local_rate / rate, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serving", type=Path, default=REPO / "bench" / "results" / "serving.json")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "capacity.json")
    p.add_argument("--deployed", action=argparse.BooleanOptionalAction, default=True,
                   help="scale to the model the stack deploys (bert-base-uncased, 256 tokens); --no-deployed: the "
                        "burst test's own model")
    args = p.parse_args(argv)
    serving = json.loads(args.serving.read_text())
    burst = serving["burst"]
    cores = int(serving["machine"].split(" cores")[0].rsplit(",", 1)[1])
    scaling = deployed_scaling() if args.deployed else None
    slowdown = scaling["slowdown"] if scaling else 1.0
    per_core = burst["answered_200_per_s"] / cores / slowdown
    latency = {k: burst["latency_200"][k] * slowdown for k in ("p50_ms", "p99_ms")}
    alone = scaling["deployed_default"]["one_request_alone"] if scaling else None
    instances = {}
    for name, (vcpus, price) in PRICES.items():
        capacity = per_core * vcpus
        instances[name] = {"vcpus": vcpus, "usd_per_hour": price, "requests_per_s": round(capacity, 1),
                           # one request on an idle instance: this machine's latency, shorter with more vCPUs only as
                           # far as one forward pass parallelises (linear scaling assumed: a lower bound)
                           **({"latency_one_request_ms": {k: round(v * cores / vcpus) for k, v in alone.items()}}
                              if alone else {}),
                           "target_invocations_per_minute": round(TARGET_UTILISATION * capacity * 60, -1),
                           "cost": {}}
        for rate in RATES:
            n = max(1, math.ceil(rate / (TARGET_UTILISATION * capacity)))
            per_million = n * price / (rate * 3600 / 1e6)
            instances[name]["cost"][str(rate)] = {"instances": n, "usd_per_million": round(per_million, 2)}
    # Serverless: each request bills its duration; under no concurrency on a 2-vCPU-sized container the model's own
    # time per request is about one core's share of the burst throughput's inverse (merged batches excluded).
    seconds_per_request = cores * slowdown / burst["answered_200_per_s"]
    serverless_per_million = 1e6 * (seconds_per_request * SERVERLESS_PER_SECOND_2GB
                                    + REQUEST_AND_ANSWER_BYTES / 1e9 * SERVERLESS_PER_GB_DATA)
    smallest = min(PRICES, key=lambda n: PRICES[n][1])
    break_even = PRICES[smallest][1] / 3600 / (serverless_per_million / 1e6)  # req/s where one instance costs the same
    results = {
        "measured_on": serving["machine"], "burst": {k: burst[k] for k in ("clients", "answered_200_per_s",
                                                                           "share_503", "over_deadline")},
        "model": DEPLOYED_DEFAULT[0] + f" at {DEPLOYED_DEFAULT[2]} tokens" if scaling else "the burst test's",
        "scaling_to_deployed_model": scaling,
        "latency_ms_under_burst": {"p50": round(latency["p50_ms"]), "p99": round(latency["p99_ms"])},
        "requests_per_s_per_core": round(per_core, 2), "target_utilisation": TARGET_UTILISATION,
        "instances": instances,
        "serverless": {"memory_mb": 2048, "seconds_per_request": round(seconds_per_request, 4),
                       "usd_per_million": round(serverless_per_million, 2),
                       "cheaper_than_one_" + smallest + "_below_requests_per_s": round(break_even, 1)},
        "notes": ["estimates: requests/s scaled per vCPU from the local burst test, list prices not checked from "
                  "here; measure on the instance type before relying on them"],
    }
    write_result(args.out, results)
    print(f"Measured on {serving['machine']}: {burst['answered_200_per_s']} req/s under {burst['clients']} clients.")
    if scaling:
        print(f"Forward pass here ({scaling['cpu']}, fp32, batch 16): {scaling['local_default']['model']} at "
              f"{scaling['local_default']['tokens']} tokens {scaling['local_default']['docs_per_s']} docs/s, "
              f"{scaling['deployed_default']['model']} at {scaling['deployed_default']['tokens']} tokens "
              f"{scaling['deployed_default']['docs_per_s']} docs/s: x{slowdown} slower.")
    print(f"{results['model']}: {per_core:.2f} req/s per core (under the {burst['clients']}-client burst on "
          f"{cores} cores, queueing included: p50 {latency['p50_ms']:.0f} ms, p99 {latency['p99_ms']:.0f} ms).\n")
    print("| instance | vCPUs | est. req/s | est. p50 / p99 ms, one request | target (invocations/min) | $/h | " +
          " | ".join(f"{r} req/s: instances, $/M" for r in RATES) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(RATES))
    for name, row in instances.items():
        cells = " | ".join(f"{row['cost'][str(r)]['instances']}, {row['cost'][str(r)]['usd_per_million']:.2f}"
                           for r in RATES)
        one = row.get("latency_one_request_ms")
        latency_cell = f"{one['p50_ms']} / {one['p99_ms']}" if one else "-"
        print(f"| {name} | {row['vcpus']} | {row['requests_per_s']} | {latency_cell} | "
              f"{row['target_invocations_per_minute']:.0f} | {row['usd_per_hour']} | {cells} |")
    print(f"\nServerless (2 GB): ${serverless_per_million:.2f} per million; cheaper than one {smallest} running all "
          f"the time below {break_even:.1f} req/s on average.")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

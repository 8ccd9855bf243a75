"""The ``autobert`` command line.

Each subcommand is a small function taking the parsed arguments and returning an exit code; domain errors become one
line on stderr and exit code 2, never a stack trace.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from autobert.config import REPO_ROOT, get_settings
from autobert.errors import AutobertError

Command = Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------------------------- data + training
def with_data_options(settings, args: argparse.Namespace):
    """The settings with the command's data options (--data/--source, --text-column, --label-column) applied."""
    update = {"data_source": getattr(args, "source", None), "text_column": args.text_column,
              "label_column": args.label_column}
    return settings.model_copy(update={k: v for k, v in update.items() if v is not None})


def add_data_options(parser, data_help: str) -> None:
    parser.add_argument("--data", "--source", dest="source", metavar="PATH", help=data_help)
    parser.add_argument("--text-column", help="Own data: the text column (default: AUTOBERT_TEXT_COLUMN, 'text').")
    parser.add_argument("--label-column", help="Own data: the label column (default: AUTOBERT_LABEL_COLUMN, "
                        "'label').")


DATA_HELP = ("Your own data (.csv, .jsonl/.ndjson or .parquet with text and label columns, or a folder with one "
             "subfolder per label) or 20 Newsgroups (.tar.gz, extracted folder); a path or URL. Default: "
             "AUTOBERT_DATA_SOURCE, else 20 Newsgroups.")


def cmd_prepare(args: argparse.Namespace) -> int:
    from autobert.data import prepare_configured

    settings = with_data_options(get_settings(), args)
    settings = settings.model_copy(update={"min_class_count": args.min_class_count or settings.min_class_count,
                                           "clean": args.clean or settings.clean})
    out = Path(args.out) if args.out else settings.home / "prepared"
    _, report = prepare_configured(settings, out)
    print(json.dumps({"out": str(out), **report.__dict__}, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Run the training job as a local process (training/train.py, the same script SageMaker runs)."""
    cmd = [sys.executable, str(REPO_ROOT / "training" / "train.py"), *args.train_args]
    return subprocess.call(cmd)


# --------------------------------------------------------------------------- local stack and its APIs (issue 3)
def cmd_up(args: argparse.Namespace) -> int:
    """The local endpoint + the local API in the foreground (and the first model if none is live yet)."""
    import logging

    from autobert.local_stack import up

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = with_data_options(get_settings(), args)
    if args.source:  # checked and prepared now, before anything starts: a bad file is one line and exit 2
        from autobert.bootstrap import bootstrap_local_stack
        from autobert.data import prepare_first_dataset
        from autobert.workflow.datasets import current_dataset

        imported = current_dataset(bootstrap_local_stack(settings).store)
        prepare_first_dataset(settings, Path(settings.seed_dataset or settings.home / "prepared"),
                              imported=imported and imported["version"])
    return up(settings)


def _call_api(path: str, payload: dict) -> int:
    import requests

    settings = get_settings()
    url = f"{settings.resolved_api_url}{path}"
    headers = {"x-api-key": settings.api_key} if settings.api_key else {}
    try:
        response = requests.post(url, json=payload, headers=headers, timeout=settings.endpoint_timeout + 5)
    except requests.ConnectionError:
        raise AutobertError(f"the local stack is not running at {settings.resolved_api_url}: start it with "
                            "`autobert up` (or set AUTOBERT_API_URL)") from None
    except requests.Timeout:
        raise AutobertError(f"{url} did not answer in time") from None
    try:
        body = response.json()
    except ValueError:
        raise AutobertError(f"{url} answered {response.status_code} with a non-JSON body") from None
    if response.status_code >= 400:
        raise AutobertError(f"{response.status_code}: {body.get('message', body) if isinstance(body, dict) else body}")
    print(json.dumps(body, indent=2))
    return 0


def _text_arg(text: str) -> str:
    return sys.stdin.read() if text == "-" else text


def cmd_predict(args: argparse.Namespace) -> int:
    payload: dict = {"text": _text_arg(args.text)}
    if args.top_k is not None:
        payload["top_k"] = args.top_k
    return _call_api("/predict", payload)


def cmd_feedback(args: argparse.Namespace) -> int:
    payload = {"text": _text_arg(args.text), "label": args.label}
    if args.predicted_label:
        payload["predicted_label"] = args.predicted_label
    if args.id:
        payload["id"] = args.id
    return _call_api("/feedback", payload)


def run_predict_batch(settings, args: argparse.Namespace, **adapters) -> int:
    """`predict-batch`: the live model over INPUT into OUTPUT (``autobert.batch``), by the settings' adapter."""
    from tqdm.auto import tqdm

    from autobert.batch import predict_batch, read_batch_input
    from autobert.bootstrap import bootstrap
    from autobert.workflow.registry import ModelRegistry

    services = bootstrap(settings, **adapters)
    source = read_batch_input(Path(args.input), settings, text_column=args.text_column, id_column=args.id_column)
    with tqdm(total=len(source), unit="doc", desc="predict-batch", file=sys.stderr,
              disable=args.quiet or None) as bar:
        report = predict_batch(source, Path(args.output), services.batch_predictor, ModelRegistry(services.store),
                               top_k=args.top_k, progress=bar.update)
    print(json.dumps({**report.as_dict(), "output": args.output}))
    return 0


def cmd_predict_batch(args: argparse.Namespace) -> int:
    return run_predict_batch(get_settings(), args)


def add_predict_batch_arguments(p) -> None:
    p.add_argument("input", help="JSON lines (.jsonl/.ndjson), CSV or Parquet file with a text column.")
    p.add_argument("output", help="JSON lines file: one prediction (or error) per input row, in input order; an "
                   "existing one is resumed (the rows it holds are skipped).")
    p.add_argument("--text-column", default="text", help="The text column (default: text).")
    p.add_argument("--id-column", default="id", help="An id column copied into each output line, if present "
                   "(default: id).")
    p.add_argument("--top-k", type=int, default=None, help="Alternatives per prediction.")
    p.add_argument("--quiet", action="store_true", help="No progress bar.")


def verb(parent, name: str, func, **kwargs):
    """A command ``autobert ... <name>`` run by ``func(args)`` (its exit code): the one way verbs are declared."""
    parser = parent.add_parser(name, **kwargs)
    parser.set_defaults(func=func)
    return parser


def add_serving_parsers(sub) -> None:
    p = verb(sub, "up", cmd_up, help="Start the local stack: the local endpoint and the local API (Ctrl-C stops "
             "both); trains and deploys the first model if none is live.")
    add_data_options(p, DATA_HELP + " With --data: the first dataset of a fresh home (prepared into "
                     "<home>/prepared).")
    p = verb(sub, "predict", cmd_predict, help="POST /predict to the local API and print the JSON answer.")
    p.add_argument("text", help="The text to classify ('-' reads stdin).")
    p.add_argument("--top-k", type=int, default=None, help="Alternatives to return.")
    p = verb(sub, "feedback", cmd_feedback, help="POST /feedback (the correct label for a text) to the local API.")
    p.add_argument("text", help="The text ('-' reads stdin).")
    p.add_argument("label", help="Its correct label.")
    p.add_argument("--predicted-label", help="What the model had said.")
    p.add_argument("--id", help="Idempotency key (default: derived from text + label).")
    p = verb(sub, "predict-batch", cmd_predict_batch, help="Classify a whole file with the live model (locally: the "
             "inference script here; with AUTOBERT_MODE=aws: a SageMaker Batch Transform job). Resumable.")
    add_predict_batch_arguments(p)


# --------------------------------------------------------------------------------- AWS deployment (issue 5)
def _aws_clients(settings) -> dict:
    import boto3

    session = boto3.session.Session(region_name=settings.region)
    return {name.replace("-", ""): session.client(name) for name in
            ("cloudformation", "s3", "sagemaker", "stepfunctions", "apigateway")}


def cmd_aws_bootstrap(args: argparse.Namespace) -> int:
    from autobert import aws_ops

    settings = with_data_options(get_settings(), args)
    c = _aws_clients(settings)
    prepared = Path(args.prepared) if args.prepared else settings.home / "prepared"
    report = aws_ops.bootstrap(cfn=c["cloudformation"], s3=c["s3"], sagemaker=c["sagemaker"],
                               stepfunctions=c["stepfunctions"], apigateway=c["apigateway"], settings=settings,
                               stack_name=args.stack or settings.resolved_stack_name, prepared=prepared,
                               direct=args.direct, wait=not args.no_wait, timeout=settings.aws_wait_seconds,
                               poll=settings.aws_poll_seconds, prepare_data=bool(args.source))
    print(aws_ops.to_json(report))
    print(f"\nAPI:     {report['api_url']}\nAPI key: {report['api_key']}  (header x-api-key)")
    return 0


def cmd_aws_status(args: argparse.Namespace) -> int:
    from autobert import aws_ops

    settings = get_settings()
    c = _aws_clients(settings)
    print(aws_ops.to_json(aws_ops.status(cfn=c["cloudformation"], s3=c["s3"], sagemaker=c["sagemaker"],
                                         stepfunctions=c["stepfunctions"],
                                         stack_name=args.stack or settings.resolved_stack_name, runs=args.runs)))
    return 0


def cmd_aws_teardown(args: argparse.Namespace) -> int:
    from autobert import aws_ops

    settings = get_settings()
    c = _aws_clients(settings)
    result = aws_ops.teardown(cfn=c["cloudformation"], sagemaker=c["sagemaker"],
                              stack_name=args.stack or settings.resolved_stack_name,
                              endpoint_name=args.endpoint)
    print(aws_ops.to_json(result.to_dict()))
    print("\nWhat remains:\n" + "\n".join(f"  - {line}" for line in result.remains))
    return 0


def cmd_aws_predict_batch(args: argparse.Namespace) -> int:
    from autobert import aws_ops

    settings = get_settings()
    c = _aws_clients(settings)
    info = aws_ops.stack_info(c["cloudformation"], args.stack or settings.resolved_stack_name)
    deployed = settings.model_copy(update={"mode": "aws", "bucket": info.bucket, "region": info.region,
                                           "endpoint_name": info.endpoint_name})
    return run_predict_batch(deployed, args)


def add_aws_parsers(sub) -> None:
    aws = sub.add_parser("aws", help="The deployed AWS stack: bootstrap, status, teardown (docs/deploy.md).")
    aws_sub = aws.add_subparsers(dest="aws_command", required=True, metavar="ACTION")
    stack_help = "CloudFormation stack (default: autobert-<AUTOBERT_AWS_STAGE>); region: AUTOBERT_REGION."

    p = verb(aws_sub, "bootstrap", cmd_aws_bootstrap, help="Upload the prepared dataset and the code, run the first "
             "training, create the endpoint, print the API URL and key.")
    p.add_argument("--stack", help=stack_help)
    p.add_argument("--prepared", help="Prepared dataset folder (default: <home>/prepared, from `autobert prepare`).")
    add_data_options(p, DATA_HELP + " With --data: prepared into the --prepared folder first, as the stack's "
                     "first dataset.")
    p.add_argument("--direct", action="store_true", help="Train with one SageMaker training job instead of a run "
                   "of the state machine.")
    p.add_argument("--no-wait", action="store_true", help="Start the first run and return (the run creates the "
                   "endpoint itself).")

    p = verb(aws_sub, "status", cmd_aws_status, help="Endpoint status, live model version, last runs.")
    p.add_argument("--stack", help=stack_help)
    p.add_argument("--runs", type=int, default=5, help="How many recent runs to list.")

    p = verb(aws_sub, "predict-batch", cmd_aws_predict_batch, help="Classify a whole file with the deployed "
             "stack's live model: a SageMaker Batch Transform job (recorded in the bucket under batch/).")
    p.add_argument("--stack", help=stack_help)
    add_predict_batch_arguments(p)

    p = verb(aws_sub, "teardown", cmd_aws_teardown,
             help="Delete the endpoint (and its models/configs); say what remains.")
    p.add_argument("--stack", help=stack_help)
    p.add_argument("--endpoint", help="Endpoint name, if the stack is already gone.")


# ------------------------------------------------------------------------------------ hyperparameter tuning (issue 7)
def _tune_number(value: str, option: str, kind: type):
    from autobert.tuning import TuningConfigError

    try:
        return kind(value)
    except (TypeError, ValueError):
        raise TuningConfigError(f"{option} must be a number, got {value!r}") from None


def cmd_tune(args: argparse.Namespace) -> int:
    """Run a local tuning study (Optuna) over the training job; the record goes to tuning/<study_id>/study.json."""
    from autobert.bootstrap import bootstrap
    from autobert.tuning import validate_budget
    from autobert.tuning.local import LocalTuner, new_study_id
    from autobert.tuning.service import (
        current_defaults,
        format_study,
        format_trial,
        parse_assignments,
        resolve_space,
        resolve_train_channel,
    )

    settings = get_settings()
    trials = _tune_number(args.trials, "--trials", int) if args.trials is not None else settings.tuning_trials
    timeout = (_tune_number(args.timeout, "--timeout", float) if args.timeout is not None
               else settings.tuning_timeout_seconds)
    validate_budget(trials, timeout)
    space = resolve_space(settings, args.space)
    static = {"model-name": args.model_name or settings.model_name, "seed": str(settings.seed),
              **settings.tuning_static_hyperparameters, **parse_assignments(args.set)}
    if args.max_train_samples is not None:
        static["max-train-samples"] = str(_tune_number(args.max_train_samples, "--max-train-samples", int))
    space.check_static(static)
    services = bootstrap(settings)
    channel = resolve_train_channel(services, args.train)
    enqueue = [] if args.no_defaults_trial else [space.point(current_defaults(settings, services.store))]
    study_id = new_study_id()
    tuner = LocalTuner(store=services.store, space=space, train_channel=channel,
                       work_dir=settings.home / "tuning", static=static, seed=settings.seed,
                       startup_trials=(args.startup_trials if args.startup_trials is not None
                                       else settings.tuning_startup_trials),
                       threads=settings.tuning_trial_threads,
                       on_trial=lambda t: print(format_trial(t), file=sys.stderr, flush=True))
    print(f"study {study_id}: up to {trials} trials / {timeout:g} s on {channel}", file=sys.stderr, flush=True)
    record = tuner.run(trials, timeout, enqueue=[p for p in enqueue if p], study_id=study_id)
    print(json.dumps(record, indent=2) if args.json else format_study(record))
    return 0


def cmd_tune_show(args: argparse.Namespace) -> int:
    from autobert.bootstrap import bootstrap
    from autobert.tuning import load_defaults_record, load_study
    from autobert.tuning.service import format_study

    store = bootstrap().store
    record = load_study(store, args.study)
    defaults = load_defaults_record(store) or {}
    if args.json:
        print(json.dumps({"study": record, "defaults": defaults or None}, indent=2))
    else:
        print(format_study(record, defaults))
    return 0


def cmd_tune_apply(args: argparse.Namespace) -> int:
    """Save a study's best (or a chosen) trial's parameters as the defaults of the next training runs."""
    from autobert.bootstrap import bootstrap
    from autobert.tuning import apply_defaults, load_study
    from autobert.tuning.records import clear_defaults

    store = bootstrap().store
    if args.clear:
        had = clear_defaults(store)
        print("tuned training defaults cleared" if had else "no tuned training defaults were set")
        return 0
    defaults = apply_defaults(store, load_study(store, args.study), args.trial)
    print(json.dumps(defaults, indent=2))
    return 0


def add_tune_parser(sub) -> None:
    p = verb(sub, "tune", cmd_tune,
             help="Hyperparameter tuning: run a local study (default), `tune show`, `tune apply`.",
             description="Run a local tuning study over training/train.py (Optuna: TPE sampler, median "
             "pruning after each epoch). Budget: --trials and --timeout. See docs/tuning.md.")
    p.add_argument("--trials", help="Most trials (default: AUTOBERT_TUNING_TRIALS).")
    p.add_argument("--timeout", help="Wall-time budget in seconds (default: AUTOBERT_TUNING_TIMEOUT_SECONDS); a "
                   "trial still running then is stopped.")
    p.add_argument("--max-train-samples", help="Train each trial on this many documents (a subsample).")
    p.add_argument("--train", help="Training data folder (default: the current dataset version, else "
                   "<home>/prepared).")
    p.add_argument("--space", help="Search space JSON file (default: AUTOBERT_TUNING_SPACE or the built-in space).")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="Fixed train.py hyperparameter for every trial, e.g. --set max-length=128 (repeatable).")
    p.add_argument("--model-name", help="Base model (default: AUTOBERT_MODEL_NAME).")
    p.add_argument("--startup-trials", type=int, help="Completed trials before pruning starts.")
    p.add_argument("--no-defaults-trial", action="store_true",
                   help="Do not run the current training defaults as trial 0.")
    p.add_argument("--json", action="store_true", help="Print the study record as JSON.")
    tune = p.add_subparsers(dest="tune_command", metavar="{show,apply}")
    s = verb(tune, "show", cmd_tune_show, help="Show a study's trials and best parameters (default: the newest study).")
    s.add_argument("--study", help="Study id (default: the newest).")
    s.add_argument("--json", action="store_true", help="Print the study record and the saved defaults as JSON.")
    a = verb(tune, "apply", cmd_tune_apply, help="Save the best parameters as the defaults of the next training runs.")
    a.add_argument("--study", help="Study id (default: the newest).")
    a.add_argument("--trial", type=int, help="Apply this trial instead of the best one.")
    a.add_argument("--clear", action="store_true", help="Forget the tuned defaults.")


# ------------------------------------------------------------------------------------ retraining workflow (issue 4)
_LOOP_STATES = ("WaitForTraining", "CheckTraining", "TrainingStatus", "WaitForEndpoint", "CheckEndpoint",
                "EndpointStatus")


def _run_summary(run: dict) -> str:
    lines = [f"run {run['run_id']}: {run.get('status')}  (trigger {run.get('trigger')}, "
             f"{'full' if run.get('full') else 'warm-start'} retrain)"]
    for name in ("tuning_job", "dataset_version", "model_version", "live_version", "error", "cause"):
        if run.get(name):
            lines.append(f"  {name.replace('_', ' ')}: {run[name]}")
    if run.get("gate"):
        decision = "promote" if run["gate"]["promote"] else "reject"
        lines.append(f"  gate: {decision}: {'; '.join(run['gate']['reasons'])}")
    states = run.get("states") or []
    if states:
        lines.append("  states (a wait loop's rounds summed):")
        rows: list[dict] = []
        for state in states:
            row = next((r for r in rows[-3:] if r["name"] == state["name"] and state["name"] in _LOOP_STATES), None)
            if row is None:
                row = {"name": state["name"], "seconds": 0.0, "rounds": 0, "open": False}
                rows.append(row)
            row["rounds"] += 1
            row["seconds"] += state.get("seconds", 0.0)
            row["open"] = "seconds" not in state
            if state.get("error"):
                row["error"] = f"{state['error']}: {state.get('cause', '')}"
        for row in rows:
            took = f"{row['seconds']:8.1f} s" + (" ..." if row["open"] else "")
            rounds = f" x{row['rounds']}" if row["rounds"] > 1 else ""
            error = f"  {row['error']}" if row.get("error") else ""
            lines.append(f"    {row['name'] + rounds:<22} {took}{error}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class ProgressPrinter:
    """The training job's progress from the run record (``contracts.TRAINING_PROGRESS``, written by CheckTraining)
    as lines for `autobert retrain --wait`: each finished epoch once with its validation scores, and the current
    epoch, step, samples/s and ETA each time they change."""

    def __init__(self) -> None:
        self.epochs_shown = 0
        self.last: tuple | None = None

    def lines(self, run: dict) -> list[str]:
        from autobert.contracts import TRAINING_PROGRESS

        progress = run.get(TRAINING_PROGRESS) or {}
        out = []
        for record in (progress.get("history") or [])[self.epochs_shown:]:
            out.append(f"  epoch {record['epoch']} done: val accuracy {_score(record.get('val_accuracy'))}  "
                       f"val macro-F1 {_score(record.get('val_macro_f1'))}  train loss "
                       f"{_score(record.get('train_loss'))}  {record.get('samples_per_second') or 0:.1f} samples/s")
            self.epochs_shown += 1
        current = tuple(progress.get(k) for k in ("epoch", "epochs", "step", "steps", "samples_per_second",
                                                  "eta_seconds", "loss"))
        if progress.get("step") is not None and current != self.last:
            epoch, epochs, step, steps, rate, eta, loss = current
            out.append(f"  training: epoch {epoch}/{epochs}  step {step}/{steps} ({100 * step // max(steps, 1)} %)"
                       f"  {rate:.1f} samples/s  ETA {_duration(eta)}  loss {_score(loss)}")
            self.last = current
        return out


def _follow_run(services, trigger_id: str, poll: float, out=sys.stderr) -> dict:
    """Wait for the run serving ``trigger_id`` (it may be queued behind another), printing each state as it
    completes; a wait loop's states are printed on their first round only (the summary sums the rounds), and the
    training job's progress when it changes."""
    import time

    from autobert.workflow.runs import RunStore, is_final
    from autobert.workflow.triggers import served_by

    runs, printed, seen_loop, announced = RunStore(services.store), 0, set(), False
    progress = ProgressPrinter()
    while True:
        run_id = served_by(services.store, trigger_id)
        if run_id:
            run = runs.get(run_id)
            if not announced:
                print(f"run {run_id} started", file=out, flush=True)
                announced = True
            states = run.get("states") or []
            for state in states[printed:]:
                if "seconds" not in state:
                    break  # still running: printed once it completes
                printed += 1
                if state["name"] in _LOOP_STATES:
                    if state["name"] in seen_loop:
                        continue
                    seen_loop.add(state["name"])
                error = f"  {state['error']}: {state.get('cause', '')}" if state.get("error") else ""
                print(f"  {state['name']:<22} {state['seconds']:8.1f} s{error}", file=out, flush=True)
            for line in progress.lines(run):
                print(line, file=out, flush=True)
            if is_final(run):
                return run
        time.sleep(poll)


def cmd_retrain(args: argparse.Namespace) -> int:
    """Trigger a retraining run (manual trigger); with --wait, follow it to the end."""
    from autobert.bootstrap import bootstrap
    from autobert.workflow.start import request_run

    services = bootstrap()
    services.workflow.check_ready()
    # The run itself goes on in the background (a detached local process, or the Step Functions execution).
    result = request_run(services, "manual", full=args.full, wait=False, source="cli")
    run = _follow_run(services, result["trigger"]["id"], services.workflow.poll_seconds) if args.wait else None
    if run is None:
        print(json.dumps({k: v for k, v in result.items() if k != "trigger"} | {"trigger": result["trigger"]["id"]}))
        return 0
    print(_run_summary(run))
    return 1 if run["status"] == "failed" else 0


def listed_otherwise(records: list[dict], as_json: bool, empty: str) -> bool:
    """Print ``records`` as JSON (``--json``), or ``empty`` when there are none; False leaves the table to the
    caller."""
    if as_json:
        print(json.dumps(records, indent=2))
    elif not records:
        print(empty)
    else:
        return False
    return True


def cmd_models(args: argparse.Namespace) -> int:
    from autobert.bootstrap import bootstrap
    from autobert.workflow.registry import ModelRegistry

    records = ModelRegistry(bootstrap().store).list()
    if listed_otherwise(records, args.json, "no models yet (run `autobert up` or `autobert retrain --wait`)"):
        return 0
    print(f"{'VERSION':<28} {'STATUS':<10} {'CREATED':<26} {'DATASET':<16} {'HOLDOUT ACC':>11} {'MACRO-F1':>9}")
    for r in records:
        cand = (r.get("gate") or {}).get("candidate") or {}
        acc = f"{cand['accuracy']:.4f}" if "accuracy" in cand else "-"
        f1 = f"{cand['macro_f1']:.4f}" if "macro_f1" in cand else "-"
        created = (r.get("created_at") or "")[:19] + ("Z" if r.get("created_at") else "")  # to the second, UTC
        print(f"{r['version']:<28} {r['status']:<10} {created:<26} "
              f"{r.get('dataset_version') or '-':<16} {acc:>11} {f1:>9}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from autobert.bootstrap import bootstrap
    from autobert.workflow.rollback import rollback

    services = bootstrap()
    services.workflow.check_ready()
    record = rollback(services, args.version, poll_seconds=services.deploy_poll_seconds)
    print(f"{record['version']} is live again")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from autobert.bootstrap import bootstrap
    from autobert.workflow.runs import RunStore

    runs = RunStore(bootstrap().store)
    if args.action == "show":
        if not args.run_id:
            print("autobert: error: runs show needs a run id", file=sys.stderr)
            return 2
        run = runs.get(args.run_id)
        if args.json:
            print(json.dumps({"run": run, "history": runs.history(args.run_id)}, indent=2))
        else:
            print(_run_summary(run))
        return 0
    records = runs.list()[: args.limit]
    if listed_otherwise(records, args.json, "no runs yet"):
        return 0
    print(f"{'RUN':<26} {'STATUS':<10} {'TRIGGER':<10} {'STARTED':<26} {'MODEL':<28} ERROR")
    for r in records:
        print(f"{r['run_id']:<26} {r.get('status', ''):<10} {r.get('trigger', ''):<10} {r.get('started_at', ''):<26} "
              f"{r.get('model_version') or '-':<28} {r.get('error') or ''}")
    return 0


def add_workflow_parsers(sub) -> None:
    p = verb(sub, "retrain", cmd_retrain, help="Start a retraining run now (manual trigger); queued if one is running.")
    p.add_argument("--wait", action="store_true", help="Follow the run to its end, printing each state as it "
                   "completes, then its summary.")
    p.add_argument("--full", action="store_true", help="Retrain from the base model on the whole dataset instead of "
                   "a warm start from the live model.")

    p = verb(sub, "models", cmd_models, help="List the model registry: versions, status, holdout scores.")
    p.add_argument("--json", action="store_true", help="Print the full records as JSON.")

    p = verb(sub, "rollback", cmd_rollback, help="Put a previous model version back live (same update path as a run).")
    p.add_argument("version", help="Model version (see `autobert models`).")

    p = verb(sub, "runs", cmd_runs, help="List retraining runs; `runs show ID` for one run's states and timings.")
    p.add_argument("action", nargs="?", choices=["show"], help="show: one run in detail.")
    p.add_argument("run_id", nargs="?", help="Run id (with show).")
    p.add_argument("--limit", type=int, default=20, help="How many recent runs to list.")
    p.add_argument("--json", action="store_true", help="JSON (with show: the run and its event history).")


# ---------------------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autobert", description="Self-improving BERT text classifier.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = verb(sub, "prepare", cmd_prepare,
             help="Load the dataset (your own or 20 Newsgroups), preprocess and export it cleaned (Parquet).")
    add_data_options(p, DATA_HELP)
    p.add_argument("--out", help="Output folder (default: <home>/prepared).")
    p.add_argument("--min-class-count", type=int, default=None, help="Drop categories with fewer documents.")
    p.add_argument("--clean", action="store_true", help="Strip headers, signature footers and quoted replies "
                   "(20 Newsgroups-style: leave it off for other data).")

    p = verb(sub, "train", cmd_train, help="Run training/train.py locally; arguments after 'train' are passed through.")
    p.add_argument("train_args", nargs=argparse.REMAINDER)

    add_serving_parsers(sub)  # local stack: up, predict, feedback (issue 3)
    add_aws_parsers(sub)  # deployed stack: aws bootstrap|status|teardown (issue 5)
    add_workflow_parsers(sub)  # retraining workflow: retrain, models, rollback, runs (issue 4)

    add_tune_parser(sub)  # hyperparameter tuning (issue 7)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AutobertError as exc:
        print(f"autobert: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

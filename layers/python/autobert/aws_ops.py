"""Operating a deployed stack (``serverless.yml``): ``autobert aws bootstrap``, ``aws status``, ``aws teardown``.

Bootstrap is the seed's "deploy on a SageMaker endpoint", against the stack: upload the prepared dataset (and its
fixed holdout) and the code, run the first training (through the state machine, or as a plain training job), and
make sure the endpoint with the fixed name serves the resulting model. The endpoint is created the way the SageMaker
Python SDK's ``PyTorchModel(entry_point="inference.py", source_dir="inference/", model_data=...).deploy(...)`` does
it: the model artifact is repacked with the inference code under ``code/``, then CreateModel, CreateEndpointConfig,
CreateEndpoint (the SDK itself is not a dependency: see docs/deploy.md).

Every function takes boto3 clients (or an ObjectStore) as arguments; nothing here reads the environment.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import math
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, WaiterError

from autobert import layout
from autobert.adapters.aws_errors import stack_missing
from autobert.adapters.sagemaker_deploy import describe_endpoint_if_exists
from autobert.config import REPO_ROOT
from autobert.contracts import ENCODER_KINDS, MODEL_KIND
from autobert.errors import AutobertError
from autobert.ports import ObjectNotFound, ObjectStore

# Every entry of a code tarball gets this mtime (2020-01-01) and root ownership: the same code gives the same
# bytes, so an unchanged upload is recognisable by its hash and SageMaker sees no spurious change.
FIXED_MTIME = 1_577_836_800


class AwsOpsError(AutobertError):
    """The stack, endpoint or a run is not in the state the command needs."""


# ------------------------------------------------------------------------------------------------ code tarballs
def package_files(package_dir: Path, prefix: str) -> dict[str, Path]:
    """Every file of a Python package folder (no bytecode), keyed by its path in the archive."""
    return {prefix + p.relative_to(package_dir).as_posix(): p for p in sorted(package_dir.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")}


def training_code_files(repo: Path = REPO_ROOT) -> dict[str, Path]:
    """``code/sourcedir.tar.gz``: SageMaker's training toolkit unpacks it into /opt/ml/code, installs the root
    ``requirements.txt`` and runs ``train.py`` (``sagemaker_program``), which imports ``autobert/`` beside it.
    ``inference/`` rides along so the job can put the serving code into the model's ``code/`` folder: the PyTorch
    serving container only looks there (/opt/ml/model/code), never at an S3 SAGEMAKER_SUBMIT_DIRECTORY."""
    return {"train.py": repo / "training" / "train.py", "requirements.txt": repo / "training" / "requirements.txt",
            "inference/inference.py": repo / "inference" / "inference.py",
            "inference/requirements.txt": repo / "inference" / "requirements.txt",
            **package_files(repo / "layers" / "python" / "autobert", "autobert/")}


def inference_code_files(repo: Path = REPO_ROOT) -> dict[str, Path]:
    """The model's ``code/`` folder for the PyTorch serving container: ``inference.py`` (``SAGEMAKER_PROGRAM``),
    its ``requirements.txt`` and ``autobert/``."""
    return {"inference.py": repo / "inference" / "inference.py",
            "requirements.txt": repo / "inference" / "requirements.txt",
            **package_files(repo / "layers" / "python" / "autobert", "autobert/")}


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), FIXED_MTIME, mode
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _tar_gz(entries: Iterable[tuple[str, bytes, int]]) -> bytes:
    raw = io.BytesIO()
    # mtime=0 and no file name in the gzip header: the compressed bytes depend on the content only.
    with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, mode in sorted(entries):
            _add(tar, name, data, mode)
    return raw.getvalue()


def build_tarball(files: dict[str, Path], prefix: str = "") -> bytes:
    """A deterministic ``.tar.gz`` of ``files`` (archive name → file): sorted entries, fixed mtime and owner."""
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise AwsOpsError(f"cannot package the code, missing: {', '.join(missing)}")
    return _tar_gz((prefix + name, path.read_bytes(), 0o644) for name, path in files.items())


def repack_model(model_tar_gz: bytes, code: dict[str, Path]) -> bytes:
    """The model artifact with ``code/`` replaced by ``code`` (what PyTorchModel does when given an entry point)."""
    entries = []
    try:
        with tarfile.open(fileobj=io.BytesIO(model_tar_gz), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("./")
                if member.isfile() and not (name == "code" or name.startswith("code/")):
                    entries.append((name, tar.extractfile(member).read(), member.mode & 0o777 or 0o644))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AwsOpsError(f"the model artifact is not a readable .tar.gz: {exc}") from exc
    if not entries:
        raise AwsOpsError("the model artifact is empty")
    missing = [str(p) for p in code.values() if not p.is_file()]
    if missing:
        raise AwsOpsError(f"cannot package the code, missing: {', '.join(missing)}")
    entries += [("code/" + name, path.read_bytes(), 0o644) for name, path in code.items()]
    return _tar_gz(entries)


def upload_code(store: ObjectStore, repo: Path = REPO_ROOT) -> dict[str, str]:
    """Upload the training and inference code tarballs; returns key → sha256."""
    out = {}
    for key, files in ((layout.TRAINING_CODE, training_code_files(repo)),
                       (layout.INFERENCE_CODE, inference_code_files(repo))):
        data = build_tarball(files)
        store.put_bytes(key, data)
        out[key] = hashlib.sha256(data).hexdigest()
    return out


# ------------------------------------------------------------------------------------------------------ the stack
@dataclass(frozen=True)
class StackInfo:
    stack_name: str
    region: str
    bucket: str
    state_machine_arn: str
    endpoint_name: str
    sagemaker_role_arn: str
    api_url: str
    api_key_id: str
    inference_image_uri: str
    training_image_uri: str

    OUTPUTS = {"bucket": "BucketName", "state_machine_arn": "RetrainStateMachineArn", "endpoint_name": "EndpointName",
               "sagemaker_role_arn": "SageMakerRoleArn", "api_url": "ServiceEndpoint", "api_key_id": "ApiKeyId",
               "inference_image_uri": "InferenceImageUri", "training_image_uri": "TrainingImageUri"}


def stack_info(cfn, stack_name: str) -> StackInfo:
    """The deployed stack's outputs (DescribeStacks)."""
    try:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        if stack_missing(exc):
            raise AwsOpsError(f"stack {stack_name} not found in {cfn.meta.region_name}: deploy it first "
                              "(npx osls deploy --stage <stage> --region <region>)") from exc
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    missing = sorted(set(StackInfo.OUTPUTS.values()) - set(outputs))
    if missing:
        raise AwsOpsError(f"stack {stack_name} ({stack['StackStatus']}) lacks output(s) {', '.join(missing)}: "
                          "is the deployment complete?")
    return StackInfo(stack_name=stack_name, region=cfn.meta.region_name,
                     **{field: outputs[key] for field, key in StackInfo.OUTPUTS.items()})


def api_key_value(apigateway, key_id: str) -> str:
    return apigateway.get_api_key(apiKey=key_id, includeValue=True)["value"]


# ---------------------------------------------------------------------------------------------------- the dataset
def upload_dataset(store: ObjectStore, prepared: Path, *, holdout_fraction: float, seed: int) -> dict:
    """Import the prepared dataset (``autobert prepare``) as dataset version 0 with its fixed holdout, keyed as
    ``autobert.layout`` says. Idempotent: an existing current dataset is kept."""
    import pandas as pd

    from autobert.data import DATASET_FILE, LABELS_FILE, read_labels
    from autobert.workflow.merge import import_initial_dataset

    if not (prepared / DATASET_FILE).is_file():
        raise AwsOpsError(f"no prepared dataset in {prepared}: run `autobert prepare` first")
    df = pd.read_parquet(prepared / DATASET_FILE)
    return import_initial_dataset(store, df, read_labels(prepared / LABELS_FILE), holdout_fraction=holdout_fraction,
                                  seed=seed, source=str(prepared))


# -------------------------------------------------------------------------------------------------- the first run
def start_first_run(store: ObjectStore, runs, settings, info: StackInfo, *, model_kind: str = "bert") -> dict:
    """Start the first retraining run (full training of ``model_kind``) through the state machine, exactly as the
    retrain API does (``autobert.workflow.start.request_run``: record a ``bootstrap`` trigger, start an execution
    serving the pending triggers unless one is running). A run already in progress is waited for instead (bootstrap
    may be re-run). A first run of the linear model is followed by the BERT fine-tune in a run of its own: its
    trigger (``followup_trigger``) waits for the first run to end, when the execution-status rule starts it; it
    replaces the linear model if the gate passes."""
    from autobert.bootstrap import bootstrap
    from autobert.workflow.start import request_run

    services = bootstrap(settings.model_copy(update={"mode": "aws", "bucket": info.bucket,
                                                      "state_machine_arn": info.state_machine_arn}),
                         store=store, workflow_runs=runs)  # every call goes through the given clients
    result = request_run(services, "bootstrap", full=True, **{MODEL_KIND: model_kind})
    if result["status"] == "started":
        started = {"run_id": result["run_id"], "execution_arn": result["execution_arn"], "started": True,
                   "trigger": result["trigger"]["id"], MODEL_KIND: model_kind}
        if model_kind not in ENCODER_KINDS:
            followup = request_run(services, "bootstrap", full=True, **{MODEL_KIND: "bert"})
            started["followup_trigger"] = followup["trigger"]["id"]
        return started
    running = runs.running()
    if not running:
        raise AwsOpsError(f"could not start the first run ({result['status']})")
    return {"run_id": running[0]["name"], "execution_arn": running[0]["executionArn"], "started": False,
            "trigger": result["trigger"]["id"]}


def attempts(timeout: float, poll: float) -> int:
    """How many status checks a wait of ``timeout`` seconds makes at one every ``poll`` seconds (the first at once):
    the waits count checks, not the clock, so a wait ends the same way however fast the machine is."""
    return math.ceil(timeout / poll) + 1


def waiter_config(timeout: float, poll: float) -> dict:
    """boto3 waiters' ``WaiterConfig`` for the given wait: a check every ``poll`` s, at most ``attempts`` of them."""
    return {"Delay": poll, "MaxAttempts": attempts(timeout, poll)}


EXECUTION_ENDED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def wait_for_execution(stepfunctions, execution_arn: str, *, timeout: float, poll: float,
                       sleep: Callable[[float], None] = time.sleep, what: str) -> str:
    """The execution's final status. Step Functions has no boto3 waiter for an execution's end, so this is the loop
    a waiter runs (DescribeExecution every ``poll`` s, ``attempts(timeout, poll)`` times at most), with ``sleep``
    injectable; raises AwsOpsError if the execution is still running after that."""
    status = ""
    for attempt in range(attempts(timeout, poll)):
        if attempt:
            sleep(poll)
        status = stepfunctions.describe_execution(executionArn=execution_arn)["status"]
        if status in EXECUTION_ENDED:
            return status
    raise AwsOpsError(f"{what} still {status} after {timeout:g} s")


def wait_until(client, waiter: str, *, timeout: float, poll: float, **params: Any) -> None:
    """Run the client's boto3 waiter ``waiter`` with ``waiter_config(timeout, poll)``. A waiter that gives up (a
    failure state, or still waiting after its attempts) returns too: the caller describes the resource and says
    what state it is in."""
    with contextlib.suppress(WaiterError):
        client.get_waiter(waiter).wait(**params, WaiterConfig=waiter_config(timeout, poll))


def train_directly(sagemaker, store: ObjectStore, settings, info: StackInfo, dataset: dict, *, timeout: float,
                   poll: float) -> dict:
    """The seed's path without the state machine: one SageMaker training job on the imported dataset (the
    workflow's training adapter builds the request), waited for, then registered as a candidate."""
    from autobert.adapters.sagemaker_training import SageMakerTrainingJobs
    from autobert.bootstrap import bootstrap
    from autobert.ports import TrainingJobSpec
    from autobert.workflow.registry import ModelRegistry
    from autobert.workflow.steps import new_job_name, training_inputs

    job_settings = settings.model_copy(update={"mode": "aws", "bucket": info.bucket,
                                               "sagemaker_role_arn": info.sagemaker_role_arn,
                                               "training_image_uri": info.training_image_uri})
    jobs = SageMakerTrainingJobs(sagemaker, job_settings, store.uri(layout.TRAINING_CODE), store)
    job_name = new_job_name()
    # The channels and hyperparameters of a run's full training (no model is live yet: no warm start).
    merge = {"channels": {"train": layout.dataset_prefix(dataset["version"]), "validation": None},
             "dataset_version": dataset["version"], "holdout_version": dataset["holdout"], "warm": False}
    inputs = training_inputs(bootstrap(job_settings, store=store), merge, job_name, jobs)
    jobs.start(TrainingJobSpec(job_name=job_name, hyperparameters=inputs.hyperparameters, channels=inputs.channels,
                               output_uri=store.uri(layout.MODELS), extra={"run_id": "bootstrap"}))
    wait_until(sagemaker, "training_job_completed_or_stopped", timeout=timeout, poll=poll, TrainingJobName=job_name)
    state = jobs.describe(job_name)
    if state.status == "InProgress":
        raise AwsOpsError(f"training job {job_name} still InProgress after {timeout:g} s")
    if state.status != "Completed":
        raise AwsOpsError(f"training job {job_name} ended {state.status}: {state.failure_reason}")
    ModelRegistry(store).register(job_name, status="candidate", model_uri=state.model_uri,
                                  dataset_version=dataset["version"], source="bootstrap")
    return {"version": job_name, "model_uri": state.model_uri}


# ----------------------------------------------------------------------------------------------------- endpoint
def _s3_key(store: ObjectStore, uri: str) -> str:
    prefix = store.uri("")
    if not uri.startswith(prefix):
        raise AwsOpsError(f"model artifact {uri} is not in the stack's bucket ({prefix})")
    return uri[len(prefix):]


def deploy_endpoint(sagemaker, store: ObjectStore, info: StackInfo, settings, *, version: str, model_uri: str,
                    repo: Path = REPO_ROOT) -> dict:
    """Create the endpoint with the fixed name serving ``version``, as ``PyTorchModel.deploy`` does: repack the
    artifact with ``code/`` (inference.py, requirements.txt, autobert/), CreateModel with the serving container's
    script-mode variables, CreateEndpointConfig, CreateEndpoint. Model and config are named ``<endpoint>-<version>``
    like the workflow's deploy step names them. An existing endpoint is left alone (the workflow swaps models)."""
    existing = describe_endpoint_if_exists(sagemaker, info.endpoint_name)
    if existing:
        return {"endpoint": info.endpoint_name, "created": False, "status": existing["EndpointStatus"]}
    packed_key = f"{layout.model_prefix(version)}serving/model.tar.gz"
    if not store.exists(packed_key):
        try:
            artifact = store.get_bytes(_s3_key(store, model_uri))
        except ObjectNotFound as exc:
            raise AwsOpsError(f"model artifact {model_uri} not found") from exc
        store.put_bytes(packed_key, repack_model(artifact, inference_code_files(repo)))
    from autobert.adapters.sagemaker_deploy import SageMakerEndpointDeployer

    # The workflow's deployer (CreateModel, CreateEndpointConfig, CreateEndpoint), on the stack's endpoint and role.
    deployer = SageMakerEndpointDeployer(sagemaker, settings.model_copy(update={
        "region": info.region, "endpoint_name": info.endpoint_name, "sagemaker_role_arn": info.sagemaker_role_arn,
        "inference_image_uri": info.inference_image_uri}))
    deployer.deploy(version, store.uri(packed_key))
    return {"endpoint": info.endpoint_name, "created": True, "model": deployer.resource_name(version),
            "model_data": store.uri(packed_key)}


def wait_for_endpoint(sagemaker, endpoint_name: str, *, timeout: float, poll: float) -> str:
    """Wait until the endpoint is InService (boto3's ``endpoint_in_service`` waiter); an endpoint that failed, or is
    still not serving after ``timeout``, is an AwsOpsError saying so."""
    wait_until(sagemaker, "endpoint_in_service", timeout=timeout, poll=poll, EndpointName=endpoint_name)
    endpoint = describe_endpoint_if_exists(sagemaker, endpoint_name)
    status = endpoint["EndpointStatus"] if endpoint else "absent"
    if status == "InService":
        return status
    reason = (endpoint or {}).get("FailureReason")
    raise AwsOpsError(f"endpoint {endpoint_name} is {status}" + (f": {reason}" if reason else
                                                                  f" after {timeout:g} s"))


# ------------------------------------------------------------------------------------------------------ bootstrap
def bootstrap(*, cfn, s3, sagemaker, stepfunctions, apigateway, settings, stack_name: str, prepared: Path,
              direct: bool = False, wait: bool = True, timeout: float = 6 * 3600, poll: float = 30.0,
              sleep: Callable[[float], None] = time.sleep, repo: Path = REPO_ROOT, prepare_data: bool = False) -> dict:
    """Dataset + code upload, first training, endpoint; returns what was done plus the API URL and key.
    ``prepare_data`` (``--data``): first prepare ``settings.data_source`` into ``prepared`` (``autobert.data.
    prepare_first_dataset``: refused if the bucket already holds a first dataset from another source)."""
    from autobert.adapters.s3_store import S3ObjectStore
    from autobert.adapters.stepfunctions import StepFunctionsRuns
    from autobert.workflow.registry import ModelRegistry

    info = stack_info(cfn, stack_name)
    store = S3ObjectStore(s3, info.bucket)
    report: dict[str, Any] = {"stack": stack_name, "bucket": info.bucket}
    if prepare_data:
        from autobert.data import prepare_first_dataset
        from autobert.workflow.datasets import current_dataset

        imported = current_dataset(store)
        prepare_first_dataset(settings, prepared, imported=imported and imported["version"])
    dataset = upload_dataset(store, prepared, holdout_fraction=settings.holdout_fraction, seed=settings.seed)
    report["dataset"] = dataset
    report["code"] = upload_code(store, repo)
    registry = ModelRegistry(store)
    model = None
    if direct:
        live = registry.live()
        model = live or train_directly(sagemaker, store, settings, info, dataset, timeout=timeout, poll=poll)
        report["training"] = {"job": model["version"], "reused_live_model": bool(live)}
    else:
        # The first model: AUTOBERT_FIRST_MODEL (default the linear model, BERT following); BERT once one is live.
        first = settings.first_model if registry.live() is None else "bert"
        run = start_first_run(store, StepFunctionsRuns(stepfunctions, info.state_machine_arn), settings, info,
                              model_kind=first)
        report["run"] = run
        if wait:
            status = wait_for_execution(stepfunctions, run["execution_arn"], timeout=timeout, poll=poll, sleep=sleep,
                                        what=f"run {run['run_id']}")
            report["run"]["status"] = status
            if status != "SUCCEEDED":
                raise AwsOpsError(f"the first run {run['run_id']} ended {status}: see the Step Functions console "
                                  f"(state machine {info.state_machine_arn})")
            # The run's deploy step normally creates the endpoint; the model it trained is live by now.
            model = registry.live() or _latest_candidate(registry)
    if model and wait:
        report["endpoint"] = deploy_endpoint(sagemaker, store, info, settings, version=model["version"],
                                             model_uri=model["model_uri"], repo=repo)
        report["endpoint"]["status"] = wait_for_endpoint(sagemaker, info.endpoint_name, timeout=timeout, poll=poll)
        if direct and registry.live() is None:
            registry.mark_live(model["version"])
    report["api_url"] = info.api_url
    report["api_key"] = api_key_value(apigateway, info.api_key_id)
    return report


def _latest_candidate(registry) -> dict | None:
    candidates = [r for r in registry.list() if r.get("status") in ("candidate", "live") and r.get("model_uri")]
    return candidates[-1] if candidates else None


# --------------------------------------------------------------------------------------------------------- status
def status(*, cfn, s3, sagemaker, stepfunctions, stack_name: str, runs: int = 5) -> dict:
    """Endpoint state, live model version and the last runs."""
    from autobert.adapters.s3_store import S3ObjectStore
    from autobert.workflow.registry import ModelRegistry

    info = stack_info(cfn, stack_name)
    endpoint = describe_endpoint_if_exists(sagemaker, info.endpoint_name)
    executions = stepfunctions.list_executions(stateMachineArn=info.state_machine_arn, maxResults=runs)["executions"]
    return {
        "stack": stack_name,
        "endpoint": {"name": info.endpoint_name, "status": endpoint["EndpointStatus"],
                     "config": endpoint["EndpointConfigName"]} if endpoint
        else {"name": info.endpoint_name, "status": "absent"},
        "live_model": ModelRegistry(S3ObjectStore(s3, info.bucket)).live(),
        "runs": [{"name": e["name"], "status": e["status"], "started": _iso(e.get("startDate")),
                  "stopped": _iso(e.get("stopDate"))} for e in executions],
        "api_url": info.api_url,
    }


def _iso(value) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


# ------------------------------------------------------------------------------------------------------- teardown
def _named(sagemaker, operation: str, key: str, name_key: str, endpoint_name: str) -> list[str]:
    """The names ``<endpoint>-...`` that ``operation`` lists, across every page (boto3's paginator)."""
    pages = sagemaker.get_paginator(operation).paginate(NameContains=endpoint_name)
    prefix = f"{endpoint_name}-"
    return sorted(item[name_key] for page in pages for item in page[key] if item[name_key].startswith(prefix))


@dataclass
class Teardown:
    endpoint: str | None
    endpoint_configs: list[str]
    models: list[str]
    remains: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def teardown(*, cfn, sagemaker, stack_name: str, endpoint_name: str | None = None) -> Teardown:
    """Delete the endpoint (billed per hour while it exists) and its endpoint configs and models (named
    ``<endpoint>-<version>``); say what is left and how to remove it."""
    info = None
    try:
        info = stack_info(cfn, stack_name)
        endpoint_name = info.endpoint_name
    except AwsOpsError:
        if not endpoint_name:
            raise
    deleted_endpoint = None
    if describe_endpoint_if_exists(sagemaker, endpoint_name):
        sagemaker.delete_endpoint(EndpointName=endpoint_name)
        deleted_endpoint = endpoint_name
    configs = _named(sagemaker, "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", endpoint_name)
    for name in configs:
        sagemaker.delete_endpoint_config(EndpointConfigName=name)
    models = _named(sagemaker, "list_models", "Models", "ModelName", endpoint_name)
    for name in models:
        sagemaker.delete_model(ModelName=name)
    stage = stack_name.removeprefix("autobert-")
    region = cfn.meta.region_name
    remains = [
        f"stack {stack_name} (APIs, Lambdas, state machine, alarms; no hourly cost): "
        f"npx osls remove --stage {stage} --region {region}",
    ]
    if info:
        remains.append(f"bucket s3://{info.bucket} (kept on purpose: datasets, feedback, models; storage cost only). "
                       "To delete it too, empty every object version, then: "
                       f"aws s3api delete-bucket --bucket {info.bucket} --region {region}")
    remains.append("training job records and CloudWatch logs (no cost beyond log storage)")
    return Teardown(deleted_endpoint, configs, models, remains)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)

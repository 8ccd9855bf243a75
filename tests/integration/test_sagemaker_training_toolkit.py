"""train.py run by AWS's own training toolkits, as the PyTorch training container runs it.

The DLC's ``train`` command is ``sagemaker_training.cli.train:main`` with
``SAGEMAKER_TRAINING_MODULE=sagemaker_pytorch_container.training:main`` (sagemaker-training and
sagemaker-pytorch-training from PyPI, pinned in requirements-dev.txt). Here it runs in a subprocess over a temporary
root that stands in for /opt/ml (the toolkit's ``SAGEMAKER_BASE_DIR``), laid out as SageMaker lays it out:

- ``input/config/hyperparameters.json`` is OUR adapter's CreateTrainingJob ``HyperParameters``, verbatim (the API
  writes the strings it was given; the toolkit ``json.loads`` each one it can, so ``"2"`` reaches train.py as
  ``2`` and ``"false"`` as ``False``), with ``/opt/ml`` in the values moved to the temporary root;
- ``inputdataconfig.json`` from its ``InputDataConfig``, ``resourceconfig.json`` for one ``algo-1`` host,
  ``input/data/<channel>/`` holding the Parquet files SageMaker would have copied from S3;
- ``sagemaker_submit_directory`` is the adapter's S3 URI of ``code/sourcedir.tar.gz``, the tarball built by
  ``aws_ops.build_tarball(training_code_files())``; the toolkit downloads it with boto3 from moto's S3 (in the
  wrapper process, which is why the ``train`` command is called from a few lines of Python rather than as a
  console script) and unpacks it into ``code/``.

The toolkit then runs ``pip install -r requirements.txt`` of the sourcedir, as in the container. That file pins the
versions the container must install; here ``PIP_NO_INDEX=1`` makes that pip run offline and unable to change the
venv: it succeeds because the dev venv already holds exactly those versions (requirements-dev.txt installs them),
and it fails this test, rather than reinstalling anything, the day the two drift apart.
``SM_STUDIO_LOCAL_MODE=true`` is the toolkits' own switch for skipping the wait for the cluster's host names to
resolve in DNS (there is no ``algo-1`` here).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from autobert import aws_ops, layout
from autobert.adapters.sagemaker_training import SageMakerTrainingJobs
from autobert.config import REPO_ROOT, Settings
from autobert.ports import TrainingJobSpec

pytestmark = pytest.mark.slow

BUCKET = "autobert-bucket"
JOB = "autobert-20261201-120000-abcd"
# The container's `train` command, with moto standing in for S3 (the sourcedir download).
WRAPPER = """
import sys
import boto3
from moto import mock_aws

with mock_aws():
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=sys.argv[1])
    s3.put_object(Bucket=sys.argv[1], Key=sys.argv[2], Body=open(sys.argv[3], "rb").read())
    from sagemaker_training.cli.train import main
    main()
"""


def create_training_job(tiny_bert: Path, settings_update: dict | None = None, **overrides: str) -> dict:
    """The CreateTrainingJob request our adapter makes for a retraining run (spot on, so with CheckpointConfig)."""
    settings = Settings(mode="aws", bucket=BUCKET, sagemaker_role_arn="arn:aws:iam::123456789012:role/sm",
                        training_image_uri="pytorch-training:img", training_use_spot=True, **(settings_update or {}))
    # The hyperparameters as the workflow's StartTraining step passes them (workflow.steps.training_hyperparameters)
    hyperparameters = {"model-name": str(tiny_bert), "epochs": "2", "learning-rate": "0.001", "seed": "42",
                       "model-version": JOB, "progress": "false", "max-length": "32", "batch-size": "8",
                       "precision": "fp32", **overrides}
    spec = TrainingJobSpec(job_name=JOB, hyperparameters=hyperparameters,
                           channels={"train": f"s3://{BUCKET}/trainsets/d1/train/",
                                     "holdout": f"s3://{BUCKET}/holdout/h1/"},
                           output_uri=f"s3://{BUCKET}/models/", extra={"run_id": "r-1"})
    code_uri = f"s3://{BUCKET}/{layout.TRAINING_CODE}"
    return SageMakerTrainingJobs(client=None, settings=settings, code_uri=code_uri).request(spec)


def lay_out_opt_ml(root: Path, request: dict, data: Path) -> None:
    config = root / "input" / "config"
    config.mkdir(parents=True)
    hyperparameters = {k: v.replace("/opt/ml", str(root)) for k, v in request["HyperParameters"].items()}
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    channels = {}
    for channel in request["InputDataConfig"]:
        name = channel["ChannelName"]
        channels[name] = {"TrainingInputMode": request["AlgorithmSpecification"]["TrainingInputMode"],
                          "S3DistributionType": channel["DataSource"]["S3DataSource"]["S3DataDistributionType"],
                          "RecordWrapperType": "None"}
        shutil.copytree(data, root / "input" / "data" / name)
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    instance_type = request["ResourceConfig"]["InstanceType"]
    (config / "resourceconfig.json").write_text(json.dumps({
        "current_host": "algo-1", "hosts": ["algo-1"], "current_group_name": "homogeneousCluster",
        "current_instance_type": instance_type, "network_interface_name": "eth0",
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type,
                             "hosts": ["algo-1"]}]}))
    for folder in ("model", "output/data"):
        (root / folder).mkdir(parents=True)


def run_toolkit(root: Path, request: dict, tmp: Path) -> subprocess.CompletedProcess:
    tarball = tmp / "sourcedir.tar.gz"
    tarball.write_bytes(aws_ops.build_tarball(aws_ops.training_code_files()))
    code_uri = request["HyperParameters"]["sagemaker_submit_directory"]
    bucket, key = code_uri.removeprefix("s3://").split("/", 1)
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(root),
           "SAGEMAKER_TRAINING_MODULE": "sagemaker_pytorch_container.training:main",
           "TRAINING_JOB_NAME": request["TrainingJobName"], "SM_STUDIO_LOCAL_MODE": "true",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "SAGEMAKER_REGION": "us-east-1", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)  # train.py must find autobert in the unpacked sourcedir, as in the container
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # torchrun, as in the image
    return subprocess.run([sys.executable, "-c", WRAPPER, bucket, key, str(tarball)], capture_output=True, text=True,
                          timeout=400, env=env, cwd=tmp)


@pytest.fixture(scope="module")
def job(tiny_bert, small_dataset, tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("toolkit")
    root = tmp / "opt" / "ml"
    request = create_training_job(tiny_bert)
    lay_out_opt_ml(root, request, small_dataset)
    return root, request, run_toolkit(root, request, tmp)


def test_the_toolkit_runs_train_py_from_the_sourcedir_tarball_and_reports_success(job):
    root, _, result = job
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (root / "output" / "success").exists() and not (root / "output" / "failure").exists()
    # The toolkit unpacked our tarball and ran its train.py, importing the autobert copy beside it.
    assert (root / "code" / "train.py").read_bytes() == (REPO_ROOT / "training" / "train.py").read_bytes()
    assert "Installing dependencies from requirements.txt" in result.stdout + result.stderr


def test_the_hyperparameters_reach_train_py_as_the_api_delivered_them(job):
    root, request, result = job
    metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    hp = metrics["hyperparameters"]
    assert hp["epochs"] == 2 and hp["learning_rate"] == 0.001 and hp["batch_size"] == 8 and hp["max_length"] == 32
    assert hp["progress"] is False and hp["model_name"] == request["HyperParameters"]["model-name"]
    assert metrics["model_version"] == JOB
    assert hp["checkpoint_dir"] == str(root / "checkpoints")
    assert metrics["training"]["epochs_run"] == 2
    # Channels arrive as SM_CHANNEL_* from inputdataconfig.json: the holdout was scored.
    assert metrics["holdout"]["holdout_rows"] > 0


def test_the_model_folder_is_what_sagemaker_tars_into_model_tar_gz_with_the_serving_code(job, tmp_path):
    root, _, _ = job
    model = root / "model"
    assert {"model.safetensors", "config.json", "tokenizer.json", "labels.json", "autobert.json", "metrics.json",
            "holdout.json"} <= {p.name for p in model.iterdir()}
    assert (model / "linear" / "linear.safetensors").is_file()
    assert (model / "code" / "inference.py").read_bytes() == (REPO_ROOT / "inference" / "inference.py"
                                                                ).read_bytes()
    assert (model / "code" / "autobert" / "modeling.py").is_file()
    # SageMaker uploads /opt/ml/model as model.tar.gz (entries relative to the folder): the endpoint's repack of it
    # keeps every model file and puts the inference code under code/.
    artifact = tmp_path / "model.tar.gz"
    with tarfile.open(artifact, "w:gz") as tar:
        for path in sorted(model.rglob("*")):
            tar.add(path, arcname=path.relative_to(model).as_posix(), recursive=False)
    packed = aws_ops.repack_model(artifact.read_bytes(), aws_ops.inference_code_files())
    (tmp_path / "packed.tar.gz").write_bytes(packed)
    with tarfile.open(tmp_path / "packed.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"model.safetensors", "labels.json", "code/inference.py", "code/autobert/modeling.py"} <= names


def test_the_job_checkpoints_into_the_checkpoint_configs_local_path(job):
    root, request, _ = job
    assert request["CheckpointConfig"] == {"S3Uri": f"s3://{BUCKET}/models/{JOB}/checkpoints",
                                           "LocalPath": "/opt/ml/checkpoints"}
    assert request["HyperParameters"]["checkpoint-dir"] == request["CheckpointConfig"]["LocalPath"]
    state = json.loads((root / "checkpoints" / "epoch-0002" / "state.json").read_text())
    assert state["epoch"] == 2 and state["finished"] is True


def test_a_bad_hyperparameter_fails_the_job_with_our_one_line_message_as_failure_reason(tiny_bert, small_dataset,
                                                                                          tmp_path):
    root = tmp_path / "opt" / "ml"
    request = create_training_job(tiny_bert, **{"learning-rate": "5"})
    lay_out_opt_ml(root, request, small_dataset)
    result = run_toolkit(root, request, tmp_path)
    assert result.returncode != 0
    # SageMaker shows this file's content as the job's FailureReason.
    assert (root / "output" / "failure").read_text() == "--learning-rate must be in (0, 1), got 5.0"
    assert not (root / "output" / "success").exists()


def test_with_torch_distributed_the_toolkit_launches_train_py_under_torchrun_and_rank_0_writes_the_model(
        tiny_bert, small_dataset, tmp_path):
    """The PyTorch container's torch_distributed launcher (sagemaker-training's TorchDistributedRunner) on this
    CPU host: ``torchrun --nnodes 1 --nproc_per_node 2`` (processes per host: the instance's GPUs on SageMaker;
    here the toolkit's own override, ``sagemaker_mpi_num_of_processes_per_host``, gives 2 on a CPU)."""
    root = tmp_path / "opt" / "ml"
    request = create_training_job(tiny_bert, {"training_distributed": True},
                                  sagemaker_mpi_num_of_processes_per_host="2")
    assert request["HyperParameters"]["sagemaker_torch_distributed_enabled"] == "true"
    lay_out_opt_ml(root, request, small_dataset)
    result = run_toolkit(root, request, tmp_path)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "torchrun --nnodes 1 --nproc_per_node 2" in log
    metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    assert metrics["hyperparameters"]["epochs"] == 2 and metrics["training"]["epochs_run"] == 2
    assert log.count("autobert.train: epoch=2 ") == 1  # one report: rank 0's
    assert {"model.safetensors", "labels.json", "metrics.json", "holdout.json"} <= {p.name for p in
                                                                                   (root / "model").iterdir()}
    assert (root / "output" / "success").exists()

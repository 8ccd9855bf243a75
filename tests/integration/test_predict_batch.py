"""`autobert predict-batch INPUT OUTPUT`: the live model over a whole file, locally and as a SageMaker Batch Transform.

Locally the inference script's own hooks run here over the registered live model; on AWS the request a Batch
Transform job is created with is checked (Stubber), and the job itself is played by SageMaker's own serving toolkit
(``HandlerService``, as in the PyTorch serving container) over the input lines the job would send it, in mini-batches
of several lines (``BatchStrategy: MultiRecord``), its answers assembled one line per record (``AssembleWith: Line``).
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pandas as pd
import pytest
from botocore.stub import ANY, Stubber
from serving_helpers import LABELS, MAX_TEXT_CHARS, REPO, invoke, load_module, make_model_folder, serve

from autobert import cli
from autobert.adapters.local_store import LocalObjectStore
from autobert.adapters.s3_store import S3ObjectStore
from autobert.adapters.sagemaker_batch import SageMakerBatchTransform
from autobert.batch import BatchError, predict_batch, read_batch_input
from autobert.config import Settings
from autobert.modeling import TextClassifier
from autobert.workflow.registry import ModelRegistry

TEXTS = ["the shuttle reached orbit", "my car needs new brakes", "", "gun control laws", "x" * 250,
         "a rocket launch", "engine oil for the truck"]
BAD = {3: "text: must not be empty or whitespace", 5: "text: too long: 250 > 200 characters"}  # row -> message


def live_home(home: Path, *versions: str) -> Settings:
    """A stack home whose registry holds a model folder per version; the last one is live."""
    registry = ModelRegistry(LocalObjectStore(home / "bucket"))
    for version in versions:
        folder = make_model_folder(home / "models" / version, version)
        registry.register(version, status="candidate", model_uri=str(folder))
        registry.mark_live(version)
    return Settings(home=home, max_text_chars=MAX_TEXT_CHARS)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("AUTOBERT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AUTOBERT_MAX_TEXT_CHARS", str(MAX_TEXT_CHARS))
    live_home(tmp_path / "home", "v1")
    return tmp_path / "home"


def write_input(path: Path, texts=TEXTS, ids=True) -> Path:
    frame = pd.DataFrame({"text": texts, **({"id": [f"doc-{i}" for i in range(len(texts))]} if ids else {})})
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


def read_output(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected_labels(home: Path, version: str, texts: list[str]) -> list[str]:
    model = TextClassifier.load(home / "models" / version)
    return [model.labels[i] for i in model.predict_proba(texts).argmax(1)]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_every_row_gets_its_prediction_or_its_error_in_input_order_with_its_id(home, tmp_path, capsys, suffix):
    source = write_input(tmp_path / f"in{suffix}")
    out = tmp_path / "out.jsonl"
    assert cli.main(["predict-batch", str(source), str(out), "--quiet", "--top-k", "2"]) == 0
    lines = read_output(out)
    assert [line["row"] for line in lines] == list(range(1, len(TEXTS) + 1))
    assert [line["id"] for line in lines] == [f"doc-{i}" for i in range(len(TEXTS))]
    assert {line["row"]: line["error"] for line in lines if "error" in line} == BAD
    good = [line for line in lines if "error" not in line]
    texts = [TEXTS[line["row"] - 1] for line in good]
    assert [line["label"] for line in good] == expected_labels(home, "v1", texts)
    assert all(line["model_version"] == "v1" and len(line["top_k"]) == 2 and line["label"] in LABELS
               for line in good)
    report = json.loads(capsys.readouterr().out)
    assert (report["rows"], report["predicted"], report["errors"], report["skipped"]) == (7, 5, 2, 0)


def test_the_predictions_are_those_of_the_inference_script_that_serves_predict(home, tmp_path, monkeypatch):
    source = write_input(tmp_path / "in.jsonl", TEXTS[:2], ids=False)
    out = tmp_path / "out.jsonl"
    assert cli.main(["predict-batch", str(source), str(out), "--quiet"]) == 0
    script = load_module(REPO / "inference" / "inference.py", "inference_for_batch_test")
    served = script.predict_fn(script.input_fn(json.dumps({"instances": TEXTS[:2]}), "application/json"),
                               script.model_fn(str(home / "models" / "v1")))
    lines = read_output(out)
    assert [{k: v for k, v in line.items() if k not in ("row", "model_version")} for line in lines] == \
        served["predictions"]
    assert "id" not in lines[0]  # no id column: the row number alone


def test_a_second_run_resumes_after_the_rows_written_with_the_model_they_began_with(home, tmp_path, capsys):
    source = write_input(tmp_path / "in.jsonl")
    out = tmp_path / "out.jsonl"
    assert cli.main(["predict-batch", str(source), str(out), "--quiet"]) == 0
    complete = out.read_text()
    capsys.readouterr()
    # A run killed after two rows, in the middle of writing the third; meanwhile another model went live.
    first_two = "".join(complete.splitlines(keepends=True)[:2])
    out.write_text(first_two + complete.splitlines(keepends=True)[2][:9])
    live_home(home, "v2")
    assert cli.main(["predict-batch", str(source), str(out), "--quiet"]) == 0
    assert out.read_text() == complete  # the same lines, each once, all by v1
    report = json.loads(capsys.readouterr().out)
    # Rows 1-2 skipped; 4, 6 and 7 predicted (3 and 5 are errors).
    assert (report["skipped"], report["predicted"], report["model_version"]) == (2, 3, "v1")
    # A finished OUTPUT: nothing left to do.
    assert cli.main(["predict-batch", str(source), str(out), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == len(TEXTS)
    assert out.read_text() == complete


def test_a_new_output_uses_the_model_live_now(home, tmp_path):
    live_home(home, "v2")
    out = tmp_path / "out.jsonl"
    assert cli.main(["predict-batch", str(write_input(tmp_path / "in.jsonl", TEXTS[:1])), str(out), "--quiet"]) == 0
    assert read_output(out)[0]["model_version"] == "v2"


def written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: (write_input(d / "in.jsonl"), d / "other.jsonl", '{"row": 1, "id": "doc-9"}\n'),
     "other.jsonl: line 1 does not belong to row 1 of"),
    (lambda d: (write_input(d / "in.jsonl"), d / "other.jsonl", "not json\n"), "line 1 is not JSON"),
    (lambda d: (write_input(d / "in.txt"), d / "o.jsonl", None), "unsupported input file"),
    (lambda d: (d / "missing.jsonl", d / "o.jsonl", None), "missing.jsonl: no such file"),
    (lambda d: (written(d / "e.csv", ""), d / "o.jsonl", None), "e.csv: empty file"),
    (lambda d: (written(d / "c.csv", "body\nhello\n"), d / "o.jsonl", None),
     "no column 'text' (columns found: body); name yours with --text-column"),
])
def test_bad_files_exit_2_with_one_line(home, tmp_path, capsys, setup, message):
    source, out, existing = setup(tmp_path)
    if existing is not None:
        out.write_text(existing)
    assert cli.main(["predict-batch", str(source), str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_the_text_column_may_have_another_name(home, tmp_path):
    source = tmp_path / "in.csv"
    pd.DataFrame({"body": ["the shuttle reached orbit"], "ref": ["r1"]}).to_csv(source, index=False)
    out = tmp_path / "out.jsonl"
    assert cli.main(["predict-batch", str(source), str(out), "--text-column", "body", "--id-column", "ref",
                     "--quiet"]) == 0
    [line] = read_output(out)
    assert line["id"] == "r1" and line["label"] in LABELS


def test_without_a_live_model_it_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUTOBERT_HOME", str(tmp_path / "empty"))
    assert cli.main(["predict-batch", str(write_input(tmp_path / "in.jsonl")), str(tmp_path / "o.jsonl"),
                     "--quiet"]) == 2
    assert "no model is live yet" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ AWS: Batch Transform
REGION = "eu-west-1"
BUCKET = "autobert-batch-test"


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    """The serving container of the live model (SageMaker's own toolkit on the repacked artifact)."""
    yield from serve(make_model_folder(tmp_path_factory.mktemp("trained") / "model", "v7"), tmp_path_factory)


def play_transform_job(s3, container, lines_per_request: int = 2):
    """What a Batch Transform job does with CreateTransformJob's request: every object under the input prefix (one
    per instance), split by line, ``lines_per_request`` lines per request (MultiRecord), the answers assembled one
    line per record into ``<object>.out`` under the output path."""

    def run(parsed, model, params=None, **_):
        request = params or {}
        source = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        bucket, prefix = source.removeprefix("s3://").split("/", 1)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
        assert keys, f"no input under {source}"
        for key in keys:
            lines = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines(keepends=True)
            out = []
            for start in range(0, len(lines), lines_per_request):
                status, content_type, body = invoke(container, "".join(lines[start : start + lines_per_request])
                                                    .encode(), request["TransformInput"]["ContentType"],
                                                    request["TransformOutput"]["Accept"])
                assert (status, content_type) == (200, "application/jsonlines"), body
                out.append(body if body.endswith("\n") else body + "\n")
            output = request["TransformOutput"]["S3OutputPath"].removeprefix(f"s3://{bucket}/")
            s3.put_object(Bucket=bucket, Key=output + key.removeprefix(prefix) + ".out", Body="".join(out).encode())

    return run


@pytest.fixture
def aws_batch(moto_account, container):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    store = S3ObjectStore(s3, BUCKET)
    registry = ModelRegistry(store)
    registry.register("v7", status="candidate", model_uri=f"s3://{BUCKET}/models/v7/model.tar.gz")
    registry.mark_live("v7")
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    settings = Settings(mode="aws", bucket=BUCKET, region=REGION, endpoint_name="autobert-prod",
                        max_text_chars=MAX_TEXT_CHARS, batch_instance_type="ml.c5.2xlarge", batch_instance_count=2)
    calls: list[dict] = []
    sagemaker.meta.events.register("provide-client-params.sagemaker.CreateTransformJob",
                                   lambda params, **_: calls.append(params))
    job = play_transform_job(s3, container)
    sagemaker.meta.events.register("after-call.sagemaker.CreateTransformJob",
                                   lambda **kw: job(**kw, params=calls[-1]))
    return s3, store, sagemaker, settings, calls


def test_on_aws_a_batch_transform_job_runs_the_live_model_over_the_lines_and_its_output_is_joined(
        aws_batch, tmp_path):
    s3, store, sagemaker, settings, calls = aws_batch
    source = read_batch_input(write_input(tmp_path / "in.jsonl"), settings)
    stubber = Stubber(sagemaker)
    expected = {
        "TransformJobName": ANY, "ModelName": "autobert-prod-v7", "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 1, "MaxConcurrentTransforms": 2,
        # A 1 MB request is hundreds of documents: the model server's 60 s default would fail it on a CPU instance.
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 3600, "InvocationsMaxRetries": 1},
        "Environment": {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "3600"},
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": ANY}},
                           "ContentType": "application/jsonlines", "CompressionType": "None", "SplitType": "Line"},
        "TransformOutput": {"S3OutputPath": ANY, "Accept": "application/jsonlines", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 2},
    }
    stubber.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:eu-west-1:1:transform-job/x"},
                         expected)
    done = {"TransformJobName": "x", "TransformJobArn": "arn:aws:sagemaker:eu-west-1:1:transform-job/x",
            "TransformJobStatus": "Completed", "ModelName": "autobert-prod-v7",
            "TransformInput": expected["TransformInput"] | {"DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}},
            "TransformResources": {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 2},
            "CreationTime": "2026-12-03T00:00:00Z"}
    stubber.add_response("describe_transform_job", done, {"TransformJobName": ANY})  # the waiter
    stubber.add_response("describe_transform_job", done, {"TransformJobName": ANY})
    out = tmp_path / "out.jsonl"
    with stubber:
        report = predict_batch(source, out, SageMakerBatchTransform(sagemaker, store, settings, poll_seconds=0),
                               ModelRegistry(store))
        stubber.assert_no_pending_responses()
    [request] = calls
    job = request["TransformJobName"]
    assert request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/batch/{job}/input/"
    assert request["TransformOutput"]["S3OutputPath"] == f"s3://{BUCKET}/batch/{job}/output/"
    # Only the rows the API would accept were sent, in one part per instance (Batch Transform gives each instance
    # whole objects); the job is recorded in the bucket.
    parts = [s3.get_object(Bucket=BUCKET, Key=f"batch/{job}/input/part-{k:05d}.jsonl")["Body"].read().decode()
             .splitlines() for k in range(2)]
    assert [len(part) for part in parts] == [3, 2]
    assert [json.loads(line)["text"] for line in parts[0] + parts[1]] == \
        [t for i, t in enumerate(TEXTS, 1) if i not in BAD]
    record = store.get_json(f"batch/{job}/job.json")
    assert (record["model_version"], record["rows"], record["parts"], record["request"]["ModelName"]) == \
        ("v7", 5, 2, "autobert-prod-v7")
    lines = read_output(out)
    assert [line["row"] for line in lines] == list(range(1, len(TEXTS) + 1))
    assert {line["row"]: line["error"] for line in lines if "error" in line} == BAD
    assert all(line["label"] in LABELS and line["model_version"] == "v7" for line in lines if "error" not in line)
    assert (report.predicted, report.errors) == (5, 2)


def test_on_aws_a_failed_job_is_one_line_with_its_reason(aws_batch, tmp_path):
    s3, store, sagemaker, settings, _ = aws_batch
    source = read_batch_input(write_input(tmp_path / "in.jsonl", TEXTS[:2]), settings)
    stubber = Stubber(sagemaker)
    stubber.add_response("create_transform_job", {"TransformJobArn": "arn:aws:sagemaker:eu-west-1:1:transform-job/x"})
    failed = {"TransformJobName": "x", "TransformJobArn": "arn:aws:sagemaker:eu-west-1:1:transform-job/x",
              "TransformJobStatus": "Failed", "FailureReason": "ClientError: out of memory",
              "ModelName": "m", "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                                                   "S3Uri": "s3://b/k"}}},
              "TransformResources": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
              "CreationTime": "2026-12-03T00:00:00Z"}
    stubber.add_response("describe_transform_job", failed)
    stubber.add_response("describe_transform_job", failed)
    with stubber, pytest.raises(BatchError, match="Failed: ClientError: out of memory"):
        predict_batch(source, tmp_path / "out.jsonl", SageMakerBatchTransform(sagemaker, store, settings,
                                                                               poll_seconds=0), ModelRegistry(store))
    assert not (tmp_path / "out.jsonl").exists() or (tmp_path / "out.jsonl").read_text() == ""


def test_on_aws_a_rerun_after_a_failed_job_starts_a_job_of_its_own(aws_batch, tmp_path):
    """SageMaker never reuses a job name: the input's job that Failed stays Failed, so the rerun (same rows, same
    version, same digest) starts the next name instead of following the dead one."""
    s3, store, sagemaker, settings, calls = aws_batch
    source = read_batch_input(write_input(tmp_path / "in.jsonl", TEXTS[:2]), settings)
    stubber = Stubber(sagemaker)
    stubber.add_client_error("create_transform_job", "ResourceInUse", "Job name must be unique within an AWS account "
                             "and region, and a job with this name already exists")
    common = {"TransformJobArn": "arn:aws:sagemaker:eu-west-1:1:transform-job/x", "ModelName": "autobert-prod-v7",
              "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/k"}}},
              "TransformResources": {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 2},
              "CreationTime": "2026-12-03T00:00:00Z"}
    stubber.add_response("describe_transform_job", {**common, "TransformJobName": "a", "TransformJobStatus": "Failed",
                                                    "FailureReason": "ClientError: out of memory"})
    stubber.add_response("create_transform_job", {"TransformJobArn": common["TransformJobArn"]})
    done = {**common, "TransformJobName": "b", "TransformJobStatus": "Completed"}
    stubber.add_response("describe_transform_job", done)  # the waiter
    stubber.add_response("describe_transform_job", done)
    with stubber:
        report = predict_batch(source, tmp_path / "out.jsonl", SageMakerBatchTransform(sagemaker, store, settings,
                                                                                        poll_seconds=0),
                               ModelRegistry(store))
        stubber.assert_no_pending_responses()
    first, second = (call["TransformJobName"] for call in calls)
    assert second == first + "-2"
    assert store.get_json(f"batch/{second}/job.json")["job"] == second
    assert report.predicted == 2 and all("label" in line for line in read_output(tmp_path / "out.jsonl"))


def test_the_container_answers_json_lines_one_prediction_per_line(container):
    body = "".join(json.dumps({"text": t}) + "\n" for t in ["the shuttle", "my car", "guns"]).encode()
    status, content_type, text = invoke(container, body, "application/jsonlines", "application/jsonlines")
    assert (status, content_type) == (200, "application/jsonlines")
    predictions = [json.loads(line) for line in text.splitlines()]
    assert len(predictions) == 3 and all(p["label"] in LABELS for p in predictions)
    status, _, text = invoke(container, b'{"text": "ok"}\n{"text": ""}\n', "application/jsonlines",
                             "application/jsonlines")
    assert status == 422 and text.startswith("line 2: text: must not be empty or whitespace")

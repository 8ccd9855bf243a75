"""The tuning search space, budgets, metric regexes and the SageMaker request/state shapes (no I/O)."""

from __future__ import annotations

import math

import optuna
import pytest

from autobert.cli import main
from autobert.config import reset_settings
from autobert.contracts import METRIC_DEFINITIONS, OBJECTIVE_METRIC
from autobert.tuning import SearchSpace, TuningConfigError, parse_epoch, parse_metrics
from autobert.tuning.sagemaker import TuningJobConfig, build_request, state_from_description
from autobert.tuning.space import format_value, validate_budget

LINE = ("2026-11-25 10:58:02,036 INFO autobert.train: epoch=3 train_loss=1.0984 val_accuracy=0.3333 "
        "val_macro_f1=0.1667 samples_per_second=38.73")


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOBERT_HOME", str(tmp_path / "home"))
    reset_settings()
    yield
    reset_settings()


# ------------------------------------------------------------------------------------------------------ space
def test_the_default_space_covers_the_six_hyperparameters_of_the_issue():
    space = SearchSpace.default()
    assert set(space.names) == {"learning-rate", "batch-size", "epochs", "max-length", "warmup-ratio",
                                "weight-decay"}
    assert SearchSpace.from_dict(space.to_dict()) == space


def test_sagemaker_parameter_ranges_carry_string_bounds_and_scaling():
    ranges = SearchSpace.default().parameter_ranges()
    lr = next(r for r in ranges["ContinuousParameterRanges"] if r["Name"] == "learning-rate")
    assert lr == {"Name": "learning-rate", "MinValue": "1e-05", "MaxValue": "0.0003", "ScalingType": "Logarithmic"}
    assert {"Name": "epochs", "MinValue": "1", "MaxValue": "4", "ScalingType": "Linear"} in \
        ranges["IntegerParameterRanges"]
    assert {"Name": "batch-size", "Values": ["8", "16", "32"]} in ranges["CategoricalParameterRanges"]


@pytest.mark.parametrize(("spec", "message"), [
    ({}, "search space is empty"),
    (None, "search space is empty"),
    ({"learning-rate": {"low": 0.1, "high": 0.01}}, "inverted range"),
    ({"warmup-ratio": {"low": 0.1, "high": 0.1}}, "empty range"),
    ({"learning-rate": {"low": 0.0, "high": 0.1, "log": True}}, "log-scaled range needs low > 0"),
    ({"learning-rate": {"low": 1e-5, "high": 2.0}}, "outside what the training script accepts"),
    ({"max-length": {"low": 4, "high": 64}}, "outside what the training script accepts"),
    ({"epochs": {"low": 1.5, "high": 3}}, "whole-number bounds"),
    ({"learning-rate": {"low": 1e-5}}, "needs both low and high"),
    ({"learning-rate": {"low": "a", "high": 1e-3}}, "finite numbers"),
    ({"learning-rate": {"low": 1e-5, "high": math.inf}}, "finite numbers"),
    ({"dropout": {"low": 0.0, "high": 0.1}}, "not a tunable training hyperparameter"),
    ({"batch-size": {"choices": []}}, "non-empty list"),
    ({"batch-size": {"choices": [8, 8]}}, "duplicate choices"),
    ({"batch-size": {"choices": [8, 0]}}, "outside what the training script accepts"),
    ({"truncation": {"choices": ["middle"]}}, "not accepted"),
    ({"truncation": {"low": 0, "high": 1}}, "give choices"),
    ({"learning-rate": {"low": 1e-5, "high": 1e-3, "step": 2}}, "unknown field"),
    ({"learning-rate": [1e-5, 1e-3]}, "expected an object"),
])
def test_bad_spaces_are_refused_with_the_parameter_named(spec, message):
    with pytest.raises(TuningConfigError, match=message):
        SearchSpace.from_dict(spec)


def test_a_hyperparameter_cannot_be_both_searched_and_fixed():
    with pytest.raises(TuningConfigError, match="learning-rate both searched and fixed"):
        SearchSpace.default().check_static({"learning-rate": "1e-4", "seed": "42"})


@pytest.mark.parametrize(("trials", "timeout"), [(0, 60), (-1, 60), (1.5, 60), (True, 60), (3, 0), (3, -5),
                                                 (3, math.nan), (3, math.inf), (3, "60")])
def test_bad_budgets_are_refused(trials, timeout):
    with pytest.raises(TuningConfigError, match="--trials|--timeout"):
        validate_budget(trials, timeout)


def test_a_saved_default_becomes_a_typed_point_inside_the_space_and_outside_values_are_dropped():
    space = SearchSpace.default()
    point = space.point({"learning-rate": "0.0001", "batch-size": "16", "epochs": "3", "max-length": "100",
                         "warmup-ratio": "0.5", "weight-decay": "0.01", "seed": "42"})
    assert point == {"learning-rate": 1e-4, "batch-size": 16, "epochs": 3, "weight-decay": 0.01}


def test_optuna_suggestions_stay_in_the_space_and_come_back_as_script_arguments():
    space = SearchSpace.default()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        params = space.suggest(study.ask())
        assert 1e-5 <= float(params["learning-rate"]) <= 3e-4
        assert params["batch-size"] in {"8", "16", "32"} and params["max-length"] in {"64", "128", "256"}
        assert params["epochs"] in {"1", "2", "3", "4"}
        assert 0 <= float(params["warmup-ratio"]) <= 0.2 and 0 <= float(params["weight-decay"]) <= 0.1


def test_values_are_formatted_as_the_training_script_parses_them():
    assert [format_value(v) for v in (True, False, 16, 0.0001, 3.0e-5)] == ["true", "false", "16", "0.0001", "3e-05"]


# ---------------------------------------------------------------------------------------------------- metrics
def test_the_epoch_line_yields_every_metric_and_the_objective():
    assert parse_metrics(LINE) == {"epoch": 3, "train:loss": 1.0984, "validation:accuracy": 0.3333,
                                   OBJECTIVE_METRIC: 0.1667, "train:samples_per_second": 38.73}
    assert parse_epoch(LINE) == (3, 0.1667)


@pytest.mark.parametrize("line", [
    "2026-11-25 10:58:09,000 INFO autobert.train: done: model=/m test_accuracy=0.5 test_macro_f1=0.4 wall_time=3s",
    "2026-11-25 10:58:01,000 INFO autobert.train: documents: train=96 validation=12 test=12 labels=3",
    "epoch 1/2: 100%|##########| 24/24 [00:01<00:00, loss=1.1, samples_per_s=30.1]",
    "2026-11-25 10:58:02,036 INFO autobert.train: early stopping: no better validation macro-F1 for 2 epoch(s)",
])
def test_other_log_lines_match_no_metric(line):
    assert parse_metrics(line) == {}


def test_an_epoch_without_validation_reports_no_objective():
    line = LINE.replace("val_accuracy=0.3333 val_macro_f1=0.1667", "val_accuracy=nan val_macro_f1=nan")
    assert parse_epoch(line) is None
    assert "train:loss" in parse_metrics(line)


def test_metric_definitions_fit_sagemaker_limits():
    names = [d["Name"] for d in METRIC_DEFINITIONS]
    assert OBJECTIVE_METRIC in names and len(names) == len(set(names))
    assert all(1 <= len(d["Name"]) <= 255 and 1 <= len(d["Regex"]) <= 500 for d in METRIC_DEFINITIONS)


# -------------------------------------------------------------------------------------------------- SageMaker
def config(**overrides) -> TuningJobConfig:
    values = dict(job_name="abt-20261125-1100", role_arn="arn:aws:iam::123456789012:role/sm",
                  image_uri="763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3-gpu-py311",
                  channels={"train": "s3://b/datasets/v1/"}, output_uri="s3://b/models/",
                  static_hyperparameters={"model-name": "bert-base-uncased"})
    return TuningJobConfig(**{**values, **overrides})


def test_the_request_maximizes_validation_macro_f1_with_early_stopping_and_spot():
    request = build_request(config(max_jobs=8, max_parallel_jobs=2), SearchSpace.default())
    tuning = request["HyperParameterTuningJobConfig"]
    assert tuning["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:macro_f1"}
    assert tuning["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2}
    assert tuning["TrainingJobEarlyStoppingType"] == "Auto"
    definition = request["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"] == {"MaxRuntimeInSeconds": 3 * 3600, "MaxWaitTimeInSeconds": 6 * 3600}
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS


def test_without_spot_there_is_no_wait_time():
    definition = build_request(config(use_spot=False), SearchSpace.default())["TrainingJobDefinition"]
    assert definition["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in definition["StoppingCondition"]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"max_jobs": 0}, "max jobs"),
    ({"max_jobs": 2, "max_parallel_jobs": 3}, "max parallel jobs"),
    ({"max_parallel_jobs": 0}, "max parallel jobs"),
    ({"job_name": "x" * 33}, "tuning job name"),
    ({"job_name": "bad_name"}, "tuning job name"),
    ({"max_wait_seconds": 60, "max_run_seconds": 3600}, "max wait"),
    ({"channels": {"train": "/local/folder"}}, "s3:// URI"),
    ({"channels": {"validation": "s3://b/v/"}}, "'train' channel"),
    ({"static_hyperparameters": {"learning-rate": "1e-4"}}, "both searched and fixed"),
])
def test_bad_tuning_job_parameters_are_refused(overrides, message):
    with pytest.raises(TuningConfigError, match=message):
        build_request(config(**overrides), SearchSpace.default())


def description(status: str, best: str | None = None, **extra) -> dict:
    d = {"HyperParameterTuningJobName": "abt-1", "HyperParameterTuningJobStatus": status,
         "TrainingJobDefinition": {"OutputDataConfig": {"S3OutputPath": "s3://b/models/"}},
         "TrainingJobStatusCounters": {"Completed": 3, "InProgress": 1, "NonRetryableError": 0,
                                       "RetryableError": 0, "Stopped": 1}, **extra}
    if best:
        d["BestTrainingJob"] = {"TrainingJobName": best, "TunedHyperParameters": {"learning-rate": "3e-05"},
                                "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": OBJECTIVE_METRIC,
                                                                                "Value": 0.81}}
    return d


def test_a_completed_tuning_job_points_at_its_best_training_jobs_artifacts():
    state = state_from_description(description("Completed", best="abt-1-003-a1b2c3d4"))
    assert state.status == "Completed" and state.best_objective == 0.81
    assert state.model_uri == "s3://b/models/abt-1-003-a1b2c3d4/output/model.tar.gz"
    assert state.output_uri == "s3://b/models/abt-1-003-a1b2c3d4/output/output.tar.gz"
    assert state.best_hyperparameters == {"learning-rate": "3e-05"}


@pytest.mark.parametrize(("status", "best", "expected"), [
    ("InProgress", "abt-1-001", "InProgress"), ("Stopping", None, "InProgress"), ("Failed", None, "Failed"),
    ("Stopped", "abt-1-001", "Completed"), ("Stopped", None, "Stopped"), ("Completed", None, "Failed"),
])
def test_tuning_job_statuses_map_onto_the_training_wait_loops_vocabulary(status, best, expected):
    state = state_from_description(description(status, best=best, FailureReason="boom" if status == "Failed"
                                                else None))
    assert state.status == expected
    if expected == "Failed":
        assert state.failure_reason


# -------------------------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize(("argv", "message"), [
    (["tune", "--trials", "0"], "--trials must be an integer >= 1"),
    (["tune", "--trials", "three"], "--trials must be a number"),
    (["tune", "--trials", "3", "--timeout", "0"], "--timeout must be a number of seconds > 0"),
    (["tune", "--trials", "3", "--timeout", "-10"], "--timeout must be a number of seconds > 0"),
    (["tune", "--set", "max-length"], "expected KEY=VALUE"),
])
def test_the_cli_refuses_bad_budgets_with_exit_2_and_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("autobert: error:")


@pytest.mark.parametrize(("space", "message"), [
    ("{}", "search space is empty"),
    ('{"learning-rate": {"low": 0.01, "high": 0.001}}', "inverted range"),
])
def test_the_cli_refuses_an_empty_or_inverted_space_from_settings(space, message, monkeypatch, capsys):
    monkeypatch.setenv("AUTOBERT_TUNING_SPACE", space)
    reset_settings()
    assert main(["tune", "--trials", "2", "--timeout", "60"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]

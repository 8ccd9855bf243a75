"""Helpers for the serving tests (inference script, endpoint, handlers, local API): tiny model folders, events."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
LABELS = ["rec.autos", "sci.space", "talk.politics.guns"]


def make_model_folder(folder: Path, version: str, labels: list[str] | None = None, max_length: int = 32) -> Path:
    """A model folder as training/train.py writes it, on the tiny random BERT (untrained: scores are near-uniform)."""
    from conftest import make_tiny_bert

    from autobert.data import write_labels
    from autobert.modeling import ModelMeta

    labels = labels or LABELS
    make_tiny_bert(folder, num_labels=len(labels))
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): label for i, label in enumerate(labels)}
    config["label2id"] = {label: i for i, label in enumerate(labels)}
    (folder / "config.json").write_text(json.dumps(config))
    write_labels(labels, folder / "labels.json")
    ModelMeta(model_version=version, base_model="tiny", max_length=max_length).save(folder)
    return folder


def make_linear_model_folder(folder: Path, version: str, labels: list[str] | None = None) -> Path:
    """A linear-only model folder (kind "linear", as ``train.py --model-kind linear`` writes it): no encoder, the
    TF-IDF linear model fit on a few texts per label."""
    import numpy as np

    from autobert.linear import BASELINE_FEATURES, LinearTextModel
    from autobert.modeling import ModelMeta, save_model_folder

    labels = labels or LABELS
    texts = [f"{label.replace('.', ' ')} text number {i}" for label in labels for i in range(3)]
    y = np.repeat(np.arange(len(labels)), 3)
    linear = LinearTextModel.fit(texts, y, len(labels), features=BASELINE_FEATURES)  # as train.py fits this kind
    meta = ModelMeta(model_version=version, base_model="tfidf-linear-svm", kind="linear", fusion_weight=1.0,
                     fusion_temperature=5.0)
    save_model_folder(folder, None, None, labels, meta, linear)
    return folder


def load_module(path: Path, name: str) -> ModuleType:
    """Import a file as a fresh module (a handler's cold start), after the test set its environment."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as a normal import: type hints resolve against the module
    spec.loader.exec_module(module)
    return module


def rest_event(method: str, path: str, body: str | dict | None = None, headers: dict | None = None) -> dict:
    """An API Gateway REST (v1) proxy event."""
    if isinstance(body, dict):
        body = json.dumps(body)
    headers = {"content-type": "application/json", **(headers or {})}
    return {
        "resource": path, "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None, "body": body, "isBase64Encoded": False,
        "requestContext": {"resourcePath": path, "httpMethod": method, "path": f"/dev{path}", "stage": "dev",
                           "requestId": "test-request", "accountId": "123456789012", "apiId": "test",
                           "identity": {"sourceIp": "127.0.0.1"}},
    }


def set_env(monkeypatch, **values) -> None:
    """Set AUTOBERT_* variables and make get_settings() read them again."""
    from autobert.config import reset_settings

    for name, value in values.items():
        monkeypatch.setenv(f"AUTOBERT_{name.upper()}", str(value))
    reset_settings()


class OnLog(logging.Handler):
    """While entered: ``action(message)`` runs, in the logging thread, for each INFO+ record of ``logger`` whose
    message starts with ``prefix``; ``seen`` is set after the first. The endpoint's log is its own account of where
    a swap is ("loading model v2 from ...", "now serving v2", "freed model v1"): tests wait on it, not on the clock."""

    def __init__(self, logger: str, prefix: str, action=None):
        super().__init__(logging.INFO)
        self.logger, self.prefix, self.action = logging.getLogger(logger), prefix, action
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(self.prefix):
            if self.action is not None:
                self.action(message)
            self.seen.set()

    def __enter__(self) -> OnLog:
        self._level = self.logger.level
        if not self.logger.isEnabledFor(logging.INFO):
            self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)


class EndpointThread:
    """The local endpoint server in this process (a thread), on a free port (or ``port``)."""

    def __init__(self, settings=None, port: int = 0):
        from autobert.config import Settings
        from autobert.endpoint_server import make_server

        self.server = make_server(settings or Settings(), host="127.0.0.1", port=port).start()
        self.url = self.server.url

    def close(self) -> None:
        self.server.stop()




def serving_endpoint(folder: Path, version: str = "v1") -> EndpointThread:
    """An in-process local endpoint already serving a tiny model folder made under ``folder`` as ``version``."""
    import requests

    server = EndpointThread()
    model = make_model_folder(folder / version / "model", version)
    assert requests.post(f"{server.url}/admin/model", json={"version": version, "model_uri": str(model)},
                         timeout=60).status_code == 200
    return server


# ------------------------------------------------- the model artifact in SageMaker's PyTorch serving container's place
MAX_BATCH = 4  # the serving container's AUTOBERT_MAX_BATCH / AUTOBERT_MAX_TEXT_CHARS in ``serve``
MAX_TEXT_CHARS = 200


class TorchServeContext:
    """What TorchServe's ``ts.context.Context`` offers the handler: system properties, the request's headers through
    ``request_processor[0].get_request_properties()``, and the response status and content type it sets."""

    model_name = "model"

    class RequestProcessor:
        def __init__(self, headers: dict):
            self.headers, self.status, self.phrase = headers, 200, None

        def get_request_properties(self) -> dict:
            return self.headers

        def report_status(self, code, reason_phrase=None):
            self.status, self.phrase = code, reason_phrase

    def __init__(self, model_dir, headers: dict | None = None):
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None}
        self.request_processor = [self.RequestProcessor(headers or {})]
        self.content_types: dict[int, str] = {}

    def set_response_status(self, code=200, phrase="", idx=0):
        self.request_processor[idx].report_status(code, phrase)

    def set_response_content_type(self, idx, value):
        self.content_types[idx] = value


def model_tar_gz(folder) -> bytes:
    """What SageMaker uploads at the end of a training job: /opt/ml/model's files at the archive root."""
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    return raw.getvalue()


def serve(folder, tmp_path_factory):
    """The toolkit's handler service, initialised on ``folder`` repacked as ``autobert aws bootstrap`` deploys it and
    unpacked into /opt/ml/model's place; yields ``(service, model_dir)``."""
    import io
    import os
    import tarfile

    import pytest
    from sagemaker_pytorch_serving_container.handler_service import HandlerService

    from autobert.aws_ops import inference_code_files, repack_model

    packed = repack_model(model_tar_gz(folder), inference_code_files(REPO))
    model_dir = tmp_path_factory.mktemp("opt-ml") / "model"
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        tar.extractall(model_dir, filter="data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SAGEMAKER_PROGRAM", "inference.py")  # what CreateModel's Environment sets (sagemaker_deploy)
        mp.setenv("AUTOBERT_MAX_BATCH", str(MAX_BATCH))
        mp.setenv("AUTOBERT_MAX_TEXT_CHARS", str(MAX_TEXT_CHARS))
        # TorchServe starts its worker with code/ on PYTHONPATH (the toolkit's torchserve._set_python_path)
        mp.syspath_prepend(str(model_dir / "code"))
        mp.delitem(sys.modules, "inference", raising=False)
        # initialize() prepends code/ to os.environ["PYTHONPATH"]: restored with the rest when the module is done
        mp.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        service = HandlerService()
        service.initialize(TorchServeContext(model_dir))
        yield service, model_dir
        sys.modules.pop("inference", None)


def invoke(served, body: bytes, content_type: str = "application/json", accept: str = "application/json"):
    """One request through ``HandlerService.handle``: (status, response content type, body as text)."""
    service, model_dir = served
    context = TorchServeContext(model_dir, {"Content-Type": content_type, "Accept": accept})
    [answer] = service.handle([{"body": bytearray(body)}], context)
    text = answer.decode() if isinstance(answer, bytes | bytearray) else answer
    return context.request_processor[0].status, context.content_types.get(0), text

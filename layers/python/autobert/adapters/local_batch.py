"""Bulk predictions on this machine: the inference script's own hooks over a registered model, in batches.

The script is imported by path (``inference/inference.py``, as the local endpoint and SageMaker's container import
it), its ``model_fn`` loads the model folder (or ``model.tar.gz``) the registry records for the version, and each
batch of texts goes through its ``predict_fn``: the predictions are those ``/predict`` gives for the same model.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autobert.batch import BatchError
from autobert.endpoint_server import load_script, resolve_model_uri
from autobert.workflow.errors import UnknownModelVersion
from autobert.workflow.registry import ModelRegistry


class LocalBatchPredictor:
    def __init__(self, registry: ModelRegistry, script: Path, batch_size: int = 256):
        self.registry = registry
        self.script = script
        self.batch_size = batch_size

    def predict(self, texts: list[str], version: str, top_k: int | None) -> Iterator[list[dict[str, Any]]]:
        try:
            record = self.registry.get(version)
        except UnknownModelVersion:
            raise BatchError(f"model {version} is not in the registry (OUTPUT was begun with it); "
                             "choose another OUTPUT") from None
        folder, scratch = resolve_model_uri(record["model_uri"])
        try:
            script = load_script(self.script)
            model = script.model_fn(str(folder))
            for start in range(0, len(texts), self.batch_size):
                data = {"texts": texts[start : start + self.batch_size], "top_k": top_k, "single": False}
                yield script.predict_fn(data, model)["predictions"]
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)

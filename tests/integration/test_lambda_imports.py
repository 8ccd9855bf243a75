"""Every Lambda handler imports with exactly the packages its deployment gives it.

The packaged template says which layers each function has; a child interpreter then imports the handler with every
third-party module outside the python3.12 Lambda runtime and those layers blocked. A handler that (even indirectly)
imports torch, transformers or pandas without the pandas layer would fail at cold start on AWS, and fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from osls_package import REPO, package, requires_osls

pytestmark = [requires_osls, pytest.mark.slow]

# Top-level modules of the python3.12 Lambda runtime beside the standard library (boto3 and its dependencies).
RUNTIME = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}
# aws-lambda-powertools[all], as its public layer is built (pip install -t; boto3 and its dependencies removed).
POWERTOOLS = {"aws_lambda_powertools", "pydantic", "pydantic_core", "pydantic_settings", "dotenv", "typing_extensions",
              "typing_inspection", "annotated_types", "aws_xray_sdk", "wrapt", "fastjsonschema", "jsonpath_ng",
              "aws_encryption_sdk", "cryptography", "cffi", "_cffi_backend", "attr", "attrs", "jwt", "pycparser"}
# AWS SDK for pandas (awswrangler) layer.
PANDAS = {"awswrangler", "pandas", "numpy", "pyarrow", "pytz", "tzdata", "packaging"}
DOMAIN = {"autobert"}

# Handlers known to fail on AWS today, with the cause; remove an entry once its handler imports cleanly. (Empty since
# the step handlers stopped importing autobert.modeling.)
KNOWN_IMPORT_BUGS: dict[str, str] = {}

CHILD = r"""
import importlib, importlib.abc, json, sys, traceback
allowed = set(json.loads(sys.argv[1]))
class LambdaEnvironment(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top in allowed or top.startswith("_"):
            return None
        raise ModuleNotFoundError(f"No module named {top!r} in the Lambda runtime or this function's layers",
                                  name=top)
sys.meta_path.insert(0, LambdaEnvironment())
try:
    importlib.import_module(sys.argv[2])
    print(json.dumps({"ok": True}))
except Exception as exc:
    print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}",
                      "where": traceback.format_exc().splitlines()[-6:]}))
"""


def layer_modules(layers: list) -> set[str]:
    allowed = set(RUNTIME)
    for layer in layers:
        text = json.dumps(layer)
        allowed |= (DOMAIN if "DomainLambdaLayer" in text else POWERTOOLS if "powertools" in text
                    else PANDAS if "AWSSDKPandas" in text else set())
    return allowed


@pytest.fixture(scope="module")
def lambda_functions() -> dict[str, dict]:
    resources = package().template["Resources"]
    return {r["Properties"]["Handler"].split("/")[1].split(".")[0]: r["Properties"] for r in resources.values()
            if r["Type"] == "AWS::Lambda::Function"}


def import_in_lambda_environment(module: str, allowed: set[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBERT_")}
    env.update({"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                "AWS_LAMBDA_FUNCTION_NAME": "autobert-test", "AUTOBERT_MODE": "aws",
                "AUTOBERT_BUCKET": "autobert-test-bucket", "AUTOBERT_REGION": "eu-west-1"})
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(sorted(allowed | {"functions"})), module],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("handler", ["predict", "feedback", "retrain", "merge_data", "start_training",
                                     "start_tuning", "check_training", "evaluate", "update_endpoint",
                                     "check_endpoint", "record_failure"])
def test_the_handler_imports_with_only_the_runtime_and_its_layers(lambda_functions, handler):
    allowed = layer_modules(lambda_functions[handler]["Layers"])
    result = import_in_lambda_environment(f"functions.{handler}", allowed)
    if handler in KNOWN_IMPORT_BUGS:
        assert not result["ok"], f"functions/{handler}.py imports cleanly now: remove it from KNOWN_IMPORT_BUGS"
        if re.search(r"No module named '(torch|transformers)'", result["error"]):
            pytest.xfail(KNOWN_IMPORT_BUGS[handler])
    assert result["ok"], f"{result['error']}\n" + "\n".join(result["where"])


def test_the_check_really_blocks_what_a_function_lacks(lambda_functions):
    allowed = layer_modules(lambda_functions["predict"]["Layers"])
    assert "pandas" not in allowed
    result = import_in_lambda_environment("autobert.workflow.merge", allowed)
    assert not result["ok"] and re.search(r"No module named '(numpy|pandas)'", result["error"])

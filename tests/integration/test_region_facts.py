"""Region facts come from maintained sources, not one hard-coded account: the Deep Learning Container accounts in
aws-regions.yml are the SageMaker Python SDK's own image URI table (its wheel, downloaded once and cached), the
partition and DNS suffix are botocore's, and a stack packaged for a region whose images live in another account
points the image URIs and the execution role's ECR statement at that account."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from functools import cache

import botocore.session
import pytest
import yaml
from osls_package import REPO, package, requires_osls

FACTS = yaml.safe_load((REPO / "aws-regions.yml").read_text())
CACHE = REPO / ".cache" / "sagemaker-sdk"


@cache
def sdk_pytorch_table() -> dict:
    """``sagemaker/image_uri_config/pytorch.json`` of the pinned SDK release (no install: just its wheel)."""
    version = FACTS["dlc"]["sdk"]
    wheel = CACHE / f"sagemaker-{version}-py3-none-any.whl"
    if not wheel.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        f"sagemaker=={version}", "-d", str(CACHE)], check=True, timeout=300)
    with zipfile.ZipFile(wheel) as archive:
        return json.loads(archive.read("sagemaker/image_uri_config/pytorch.json"))


def test_the_dlc_accounts_are_the_sagemaker_sdks_for_every_region_it_knows():
    table = sdk_pytorch_table()
    framework = FACTS["dlc"]["framework"]
    for scope in ("training", "inference"):
        entry = table[scope]["versions"][framework]
        assert "py312" in entry["py_versions"]
        assert {region: row["account"] for region, row in FACTS["regions"].items()} == entry["registries"], scope
    assert table["training"]["versions"][framework]["repository"] == "pytorch-training"
    assert table["inference"]["versions"][framework]["repository"] == "pytorch-inference"


def test_partition_and_dns_suffix_are_botocores():
    partitions = botocore.session.get_session().get_data("endpoints")["partitions"]
    for region, row in FACTS["regions"].items():
        partition = next((p for p in partitions if region in p["regions"]), None)
        assert partition is not None, f"botocore does not know {region}"
        assert (row["partition"], row["domain"]) == (partition["partition"], partition["dnsSuffix"]), region


@pytest.mark.slow
@requires_osls
@pytest.mark.parametrize("region", ["eu-west-1", "il-central-1"])
def test_the_packaged_stack_pulls_the_images_from_its_regions_account(region):
    resources = package(region=region).template["Resources"]
    account, domain = FACTS["regions"][region]["account"], FACTS["regions"][region]["domain"]
    registry = f"{account}.dkr.ecr.{region}.{domain}"
    env = next(r for r in resources.values() if r["Type"] == "AWS::Lambda::Function")["Properties"]["Environment"][
        "Variables"]
    assert env["AUTOBERT_TRAINING_IMAGE_URI"] == f"{registry}/pytorch-training:{FACTS['dlc']['training_tag']}"
    assert env["AUTOBERT_INFERENCE_IMAGE_URI"] == f"{registry}/pytorch-inference:{FACTS['dlc']['inference_tag']}"
    role = json.dumps(resources["SageMakerExecutionRole"]["Properties"]["Policies"])
    assert f":ecr:${{AWS::Region}}:{account}:repository/" in role
    assert "763104351884" not in role or account == "763104351884"

"""The containers' requirements resolve against the SageMaker PyTorch images' own Python and torch.

The training and serving containers (serverless.yml's ``trainingImageUri`` / ``inferenceImageUri``) bring Python and
torch; at start they ``pip install -r requirements.txt`` from the code (training: the source dir, serving: the
model's ``code/``). Both files pin exact versions, so every start installs the same thing; here pip resolves each
one for the image's Python on Linux x86-64 (binary wheels only, as a container without compilers needs) with the
image's torch as a constraint. A dry run: nothing is installed, pip reads the packages' metadata from PyPI (about ten
seconds a file)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from autobert.config import REPO_ROOT

pytestmark = pytest.mark.slow

# The images' tags: "pytorch-training:2.6.0-gpu-py312-..." (serverless.yml) or "training_tag: 2.6.0-gpu-py312-..."
# (aws-regions.yml, where serverless.yml takes them from).
TAG = re.compile(r"(?P<kind>training|inference)(?:_tag:\s*|:)(?P<torch>\d+\.\d+\.\d+)-\w+-py(?P<py>\d)(?P<minor>\d+)")
REQUIREMENTS = {"training": REPO_ROOT / "training" / "requirements.txt",
                "inference": REPO_ROOT / "inference" / "requirements.txt"}


def images() -> dict[str, tuple[str, str]]:
    """training / inference → (torch version, Python version) that the deployed image's tag names."""
    files = (REPO_ROOT / "serverless.yml", REPO_ROOT / "aws-regions.yml")
    text = "\n".join(p.read_text() for p in files if p.is_file())
    found = {m["kind"]: (m["torch"], f"{m['py']}.{m['minor']}") for m in TAG.finditer(text)}
    assert set(found) == set(REQUIREMENTS), f"image tags not found in serverless.yml / aws-regions.yml: {found}"
    return found


def pins(path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line]
    loose = [str(r) for r in requirements if len(r.specifier) != 1 or next(iter(r.specifier)).operator != "=="]
    assert not loose, f"{path.name}: not pinned to one version: {loose}"
    return {r.name.lower().replace("_", "-"): next(iter(r.specifier)).version for r in requirements}


@pytest.mark.parametrize("kind", sorted(REQUIREMENTS))
def test_the_pinned_requirements_resolve_for_the_images_python_and_torch(kind, tmp_path):
    torch, python = images()[kind]
    requirements = REQUIREMENTS[kind]
    pinned = pins(requirements)
    (tmp_path / "image.txt").write_text(f"torch=={torch}\n")
    report = tmp_path / "report.json"
    abi = "cp" + python.replace(".", "")
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-cache-dir",
               "--disable-pip-version-check", "--ignore-installed", "--target", str(tmp_path / "never"),
               "--python-version", python, "--implementation", "cp", "--abi", abi, "--only-binary=:all:",
               "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
               "-c", str(tmp_path / "image.txt"), "-r", str(requirements), "--report", str(report)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    resolved = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]
                for item in json.loads(report.read_text())["install"]}
    assert {name: resolved[name]["version"] for name in pinned} == pinned
    # The image's torch stays: nothing may pull in another one (a multi-GB install at every start).
    assert "torch" not in resolved
    # Whatever a resolved package asks of torch, under any extra (transformers[torch]: torch>=2.6), the image's
    # torch satisfies.
    for name, metadata in resolved.items():
        for line in metadata.get("requires_dist") or []:
            requirement = Requirement(line)
            if requirement.name == "torch":
                assert requirement.specifier.contains(Version(torch), prereleases=True), f"{name} needs {line}"

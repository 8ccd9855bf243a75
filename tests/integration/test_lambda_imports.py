"""Every Lambda handler imports with exactly the packages its deployment gives it.

layers/lambda-runtime.yml pins what a function has besides its own code: the python3.12 runtime's boto3, and the
packages of the Powertools and AWS SDK for pandas layers. Each of those is installed once, with
``pip install --target .cache/lambda-layers/<layer>-<key>`` (CPython 3.12 manylinux x86_64 wheels, no dependency
resolution: exactly the pinned versions; the key is a hash of the pins, so a changed pin installs anew and an unchanged
one is reused). Then, for each function of the packaged template, a fresh interpreter started with ``-I -S`` (no
site-packages, no PYTHON* variables) gets a sys.path of only what Lambda puts there: the function's code (extracted from
the packaged artifact), its layers in the template's order (the later layer first, as its files overwrite the earlier
ones in /opt/python; the domain layer extracted from its packaged zip), the runtime's boto3, the standard library. It
imports the handler as Lambda's init does. A module that is not there, and a name that the pinned release of a module
lacks (``from x import Name``), fail here as they fail a cold start on AWS.

The interpreter is a CPython 3.12, as Lambda runs, not the suite's 3.11: the stdlib differs (3.12 has no distutils,
for one), and the pinned numpy 2.5 has no 3.11 wheels. It is $AUTOBERT_LAMBDA_PYTHON, else ``python3.12`` on PATH, else
the newest 3.12 in pyenv's versions folder (this machine kind's image has 3.12.1 there); none found fails the test.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import yaml
from osls_package import REPO, package, requires_osls

from autobert.workflow.tasks import TASKS

pytestmark = [requires_osls, pytest.mark.slow]

PINS_FILE = REPO / "layers" / "lambda-runtime.yml"
CACHE = REPO / ".cache" / "lambda-layers"
PACKAGED_REGION = "eu-west-1"  # the region osls_package.package() packages for
# Lambda's python3.12 runtime runs Amazon Linux 2023 (glibc 2.34): every manylinux tag up to that one.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(34, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]

# Handlers known to fail on AWS today, with the cause; remove an entry once its handler imports cleanly.
KNOWN_IMPORT_BUGS: dict[str, str] = {}

CHILD = r"""
import json, sys, traceback
sys.path[:0] = json.loads(sys.argv[1])
namespace = {"__name__": "__lambda_init__"}
try:
    exec(compile(sys.argv[2], "<lambda init>", "exec"), namespace)
    print(json.dumps({"ok": True, "result": namespace.get("RESULT")}))
except BaseException as exc:
    print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}",
                      "where": traceback.format_exc().splitlines()[-8:]}))
"""

# Each distribution on sys.path, with the version that an import of it gets (the first one on the path).
VERSIONS = r"""
import importlib.metadata
RESULT = {name: importlib.metadata.version(name) for name in
          {d.metadata["Name"].lower().replace("_", "-") for d in importlib.metadata.distributions()}}
"""


@functools.cache
def pins() -> dict:
    return yaml.safe_load(PINS_FILE.read_text())


@functools.cache
def lambda_python() -> tuple[str, str]:
    """(interpreter, "3.12"): a CPython of the runtime's version (see the module docstring)."""
    want = pins()["runtime"]["python"]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    installed = sorted(pyenv.glob(f"versions/{want}.*/bin/python{want}"), reverse=True,
                       key=lambda exe: [int(x) if x.isdigit() else -1 for x in exe.parts[-3].split(".")])
    for exe in filter(None, [os.environ.get("AUTOBERT_LAMBDA_PYTHON"), shutil.which(f"python{want}"), *installed]):
        probe = subprocess.run([exe, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == want:
            return str(exe), want
    raise AssertionError(f"no CPython {want} (Lambda's python{want}) found: set AUTOBERT_LAMBDA_PYTHON to one, or "
                         f"`pyenv install {want}`")


def install_layer(name: str, packages: dict[str, str]) -> Path:
    """``pip install --target`` of exactly ``packages`` (wheels for the Lambda interpreter), cached by their pins."""
    exe, version = lambda_python()
    requirements = sorted(f"{pkg}=={ver}" for pkg, ver in packages.items())
    key = hashlib.sha256(json.dumps([version, PLATFORMS, requirements]).encode()).hexdigest()[:12]
    target = CACHE / f"{name}-{key}"
    if (target / ".complete").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(f"{name}-*"):  # an earlier pin's install
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=CACHE))
    tag = version.replace(".", "")
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           # --ignore-requires-python: pip 23 checks Requires-Python against itself, not --python-version.
           "--no-deps", "--ignore-requires-python", "--only-binary=:all:", "--target", str(work),
           "--python-version", version,
           "--implementation", "cp", "--abi", f"cp{tag}", "--abi", "abi3", "--abi", "none",
           *(f"--platform={p}" for p in PLATFORMS), *requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise AssertionError(f"installing the {name} layer's pins ({PINS_FILE.name}) for Python {version} failed:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    (work / ".complete").write_text("\n".join(requirements) + "\n")
    try:
        work.rename(target)
    except OSError:  # another session installed the same pins meanwhile
        shutil.rmtree(work, ignore_errors=True)
        assert (target / ".complete").exists(), f"{target} is there but incomplete"
    return target


@pytest.fixture(scope="module")
def packaged():
    return package()


@pytest.fixture(scope="module")
def environments(packaged, tmp_path_factory) -> dict[str, dict]:
    """Per handler: the sys.path Lambda gives it, and the distributions its pins say are on that path."""
    p = pins()
    unpacked = tmp_path_factory.mktemp("lambda-artifacts")

    def artifact(code: dict) -> Path:
        name = Path(code["S3Key"]).name
        folder = unpacked / name.removesuffix(".zip")
        if not folder.exists():
            zipfile.ZipFile(packaged.folder / name).extractall(folder)
        return folder

    resources = packaged.template["Resources"]
    runtime = install_layer("runtime", p["runtime"]["packages"])
    envs = {}
    for props in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Function"):
        assert props["Runtime"] == f"python{p['runtime']['python']}", (
            f"{props['Handler']} runs {props['Runtime']}; {PINS_FILE.name} pins python{p['runtime']['python']}")
        layers, expected = [], dict(p["runtime"]["packages"])
        for layer in props["Layers"]:
            text = json.dumps(layer)
            if layer == {"Ref": "DomainLambdaLayer"}:
                layers.append(artifact(resources["DomainLambdaLayer"]["Properties"]["Content"]) / "python")
            elif "/aws/service/powertools/python/x86_64/python3.12/" in text:
                assert layer["Fn::Sub"][1]["Version"] == p["powertools"]["version"]
                layers.append(install_layer("powertools", p["powertools"]["packages"]))
                expected.update(p["powertools"]["packages"])
            elif "AWSSDKPandas-Python312" in text:
                assert layer == p["pandas"]["layerArn"][PACKAGED_REGION]
                layers.append(install_layer("pandas", p["pandas"]["packages"]))
                expected.update(p["pandas"]["packages"])
            else:
                raise AssertionError(f"{props['Handler']}: layer {text} is not pinned in {PINS_FILE.name}")
        handler = props["Handler"].split("/")[1].split(".")[0]
        # A later layer's files overwrite an earlier one's in /opt/python: it comes first on sys.path.
        path = [artifact(props["Code"]), *reversed(layers), runtime]
        envs[handler] = {"path": [str(x) for x in path], "expected": expected}
    return envs


def run_in_lambda_environment(env_paths: list[str], source: str) -> dict:
    exe, version = lambda_python()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home()), "LANG": "C.UTF-8",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
           "AWS_LAMBDA_FUNCTION_NAME": "autobert-test", "AUTOBERT_MODE": "aws",
           "AUTOBERT_BUCKET": "autobert-test-bucket", "AUTOBERT_REGION": "eu-west-1"}
    proc = subprocess.run([exe, "-I", "-S", "-c", CHILD, json.dumps(env_paths), source],
                          cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"Python {version} ({exe}):\n{proc.stderr[-2000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["python"] = f"Python {version} ({exe})"
    return result


HANDLERS = ["predict", "feedback", "retrain", *(task.handler for task in TASKS.values())]  # every function


@pytest.mark.parametrize("handler", HANDLERS)
def test_the_handler_imports_with_only_the_runtime_and_its_layers(environments, handler):
    result = run_in_lambda_environment(environments[handler]["path"], f"import functions.{handler}")
    if handler in KNOWN_IMPORT_BUGS:
        assert not result["ok"], f"functions/{handler}.py imports cleanly now: remove it from KNOWN_IMPORT_BUGS"
        pytest.xfail(KNOWN_IMPORT_BUGS[handler])
    assert result["ok"], f"{result['python']}: {result['error']}\n" + "\n".join(result["where"])


def test_every_function_is_checked(environments):
    assert sorted(environments) == sorted(HANDLERS)


@pytest.mark.parametrize("handler", ["predict", "merge_data"])
def test_the_environment_holds_exactly_the_pinned_versions(environments, handler):
    out = run_in_lambda_environment(environments[handler]["path"], VERSIONS)
    assert out["ok"], out["error"]
    expected = {name.lower().replace("_", "-"): str(version) for name, version in
                environments[handler]["expected"].items()}
    assert out["result"] == expected


def test_a_name_missing_from_the_pinned_release_fails_the_import(environments):
    # RequestUnsupportedContentType first appears in aws-lambda-powertools 3.25.0; the layer is older.
    result = run_in_lambda_environment(
        environments["predict"]["path"],
        "from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType")
    assert not result["ok"]
    assert re.match(r"ImportError: cannot import name 'RequestUnsupportedContentType'", result["error"])


def test_a_function_without_the_pandas_layer_cannot_import_pandas(environments):
    assert "pandas" not in environments["predict"]["expected"]
    result = run_in_lambda_environment(environments["predict"]["path"], "import autobert.workflow.merge")
    assert not result["ok"] and re.search(r"No module named '(numpy|pandas)'", result["error"])
